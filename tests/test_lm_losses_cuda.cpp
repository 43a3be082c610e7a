// The lm-head losses on the GPU (label "cuda"; skipped without one): chunked cross-entropy and
// KL with float32, bfloat16 and float16 weights (the 16-bit ones take the fused row kernels and
// the cuBLAS float32 weight-gradient accumulation) against their float64 CPU definitions on the
// same rounded inputs, with vocabularies that are and are not a multiple of 8, ignored targets,
// several slices, and without gradients. Errors are ||got - want|| / ||want||.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <string>

#include "ops/lm_losses.h"
#include "tensor_error.h"

namespace halo {
namespace {

struct Gradients {
  at::Tensor loss, d_hidden, d_weight;
};

// loss_fn(hidden, weight) and its gradients, for leaves made from h and w.
template <typename Loss>
Gradients with_gradients(const at::Tensor& h, const at::Tensor& w, Loss loss_fn) {
  at::Tensor hidden = h.detach().requires_grad_(true), weight = w.detach().requires_grad_(true);
  at::Tensor loss = loss_fn(hidden, weight);
  (loss * 3.0).backward();  // a grad_output other than 1
  return {loss.detach(), hidden.grad(), weight.grad()};
}

void expect_close(const Gradients& got, const Gradients& want, at::ScalarType dtype) {
  const double tol = dtype == at::kFloat ? 1e-4 : 1e-2;
  EXPECT_EQ(got.d_hidden.scalar_type(), dtype);
  EXPECT_EQ(got.d_weight.scalar_type(), dtype);
  EXPECT_TRUE(at::isfinite(got.d_weight).all().item<bool>());
  EXPECT_LE(test::relative_error(got.loss, want.loss), tol);
  EXPECT_LE(test::relative_error(got.d_hidden, want.d_hidden), tol);
  EXPECT_LE(test::relative_error(got.d_weight, want.d_weight), tol);
}

class LmLossesCuda : public ::testing::TestWithParam<int64_t> {};

TEST_P(LmLossesCuda, CrossEntropyMatchesCpuFloat64) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const int64_t vocab = GetParam(), n = 45, dim = 64;
  at::manual_seed(11);
  at::Tensor hidden = at::randn({n, dim}, at::kDouble), weight = at::randn({vocab, dim}, at::kDouble) * 0.3;
  at::Tensor targets = at::randint(0, vocab, {n}, at::kLong);
  targets[3] = -100, targets[20] = -1;  // ignored
  targets[7] = vocab - 1;               // the last entry of a row
  const at::Device gpu(at::kCUDA, 0);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(std::string(c10::toString(dtype)) + " V " + std::to_string(vocab));
    auto rounded = [&](const at::Tensor& x) { return x.to(dtype).to(at::kDouble); };
    Gradients want = with_gradients(rounded(hidden), rounded(weight), [&](const at::Tensor& h, const at::Tensor& w) {
      at::Tensor logits = at::matmul(h, w.t());
      at::Tensor valid = targets >= 0;
      at::Tensor nll = at::logsumexp(logits, 1) - logits.gather(1, targets.clamp_min(0).unsqueeze(1)).squeeze(1);
      return (nll * valid).sum() / valid.sum();
    });
    const at::Tensor t = targets.to(gpu);
    Gradients got =
        with_gradients(hidden.to(gpu, dtype), weight.to(gpu, dtype),
                       [&](const at::Tensor& h, const at::Tensor& w) { return chunked_cross_entropy(h, w, t, 16); });
    expect_close(got, want, dtype);
    c10::NoGradGuard no_grad;
    EXPECT_LE(
        test::relative_error(chunked_cross_entropy(hidden.to(gpu, dtype), weight.to(gpu, dtype), t, 16), want.loss),
        dtype == at::kFloat ? 1e-4 : 1e-2);
  }
}

TEST_P(LmLossesCuda, KlDivergenceMatchesCpuFloat64) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const int64_t vocab = GetParam(), n = 37, dim = 64;
  at::manual_seed(12);
  at::Tensor hidden = at::randn({n, dim}, at::kDouble), weight = at::randn({vocab, dim}, at::kDouble) * 0.3;
  at::Tensor teacher_hidden = at::randn({n, dim}, at::kDouble),
             teacher_weight = at::randn({vocab, dim}, at::kDouble) * 0.3;
  const at::Device gpu(at::kCUDA, 0);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(std::string(c10::toString(dtype)) + " V " + std::to_string(vocab));
    auto rounded = [&](const at::Tensor& x) { return x.to(dtype).to(at::kDouble); };
    const at::Tensor th = rounded(teacher_hidden), tw = rounded(teacher_weight);
    Gradients want = with_gradients(rounded(hidden), rounded(weight), [&](const at::Tensor& h, const at::Tensor& w) {
      at::Tensor log_t = at::log_softmax(at::matmul(th, tw.t()), 1);
      at::Tensor log_s = at::log_softmax(at::matmul(h, w.t()), 1);
      return (log_t.exp() * (log_t - log_s)).sum(1).mean();
    });
    const at::Tensor gth = teacher_hidden.to(gpu, dtype), gtw = teacher_weight.to(gpu, dtype);
    Gradients got = with_gradients(
        hidden.to(gpu, dtype), weight.to(gpu, dtype),
        [&](const at::Tensor& h, const at::Tensor& w) { return chunked_kl_divergence(h, w, gth, gtw, 16); });
    expect_close(got, want, dtype);
    c10::NoGradGuard no_grad;
    EXPECT_LE(test::relative_error(chunked_kl_divergence(hidden.to(gpu, dtype), weight.to(gpu, dtype), gth, gtw, 16),
                                   want.loss),
              dtype == at::kFloat ? 1e-4 : 1e-2);
    // A distribution against itself: zero up to float32 rounding of the row statistics.
    EXPECT_NEAR(chunked_kl_divergence(gth, gtw, gth, gtw, 16).item<double>(), 0.0, 1e-5);
  }
}

// 1000: 8 values per load; 1003: one at a time.
INSTANTIATE_TEST_SUITE_P(Vocab, LmLossesCuda, ::testing::Values(int64_t{1000}, int64_t{1003}));

}  // namespace
}  // namespace halo
