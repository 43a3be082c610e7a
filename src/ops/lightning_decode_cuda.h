// One decode step of a lightning layer as one CUDA kernel (lightning_decode_cuda.cu, built with
// HALO_CUDA=ON only): what lightning_mixer does for a single new token between the q/k/v
// projections and the output norm, which in ATen is 13 small kernels per layer (q/k RMSNorm,
// RoPE, K/V head repeats, casts, the outer product, the state update, the read-out).
// For every row b and head h (KV head h / (H/KV)):
//   q~ = rope(rmsnorm(q[b,h]) * q_norm), k~ = rope(rmsnorm(k[b,kv]) * k_norm)   (each rounded to T)
//   S[b,h] <- decay[h] * S[b,h] + k~^T v[b,kv]                                   (float32, in place)
//   out[b,h] = (scale q~) S[b,h]                                                 (rounded to T)
// the roundings and float32 arithmetic of the ATen path (RMSNorm's fused kernel, then the fused
// RoPE, then the float32 recurrence), so the two agree up to the order of float32 sums.
#pragma once
#include <ATen/core/Tensor.h>

namespace halo {

// Whether the kernel takes these: q [B, H*D], k and v [B, KV*D] (the projections of one token,
// rows contiguous, 16-bit, one CUDA device), state [B, H, D, D] float32 contiguous, D in {64, 128},
// H a multiple of KV, norms [D] of q's dtype, contiguous (or undefined: no q/k norm), RoPE tables
// with D values per row for one position, of q's dtype, shared by the batch or one row each (or
// undefined: no RoPE). (decay [H] float32 is the caller's to give.)
bool lightning_decode_cuda_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const at::Tensor& q_norm, const at::Tensor& k_norm, const at::Tensor& state,
                                     const at::Tensor& cos);

// Updates `state` in place and returns out [B, H*D] in q's dtype, on the current CUDA stream.
at::Tensor lightning_decode_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& q_norm, const at::Tensor& k_norm, double eps, const at::Tensor& cos,
                                 const at::Tensor& sin, const at::Tensor& decay, double scale, const at::Tensor& state);

}  // namespace halo
