// Rotate-half RoPE (rope.cpp): the cos/sin tables and the rotation, fused into one CUDA kernel
// for 16-bit tensors (rope_cuda.cu). Internal to the library.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace halo {

// cos/sin tables [.., T, D] of rotate-half RoPE for float positions [.., T], in `dtype`:
// angles positions x inv_freq computed in inv_freq's dtype (float32 whatever the checkpoint's
// dtype, as in transformers' from_pretrained; float64 for float64 models), both tables
// multiplied by `attention_factor` (yarn's; 1 otherwise). inv_freq [D/2] on positions' device.
std::pair<at::Tensor, at::Tensor> rope_tables(const at::Tensor& positions, const at::Tensor& inv_freq,
                                              double attention_factor, c10::ScalarType dtype);
// The inverse frequencies as a tensor of `dtype` (float32 or float64) on `device`.
at::Tensor rope_inverse_frequency_tensor(const std::vector<double>& inv_freq, c10::ScalarType dtype,
                                         const c10::Device& device);
// x [B, H, T, D] rotated by tables [B|1, 1, T, D].
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace halo
