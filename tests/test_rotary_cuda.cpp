// RoPE on the GPU (label "cuda"; skipped without one): the fused 16-bit kernel's rotation and its
// gradient against the float64 CPU form on the same rounded inputs, for token-major and
// contiguous layouts, tables shared by the batch or per sequence, head dims 64 and 128. The
// output keeps the input's layout. Errors are ||got - want|| / ||want||.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "halo/causal_lm.h"
#include "halo/model_config.h"
#include "ops/rope.h"
#include "tensor_error.h"

namespace halo {
namespace {

struct Rotated {
  at::Tensor out, grad;
};

// apply_rope and the gradient of sum(out * weight) with respect to x.
Rotated rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& weight) {
  at::Tensor leaf = x.detach().requires_grad_(true);
  at::Tensor out = apply_rope(leaf, cos, sin);
  (out * weight).sum().backward();
  return {out.detach(), leaf.grad()};
}

void check(int64_t b, int64_t h, int64_t t, int64_t d, bool per_sequence, bool token_major, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor x = at::randn({b, h, t, d}, at::kDouble), weight = at::randn({b, h, t, d}, at::kDouble);
  at::Tensor positions = at::arange(t, at::kDouble).view({1, 1, t}) + 1000.0;
  if (per_sequence) positions = positions + at::arange(b, at::kDouble).view({b, 1, 1}) * 7.0;
  const at::Device gpu(at::kCUDA, 0);
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(std::string(c10::toString(dtype)) + " D " + std::to_string(d) + (token_major ? " token-major" : ""));
    ModelConfig config;
    config.rope_theta = 1e6;
    const at::Tensor inv_freq = rope_inverse_frequency_tensor(rope_inverse_frequencies(config, d), at::kFloat, gpu);
    auto [cos, sin] = rope_tables(positions.to(gpu, at::kFloat), inv_freq, 1.0, dtype);
    Rotated want = rotate(x.to(dtype).to(at::kDouble), cos.cpu().to(at::kDouble), sin.cpu().to(at::kDouble),
                          weight.to(dtype).to(at::kDouble));
    at::Tensor input = x.to(gpu, dtype);
    if (token_major) input = input.transpose(1, 2).contiguous().transpose(1, 2);
    Rotated got = rotate(input, cos, sin, weight.to(gpu, dtype));
    EXPECT_EQ(got.out.strides(), input.strides());
    EXPECT_EQ(got.out.scalar_type(), dtype);
    EXPECT_LE(test::relative_error(got.out, want.out), 1e-2);
    EXPECT_LE(test::relative_error(got.grad, want.grad), 1e-2);
  }
}

TEST(RotaryCuda, FusedMatchesCpuFloat64) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  check(2, 3, 40, 128, /*per_sequence=*/false, /*token_major=*/true, 1);
  check(2, 3, 40, 128, /*per_sequence=*/true, /*token_major=*/false, 2);
  check(3, 2, 17, 64, /*per_sequence=*/true, /*token_major=*/true, 3);
  check(1, 4, 1, 128, /*per_sequence=*/false, /*token_major=*/false, 4);  // one decode token
}

}  // namespace
}  // namespace halo
