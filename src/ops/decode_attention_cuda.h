// Flash-decoding attention of one new token per row over a K/V cache (decode_attention_cuda.cu, built
// with HALO_CUDA=ON only): the decode step of DecodeGraph. The valid length is read from device
// memory, so one captured CUDA graph serves every step, and the launch shape depends only on
// host-known sizes (the capacity of the cache), never on that length.
#pragma once
#include <ATen/core/Tensor.h>

namespace halo {

// Whether the kernel handles these shapes and dtypes: q [B,H,D] and k_cache, v_cache
// [B,KV,capacity,D] on one CUDA device, one of float32/float16/bfloat16, D in {32, 64, 128, 256},
// H/KV in {1, 2, 4, 8}, the cache's last dimension contiguous and every row 16-byte aligned.
// Otherwise the caller falls back to ATen.
bool decode_attention_cuda_supported(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache);

// out[b,h] = softmax_j(scale q[b,h] . k[b,h/G,j]) v[b,h/G,j] over the keys padding[b] <= j <
// length (G = H/KV: the query heads of one KV head share its keys, never repeated in memory).
// q [B,H,D]; k_cache, v_cache [B,KV,capacity,D] of q's dtype; length int64 with one element on
// q's device (values above capacity are clamped); padding int64 [B] on q's device or undefined.
// Slots outside [padding[b], length) are never read. A row with no valid key gets zeros.
// Returns [B,H,D] in q's dtype, on the current CUDA stream, with no host synchronization.
at::Tensor decode_attention_cuda(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                 const at::Tensor& length, const at::Tensor& padding, double scale);

}  // namespace halo
