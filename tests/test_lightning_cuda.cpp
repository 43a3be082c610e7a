// Chunked lightning attention on the GPU (label "cuda"; skipped without one): forward and
// backward with float32, bfloat16 and float16 inputs (the 16-bit ones at head dims 64 and 128
// take the fused kernels, also with token-major [B,T,H,D] memory as the model passes them)
// against the float64 CPU computation on the same rounded inputs (the CPU chunked form, itself checked against the
// naive form in test_lightning_attention). Errors are measured as ||got - want|| / ||want||.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "halo/lightning_attention.h"
#include "tensor_error.h"

namespace halo {
namespace {

bool all_finite(const at::Tensor& x) {
  return at::isfinite(x).all().item<bool>();
}

struct Result {
  at::Tensor out, state, dq, dk, dv, ds0;
};

// Chunked lightning attention and the gradients of sum(out * w_out) + sum(state * w_state).
Result run(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& s0, const at::Tensor& decay,
           const at::Tensor& w_out, const at::Tensor& w_state, int64_t chunk) {
  at::Tensor ql = q.detach().requires_grad_(true), kl = k.detach().requires_grad_(true),
             vl = v.detach().requires_grad_(true), sl = s0.detach().requires_grad_(true);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  LightningOutput r = lightning_attention(ql, kl, vl, decay, scale, LightningImpl::chunked, sl, chunk);
  ((r.out * w_out).sum() + (r.state * w_state).sum()).backward();
  return {r.out.detach(), r.state.detach(), ql.grad(), kl.grad(), vl.grad(), sl.grad()};
}

void check_against_cpu(int64_t b, int64_t h, int64_t t, int64_t dk, int64_t dv, int64_t chunk, uint64_t seed,
                       bool token_major = false) {
  at::manual_seed(seed);
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor q = at::randn({b, h, t, dk}, f64), k = at::randn({b, h, t, dk}, f64), v = at::randn({b, h, t, dv}, f64),
             s0 = at::randn({b, h, dk, dv}, f64), w_out = at::randn({b, h, t, dv}, f64),
             w_state = at::randn({b, h, dk, dv}, f64);
  const at::Tensor decay = alibi_decays(h);  // float32, as the model uses
  const at::Device gpu(at::kCUDA, 0);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(std::string(c10::toString(dtype)) + " B " + std::to_string(b) + " H " + std::to_string(h) + " T " +
                 std::to_string(t) + " chunk " + std::to_string(chunk));
    auto rounded = [&](const at::Tensor& x) { return x.to(dtype).to(at::kDouble); };
    Result want = run(rounded(q), rounded(k), rounded(v), s0.to(at::kFloat).to(at::kDouble), decay.to(at::kDouble),
                      rounded(w_out), w_state.to(at::kFloat).to(at::kDouble), chunk);
    auto on_gpu = [&](const at::Tensor& x, at::ScalarType type) { return x.to(gpu, type); };
    auto input = [&](const at::Tensor& x) {
      at::Tensor y = on_gpu(x, dtype);
      return token_major ? y.transpose(1, 2).contiguous().transpose(1, 2) : y;
    };
    Result got = run(input(q), input(k), input(v), on_gpu(s0, at::kFloat), decay.to(gpu), on_gpu(w_out, dtype),
                     on_gpu(w_state, at::kFloat), chunk);
    EXPECT_EQ(got.out.scalar_type(), dtype);
    EXPECT_EQ(got.dq.scalar_type(), dtype);
    EXPECT_EQ(got.state.scalar_type(), at::kFloat);
    const double tol = dtype == at::kFloat ? 1e-4 : 1e-2;
    const std::pair<const char*, std::pair<at::Tensor, at::Tensor>> pairs[] = {
        {"out", {got.out, want.out}}, {"state", {got.state, want.state}}, {"dq", {got.dq, want.dq}},
        {"dk", {got.dk, want.dk}},    {"dv", {got.dv, want.dv}},          {"d initial state", {got.ds0, want.ds0}}};
    for (const auto& [name, pair] : pairs) {
      ASSERT_TRUE(pair.first.defined()) << name;
      EXPECT_TRUE(all_finite(pair.first)) << name;
      EXPECT_LE(test::relative_error(pair.first, pair.second), tol) << name;
    }
  }
}

TEST(LightningCuda, ChunkedMatchesCpuFloat64) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  check_against_cpu(2, 3, 300, 24, 40, 64, 1);  // a shorter last chunk, Dk != Dv
  check_against_cpu(2, 4, 1, 16, 16, 64, 2);    // one token
  check_against_cpu(3, 2, 50, 5, 3, 16, 3);     // state sizes not a multiple of 4
}

TEST(LightningCuda, FusedChunkedMatchesCpuFloat64) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  check_against_cpu(2, 3, 300, 64, 64, 64, 5, /*token_major=*/true);  // a shorter last chunk
  check_against_cpu(2, 2, 200, 128, 128, 64, 6, /*token_major=*/true);
  check_against_cpu(1, 2, 64, 128, 128, 64, 7);  // exactly one chunk
  check_against_cpu(3, 1, 17, 64, 64, 64, 8);    // less than one chunk
  // The recurrence's state tile width follows B*H against the SM count (132 on an H100): 16
  // columns above, 32 at B*H = 32, 64 at B*H = 144.
  check_against_cpu(2, 16, 70, 128, 128, 64, 9);
  check_against_cpu(9, 16, 70, 128, 128, 64, 10);
  // Longer walks: 33 chunks (the last one short) at D = 128, 24 at D = 64.
  check_against_cpu(1, 2, 2100, 128, 128, 64, 11);
  check_against_cpu(2, 3, 1500, 64, 64, 64, 12, /*token_major=*/true);
}

TEST(LightningCuda, ChunkedMatchesCpuFloat64AtModelShape) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  check_against_cpu(1, 16, 2048, 128, 128, 64, 4);  // H=16 ALiBi decays, the strongest 0.49
}

}  // namespace
}  // namespace halo
