// Rotate-half RoPE as one CUDA kernel (rope_cuda.cu, built with HALO_CUDA=ON only): out =
// x * cos + rotate_half(x) * sin computed in float32 with one rounding, reading and writing x's
// own strides (the token-major views the mixers pass stay token-major). With `inverse` the
// rotation runs backwards (sin negated): the gradient of the forward rotation, since the tables
// repeat their first half in the second (rope_tables).
#pragma once
#include <ATen/core/Tensor.h>

namespace halo {

// Whether the kernel takes x [B, H, T, D] (16-bit, CUDA, last dim contiguous, D % 16 == 0,
// 16-byte aligned rows) with tables [B|1, 1, T, D] of x's dtype, contiguous.
bool rope_cuda_supported(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// out (x's shape and dtype, last dim contiguous) <- x rotated by the tables.
void rope_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool inverse, const at::Tensor& out);

}  // namespace halo
