// Attention of one new token per row over a whole K/V cache (the decode step of DecodeGraph):
// the entry point (decode_attention.cpp: the CUDA kernel of decode_attention_cuda.cu when it
// takes the shapes, else masked SDPA). Internal to the library.
#pragma once
#include <ATen/core/Tensor.h>

namespace halo {

// Attention of one new token per row over a whole K/V cache whose valid length is device data:
// q [B, H, D], k_cache, v_cache [B, KV, capacity, D], length int64 [1] on q's device (keys
// 0..length-1 are valid), padding int64 [B] on q's device or undefined (keys j < padding[b] are
// masked). Returns [B, H, D]. A flash-decoding kernel on CUDA when halo is built with HALO_CUDA
// and it supports the shape (decode_attention_cuda.cu, which reads the valid keys only); otherwise
// masked SDPA over the whole capacity, so the slots past `length` must hold finite values.
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& length, const at::Tensor& padding, double scale);

}  // namespace halo
