// RMSNorm (rms_norm.cpp). Internal to the library.
#pragma once
#include <ATen/core/Tensor.h>

namespace halo {

// RMSNorm as Qwen3 computes it: w * (x_f32 * rsqrt(mean(x_f32^2) + eps)).to(dtype)
// (float64 inputs stay float64).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace halo
