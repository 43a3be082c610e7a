// Fused CUDA kernels of chunked lightning attention for 16-bit inputs (lightning_chunk_cuda.cu,
// built with HALO_CUDA=ON only). Chunks of 64 tokens; Dk = Dv = D in {64, 128}; q, k, v, dout
// [B,H,T,D] of one dtype (bfloat16 or float16) with any strides whose last dim is contiguous and
// whose rows are 16-byte aligned; decay [H] float32; float32 edge states [B,H,D,D] contiguous.
// With S_n the state entering chunk n (S_0 = s0) and G_n = dL/dS_n:
// - recurrence, forward: states[n] <- S_n (as dtype), last <- S_N, walking S_{n+1} =
//   g^L_n S_n + (k_n . b)^T v_n with b_j = g^(L_n-1-j) (L_n: tokens in chunk n);
// - recurrence, reverse (a = q, b = dout): states[n] <- G_{n+1}, last <- G_0, walking
//   G_n = g^L_n G_{n+1} + (q_n . a)^T do_n with a_i = scale g^(i+1), from G_N = edge;
// - forward: out_n = (q_n k_n^T . M) v_n + (q_n . a) S_n, M_ij = scale g^(i-j) (j <= i);
// - backward: dq, dk, dv of one chunk from q, k, v, dout, S_n and G_{n+1} (lightning_attention.cpp
//   states the formulas).
// `states` is [B,H,N,D,D] contiguous in the inputs' dtype, N = ceil(T / 64). All run on the
// current stream.
#pragma once
#include <ATen/core/Tensor.h>

namespace halo {

constexpr int64_t kFusedLightningChunk = 64;

// Whether the fused kernels take these inputs (dtype, head dims, device, strides).
bool lightning_chunk_cuda_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

void lightning_chunk_recurrence_cuda(const at::Tensor& a, const at::Tensor& b, const at::Tensor& decay,
                                     const at::Tensor& edge, const at::Tensor& last, const at::Tensor& states,
                                     double scale, bool reverse);

void lightning_chunk_forward_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& states, const at::Tensor& decay, double scale,
                                  const at::Tensor& out);

void lightning_chunk_backward_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& dout, const at::Tensor& states, const at::Tensor& grad_states,
                                   const at::Tensor& decay, double scale, const at::Tensor& dq, const at::Tensor& dk,
                                   const at::Tensor& dv);

}  // namespace halo
