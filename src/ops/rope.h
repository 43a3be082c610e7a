// Rotate-half RoPE (rope.cpp): the cos/sin tables and the rotation, fused into one CUDA kernel
// for 16-bit tensors (rope_cuda.cu). Internal to the library.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>

namespace halo {

// cos/sin tables [.., T, D] of rotate-half RoPE for float positions [.., T], in `dtype`. The
// inverse frequencies theta^(-2i/d) stay in float32 whatever the checkpoint's dtype, as in
// transformers' from_pretrained (float64 models compute in float64 throughout).
std::pair<at::Tensor, at::Tensor> rope_tables(const at::Tensor& positions, int64_t head_dim, double theta,
                                              c10::ScalarType dtype);
// x [B, H, T, D] rotated by tables [B|1, 1, T, D].
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace halo
