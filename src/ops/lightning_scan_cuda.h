// The chunk-to-chunk state scan of chunked lightning attention (lightning_attention.cpp), as a
// CUDA kernel (lightning_scan_cuda.cu, built with HALO_CUDA=ON only). In place over the per-chunk
// tensors x [B,H,N,Dk,Dv], starting from `edge` [B,H,Dk,Dv] with s = edge:
//   forward (reverse = false), n = 0..N-1:   x_n <- s, then s <- decay_h * s + (old x_n)
//   backward (reverse = true), n = N-1..0:   the same walk in the other direction
// and `last` [B,H,Dk,Dv] receives the final s. Forward: x holds the chunk contributions U_n and
// becomes the state entering each chunk; backward: x holds the direct state gradients P_n and
// becomes the gradient of the state leaving each chunk.
#pragma once
#include <ATen/core/Tensor.h>

namespace halo {

// x, edge, last: contiguous, one floating dtype (float32 or float64) on one CUDA device, N >= 1;
// decay: [H] of that dtype on that device. Runs on the current CUDA stream.
void lightning_scan_cuda(const at::Tensor& x, const at::Tensor& decay, const at::Tensor& edge, const at::Tensor& last,
                         bool reverse);

}  // namespace halo
