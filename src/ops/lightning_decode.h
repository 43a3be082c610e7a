// One decode step of a lightning layer fused into one kernel where there is one: in HALO_CUDA
// builds the CUDA kernel of lightning_decode_cuda.h, for the inputs it takes (its header says
// which and what it computes); anywhere else nothing, and the caller runs the ATen path.
// HALO_LIGHTNING_DECODE=aten in the environment keeps the ATen path (for comparisons;
// docs/benchmarks.md); unset or "fused" allows the kernel; any other value is refused.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>

namespace halo {

// q [B, H*D], k and v [B, KV*D], the norms (or undefined), the RoPE tables of the one position
// (or undefined), decay [H] (any float dtype), state [B, H, D, D] float32, updated in place
// when the kernel runs. Returns out [B, H*D] in q's dtype, or nothing.
std::optional<at::Tensor> fused_lightning_decode(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                 const at::Tensor& q_norm, const at::Tensor& k_norm, double eps,
                                                 const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& decay,
                                                 double scale, const at::Tensor& state);

}  // namespace halo
