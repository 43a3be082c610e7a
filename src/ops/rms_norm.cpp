// RMSNorm as Qwen3 computes it (../shared/docs/METHOD.md §1): float32 inside, one rounding;
// PyTorch's fused kernel for 16-bit CUDA tensors.
#include "ops/rms_norm.h"

#include <ATen/ATen.h>

namespace halo {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  // 16-bit CUDA tensors: PyTorch's fused kernel (float32 inside, one rounding at the end, where
  // transformers rounds before the weight: at most one bf16 ulp apart), forward and backward in
  // one launch each instead of six elementwise kernels and a float32 copy.
  if (x.is_cuda() && (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf) &&
      weight.scalar_type() == x.scalar_type())
    return at::rms_norm(x, {x.size(-1)}, weight, eps);
  const at::ScalarType compute = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor xf = x.to(compute);
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

}  // namespace halo
