// decode_attention: the flash-decoding kernel (decode_attention_cuda.cu) when halo is built with
// HALO_CUDA and it takes the shapes; otherwise SDPA with a mask over the whole capacity.
#include "ops/decode_attention.h"

#include <ATen/ATen.h>

#ifdef HALO_WITH_CUDA_KERNELS
#include "ops/decode_attention_cuda.h"
#endif

namespace halo {

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& length, const at::Tensor& padding, double scale) {
#ifdef HALO_WITH_CUDA_KERNELS
  if (decode_attention_cuda_supported(q, k_cache, v_cache)) {
    return decode_attention_cuda(q, k_cache, v_cache, length, padding, scale);
  }
#endif
  const int64_t capacity = k_cache.size(2);
  at::Tensor keys = at::arange(capacity, q.options().dtype(at::kLong));
  at::Tensor valid = (keys < length.view({1})).view({1, 1, 1, capacity});  // [1, 1, 1, S]
  if (padding.defined()) valid = valid & (keys.unsqueeze(0) >= padding.view({-1, 1})).view({-1, 1, 1, capacity});
  at::Tensor o = at::scaled_dot_product_attention(q.unsqueeze(2), k_cache, v_cache, valid, 0.0, false, scale,
                                                  /*enable_gqa=*/q.size(1) != k_cache.size(1));
  return o.squeeze(2);
}

}  // namespace halo
