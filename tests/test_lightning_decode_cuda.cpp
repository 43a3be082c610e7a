// The fused lightning decode step (src/ops/lightning_decode_cuda.cu; label "cuda", built with
// HALO_CUDA only, skipped without a GPU) against a float64 CPU reference on the same 16-bit
// inputs with the ATen path's roundings (normed q/k rounded, rotated q/k rounded, the output
// rounded): per head, RMSNorm, rotate-half RoPE, S <- decay S + k^T v, out = scale q S, the
// query heads of a KV head sharing its k and v. Errors are ||got - want|| / ||want||.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "ops/lightning_decode_cuda.h"

namespace halo {
namespace {

struct Case {
  int64_t batch, heads, kv_heads, dim;
  bool norm, rope, per_row_tables;
};

double relative_error(const at::Tensor& got, const at::Tensor& want) {
  return (got.to(at::kDouble).cpu() - want).norm().item<double>() / want.norm().item<double>();
}

// x [B, N, D] float64 normalized over D with weight [D], rounded to `dtype`.
at::Tensor rms_rounded(const at::Tensor& x, const at::Tensor& weight, double eps, at::ScalarType dtype) {
  at::Tensor normed = x * at::rsqrt(x.pow(2).mean(-1, true) + eps) * weight;
  return normed.to(dtype).to(at::kDouble);
}

// x [B, N, D] rotated by tables [B|1, D], rounded to `dtype`.
at::Tensor rope_rounded(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, at::ScalarType dtype) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return (x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1)).to(dtype).to(at::kDouble);
}

void check(const Case& c, at::ScalarType dtype) {
  SCOPED_TRACE(std::string(c10::toString(dtype)) + " B " + std::to_string(c.batch) + " H " + std::to_string(c.heads) +
               " KV " + std::to_string(c.kv_heads) + " D " + std::to_string(c.dim) + (c.norm ? " norm" : "") +
               (c.rope ? " rope" : "") + (c.per_row_tables ? " per-row tables" : ""));
  const int64_t b = c.batch, h = c.heads, kv = c.kv_heads, d = c.dim;
  const double eps = 1e-6, scale = 1 / std::sqrt(static_cast<double>(d));
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Device gpu(at::kCUDA, 0);
  // Inputs rounded to dtype once; the reference reads the rounded values in float64.
  auto rounded = [&](at::Tensor x) { return x.to(dtype).to(at::kDouble); };
  at::Tensor q = rounded(at::randn({b, h, d}, f64) * 3), k = rounded(at::randn({b, kv, d}, f64) * 3);
  at::Tensor v = rounded(at::randn({b, kv, d}, f64));
  at::Tensor q_norm = rounded(at::rand({d}, f64) + 0.5), k_norm = rounded(at::rand({d}, f64) + 0.5);
  const int64_t rows = c.per_row_tables ? b : 1;
  at::Tensor angle = at::rand({rows, d / 2}, f64) * 6.3 * (1 + at::arange(rows, f64).unsqueeze(1));
  at::Tensor cos = rounded(at::cat({angle.cos(), angle.cos()}, -1)),
             sin = rounded(at::cat({angle.sin(), angle.sin()}, -1));
  at::Tensor decay = at::rand({h}, f64) * 0.5 + 0.5;
  at::Tensor state = at::randn({b, h, d, d}, f64);

  at::Tensor qr = c.norm ? rms_rounded(q, q_norm, eps, dtype) : q, kr = c.norm ? rms_rounded(k, k_norm, eps, dtype) : k;
  if (c.rope) {
    qr = rope_rounded(qr, cos, sin, dtype);
    kr = rope_rounded(kr, cos, sin, dtype);
  }
  kr = kr.repeat_interleave(h / kv, 1);
  at::Tensor vr = v.repeat_interleave(h / kv, 1);
  at::Tensor want_state =
      decay.to(at::kFloat).to(at::kDouble).view({1, h, 1, 1}) * state.to(at::kFloat).to(at::kDouble) +
      kr.unsqueeze(-1) * vr.unsqueeze(-2);
  at::Tensor want_out = at::matmul((qr * scale).unsqueeze(2), want_state).squeeze(2);  // [B, H, D]

  at::Tensor gpu_state = state.to(gpu, at::kFloat).contiguous();
  auto on_gpu = [&](const at::Tensor& x) { return x.to(gpu, dtype).contiguous(); };
  const at::Tensor q2 = on_gpu(q).view({b, h * d}), k2 = on_gpu(k).view({b, kv * d}), v2 = on_gpu(v).view({b, kv * d});
  const at::Tensor cos2 = c.rope ? on_gpu(cos) : at::Tensor(), sin2 = c.rope ? on_gpu(sin) : at::Tensor();
  const at::Tensor q_norm2 = c.norm ? on_gpu(q_norm) : at::Tensor(), k_norm2 = c.norm ? on_gpu(k_norm) : at::Tensor();
  ASSERT_TRUE(lightning_decode_cuda_supported(q2, k2, v2, q_norm2, k_norm2, gpu_state, cos2));
  at::Tensor out =
      lightning_decode_cuda(q2, k2, v2, q_norm2, k_norm2, eps, cos2, sin2, decay.to(gpu, at::kFloat), scale, gpu_state);
  ASSERT_EQ(out.scalar_type(), dtype);
  EXPECT_LT(relative_error(gpu_state, want_state), 1e-6);
  EXPECT_LT(relative_error(out.view({b, h, d}), want_out), 1e-2);
}

TEST(LightningDecodeCuda, MatchesTheFloat64StepOfTheAtenPath) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const Case cases[] = {
      {1, 16, 16, 128, true, true, false},  // HypeNet-2B's lightning layers
      {2, 16, 8, 128, true, true, true},    // GQA, a position per row
      {3, 6, 3, 64, true, true, false},     // SmolLM2's student
      {2, 4, 4, 64, false, false, false},   // no q/k norm, no RoPE
      {4, 8, 2, 128, false, true, true},
  };
  for (const Case& c : cases) {
    check(c, at::kBFloat16);
    check(c, at::kHalf);
  }
}

TEST(LightningDecodeCuda, RefusesWhatItDoesNotTake) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const auto bf16 = at::TensorOptions().device(at::kCUDA, 0).dtype(at::kBFloat16);
  const at::Tensor state = at::zeros({1, 4, 64, 64}, bf16.dtype(at::kFloat));
  const at::Tensor q = at::zeros({1, 256}, bf16), kv = at::zeros({1, 128}, bf16);
  EXPECT_TRUE(lightning_decode_cuda_supported(q, kv, kv, {}, {}, state, {}));
  EXPECT_FALSE(lightning_decode_cuda_supported(q.to(at::kFloat), kv, kv, {}, {}, state, {}));     // float32 q
  EXPECT_FALSE(lightning_decode_cuda_supported(q, kv, kv, {}, {}, state.to(at::kBFloat16), {}));  // 16-bit state
  EXPECT_FALSE(
      lightning_decode_cuda_supported(q, at::zeros({1, 192}, bf16), kv, {}, {}, state, {}));  // 3 KV heads of 4
  EXPECT_FALSE(
      lightning_decode_cuda_supported(q, kv, kv, {}, {}, at::zeros({1, 4, 32, 32}, bf16.dtype(at::kFloat)), {}));
  EXPECT_FALSE(
      lightning_decode_cuda_supported(q, kv, kv, {}, {}, state, at::zeros({3, 64}, bf16)));  // 3 table rows for 1
}

}  // namespace
}  // namespace halo
