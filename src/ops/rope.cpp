// Rotate-half RoPE: the cos/sin tables as transformers' from_pretrained computes them (float32
// angles from float32 inverse frequencies, whatever the checkpoint's dtype), and the rotation.
// 16-bit CUDA inputs take one fused kernel forward and one backward (FusedRope, rope_cuda.cu);
// everything else the ATen form x * cos + rotate_half(x) * sin.
#include <ATen/ATen.h>

#include <torch/csrc/autograd/custom_function.h>
#include <algorithm>

#include "ops/rope.h"
#ifdef HALO_WITH_CUDA_KERNELS
#include "ops/rope_cuda.h"
#endif

namespace halo {
namespace {

#ifdef HALO_WITH_CUDA_KERNELS
// The backward of a rotation is the inverse rotation of the output gradient.
struct FusedRope : public torch::autograd::Function<FusedRope> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos,
                            const at::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    at::Tensor out = at::empty_like(x);  // x's layout, so token-major views stay token-major
    rope_cuda(x, cos, sin, /*inverse=*/false, out);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    at::Tensor grad = grads[0];
    if (!rope_cuda_supported(grad, saved[0], saved[1])) grad = grad.contiguous();
    at::Tensor dx = at::empty_like(grad);
    rope_cuda(grad, saved[0], saved[1], /*inverse=*/true, dx);
    return {dx, at::Tensor(), at::Tensor()};
  }
};
#endif

}  // namespace

std::pair<at::Tensor, at::Tensor> rope_tables(const at::Tensor& positions, const at::Tensor& inv_freq,
                                              double attention_factor, c10::ScalarType dtype) {
  at::Tensor freqs = positions.to(inv_freq.scalar_type()).unsqueeze(-1) * inv_freq;
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  if (attention_factor == 1.0) return {emb.cos().to(dtype), emb.sin().to(dtype)};
  return {(emb.cos() * attention_factor).to(dtype), (emb.sin() * attention_factor).to(dtype)};
}

at::Tensor rope_inverse_frequency_tensor(const std::vector<double>& inv_freq, c10::ScalarType dtype,
                                         const c10::Device& device) {
  at::Tensor values = at::empty({static_cast<int64_t>(inv_freq.size())}, at::kDouble);
  std::copy(inv_freq.begin(), inv_freq.end(), values.data_ptr<double>());
  return values.to(device, dtype);
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
#ifdef HALO_WITH_CUDA_KERNELS
  if (rope_cuda_supported(x, cos, sin)) return FusedRope::apply(x, cos, sin);
#endif
  const int64_t half = x.size(-1) / 2;
  at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

}  // namespace halo
