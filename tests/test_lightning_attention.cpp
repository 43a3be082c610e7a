// Lightning attention: the three implementations against a scalar-loop transcription of the
// recurrence, against each other across chunk sizes and split calls, gradients against central
// differences, the chunked form's hand-written backward against autograd through the naive
// form, the ALiBi decays, dtype handling and input checks. Numerics in float64 unless a test
// is about the low-precision path.
#include "halo/lightning_attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "halo/error.h"

namespace halo {
namespace {

const LightningImpl kImpls[] = {LightningImpl::naive, LightningImpl::chunked, LightningImpl::recurrent};

at::TensorOptions f64() {
  return at::TensorOptions().dtype(at::kDouble);
}

// max |a - b| relative to max |b|.
double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return INFINITY;
  return ((a.to(at::kDouble) - b.to(at::kDouble)).abs().max() / b.to(at::kDouble).abs().max()).item<double>();
}

struct Problem {
  at::Tensor q, k, v, decay, s0;
  double scale;
};

Problem random_problem(int64_t b, int64_t h, int64_t t, int64_t dk, int64_t dv, at::Tensor decay, uint64_t seed) {
  at::manual_seed(seed);
  return {at::randn({b, h, t, dk}, f64()),  at::randn({b, h, t, dk}, f64()),
          at::randn({b, h, t, dv}, f64()),  std::move(decay),
          at::randn({b, h, dk, dv}, f64()), 1.0 / std::sqrt(static_cast<double>(dk))};
}

// S = gamma S + k^T v ; o = scale q S, written out element by element.
LightningOutput scalar_reference(const Problem& p, bool with_state) {
  const int64_t B = p.q.size(0), H = p.q.size(1), T = p.q.size(2), Dk = p.q.size(3), Dv = p.v.size(3);
  at::Tensor out = at::zeros({B, H, T, Dv}, f64());
  at::Tensor state = with_state ? p.s0.clone() : at::zeros({B, H, Dk, Dv}, f64());
  auto q = p.q.accessor<double, 4>(), k = p.k.accessor<double, 4>(), v = p.v.accessor<double, 4>();
  auto o = out.accessor<double, 4>(), s = state.accessor<double, 4>();
  auto g = p.decay.accessor<double, 1>();
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t hi = 0; hi < H; ++hi)
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t i = 0; i < Dk; ++i)
          for (int64_t j = 0; j < Dv; ++j)
            s[bi][hi][i][j] = g[hi] * s[bi][hi][i][j] + k[bi][hi][t][i] * v[bi][hi][t][j];
        for (int64_t j = 0; j < Dv; ++j) {
          double acc = 0;
          for (int64_t i = 0; i < Dk; ++i) acc += q[bi][hi][t][i] * s[bi][hi][i][j];
          o[bi][hi][t][j] = p.scale * acc;
        }
      }
  return {out, state};
}

LightningOutput run(const Problem& p, LightningImpl impl, bool with_state, int64_t chunk = 64) {
  c10::optional<at::Tensor> s0;
  if (with_state) s0 = p.s0;
  return lightning_attention(p.q, p.k, p.v, p.decay, p.scale, impl, s0, chunk);
}

TEST(LightningAttention, HandComputedScalarCase) {
  // H=1, Dk=Dv=1, q=k=v=1, gamma=0.5, scale=2, S0=4:
  // S1 = 0.5*4 + 1 = 3, o1 = 6 ; S2 = 0.5*3 + 1 = 2.5, o2 = 5 ; S3 = 2.25, o3 = 4.5.
  at::Tensor ones = at::ones({1, 1, 3, 1}, f64());
  at::Tensor decay = at::full({1}, 0.5, f64());
  at::Tensor s0 = at::full({1, 1, 1, 1}, 4.0, f64());
  for (LightningImpl impl : kImpls)
    for (int64_t chunk : {1, 2, 3, 4}) {
      SCOPED_TRACE(to_string(impl) + " chunk " + std::to_string(chunk));
      LightningOutput r = lightning_attention(ones, ones, ones, decay, 2.0, impl, s0, chunk);
      ASSERT_EQ(r.out.sizes(), at::IntArrayRef({1, 1, 3, 1}));
      EXPECT_DOUBLE_EQ(r.out[0][0][0][0].item<double>(), 6.0);
      EXPECT_DOUBLE_EQ(r.out[0][0][1][0].item<double>(), 5.0);
      EXPECT_DOUBLE_EQ(r.out[0][0][2][0].item<double>(), 4.5);
      EXPECT_DOUBLE_EQ(r.state.item<double>(), 2.25);
    }
}

TEST(LightningAttention, ImplementationsMatchScalarReference) {
  const std::vector<at::Tensor> decay_sets = {alibi_decays(3, at::kDouble), at::tensor({0.3, 0.7, 0.97}, f64())};
  uint64_t seed = 1;
  for (const at::Tensor& decay : decay_sets)
    for (int64_t t : {1, 7, 37, 69})
      for (bool with_state : {false, true}) {
        Problem p = random_problem(2, 3, t, 5, 4, decay, seed++);
        LightningOutput want = scalar_reference(p, with_state);
        for (LightningImpl impl : kImpls)
          for (int64_t chunk : {1, 3, 16, 64}) {
            if (impl != LightningImpl::chunked && chunk != 64) continue;
            SCOPED_TRACE(to_string(impl) + " chunk " + std::to_string(chunk) + " T " + std::to_string(t) +
                         (with_state ? " with state" : " no state") + " decay " +
                         std::to_string(decay[0].item<double>()));
            LightningOutput got = run(p, impl, with_state, chunk);
            EXPECT_EQ(got.out.scalar_type(), at::kDouble);
            EXPECT_EQ(got.state.scalar_type(), at::kDouble);
            EXPECT_LE(rel_diff(got.out, want.out), 1e-10);
            EXPECT_LE(rel_diff(got.state, want.state), 1e-10);
          }
      }
}

TEST(LightningAttention, StateCarriesAcrossCalls) {
  Problem p = random_problem(2, 3, 50, 6, 3, alibi_decays(3, at::kDouble), 42);
  LightningOutput whole = run(p, LightningImpl::naive, true);
  for (LightningImpl impl : kImpls)
    for (int64_t t1 : {1, 17, 49}) {
      SCOPED_TRACE(to_string(impl) + " split at " + std::to_string(t1));
      auto head = [&](const at::Tensor& x) { return x.narrow(2, 0, t1); };
      auto tail = [&](const at::Tensor& x) { return x.narrow(2, t1, 50 - t1); };
      LightningOutput first = lightning_attention(head(p.q), head(p.k), head(p.v), p.decay, p.scale, impl, p.s0, 16);
      LightningOutput second =
          lightning_attention(tail(p.q), tail(p.k), tail(p.v), p.decay, p.scale, impl, first.state, 16);
      EXPECT_LE(rel_diff(at::cat({first.out, second.out}, 2), whole.out), 1e-10);
      EXPECT_LE(rel_diff(second.state, whole.state), 1e-10);
    }
}

TEST(LightningAttention, ChunkedPrefillThenRecurrentDecode) {
  Problem p = random_problem(1, 3, 40, 4, 4, alibi_decays(3, at::kDouble), 7);
  LightningOutput whole = run(p, LightningImpl::naive, false);
  LightningOutput prefill = lightning_attention(p.q.narrow(2, 0, 30), p.k.narrow(2, 0, 30), p.v.narrow(2, 0, 30),
                                                p.decay, p.scale, LightningImpl::chunked, {}, 8);
  std::vector<at::Tensor> outs = {prefill.out};
  at::Tensor state = prefill.state;
  for (int64_t t = 30; t < 40; ++t) {
    LightningOutput step = lightning_attention(p.q.narrow(2, t, 1), p.k.narrow(2, t, 1), p.v.narrow(2, t, 1), p.decay,
                                               p.scale, LightningImpl::recurrent, state);
    outs.push_back(step.out);
    state = step.state;
  }
  EXPECT_LE(rel_diff(at::cat(outs, 2), whole.out), 1e-10);
  EXPECT_LE(rel_diff(state, whole.state), 1e-10);
}

TEST(LightningAttention, GradientsMatchFiniteDifferences) {
  // T=7 with chunk 3: two whole chunks and a remainder of one.
  Problem p = random_problem(1, 2, 7, 3, 2, at::tensor({0.6, 0.9}, f64()), 3);
  at::manual_seed(4);
  at::Tensor w_out = at::randn({1, 2, 7, 2}, f64());
  at::Tensor w_state = at::randn({1, 2, 3, 2}, f64());
  for (LightningImpl impl : kImpls) {
    SCOPED_TRACE(to_string(impl));
    std::vector<at::Tensor> inputs = {p.q, p.k, p.v, p.s0};
    auto loss = [&](const std::vector<at::Tensor>& x) {
      LightningOutput r = lightning_attention(x[0], x[1], x[2], p.decay, p.scale, impl, x[3], 3);
      return (r.out * w_out).sum() + (r.state * w_state).sum();
    };
    std::vector<at::Tensor> leaves;
    for (const at::Tensor& x : inputs) leaves.push_back(x.clone().requires_grad_(true));
    loss(leaves).backward();

    const double eps = 1e-6;
    const char* names[] = {"q", "k", "v", "initial_state"};
    for (size_t which = 0; which < inputs.size(); ++which) {
      ASSERT_TRUE(leaves[which].grad().defined()) << names[which];
      at::Tensor numeric = at::zeros_like(inputs[which]);
      for (int64_t e = 0; e < inputs[which].numel(); ++e) {
        std::vector<at::Tensor> plus = inputs, minus = inputs;
        plus[which] = inputs[which].clone();
        minus[which] = inputs[which].clone();
        plus[which].view(-1)[e] += eps;
        minus[which].view(-1)[e] -= eps;
        numeric.view(-1)[e] = (loss(plus) - loss(minus)).item<double>() / (2 * eps);
      }
      EXPECT_LE(rel_diff(leaves[which].grad(), numeric), 1e-6) << names[which];
    }
  }
}

// Gradients of q, k, v and the initial state from a loss over out and the final state.
struct Grads {
  at::Tensor q, k, v, s0;
};

enum class LossUses { both, out_only, state_only };

Grads grads_of(const Problem& p, LightningImpl impl, bool with_state, int64_t chunk, LossUses uses,
               const at::Tensor& w_out, const at::Tensor& w_state) {
  at::Tensor q = p.q.clone().requires_grad_(true), k = p.k.clone().requires_grad_(true),
             v = p.v.clone().requires_grad_(true), s0 = p.s0.clone().requires_grad_(true);
  c10::optional<at::Tensor> state;
  if (with_state) state = s0;
  LightningOutput r = lightning_attention(q, k, v, p.decay, p.scale, impl, state, chunk);
  at::Tensor loss = at::zeros({}, w_out.options());
  if (uses != LossUses::state_only) loss = loss + (r.out * w_out).sum();
  if (uses != LossUses::out_only) loss = loss + (r.state * w_state).sum();
  loss.backward();
  auto grad = [](const at::Tensor& x) { return x.grad().defined() ? x.grad() : at::zeros_like(x); };
  return {grad(q), grad(k), grad(v), grad(s0)};
}

TEST(LightningAttention, ChunkedGradientsMatchNaiveAutograd) {
  struct Case {
    int64_t t, chunk;
    bool with_state;
    LossUses uses;
  };
  const Case cases[] = {{1, 64, true, LossUses::both},      {7, 3, true, LossUses::both},
                        {37, 16, false, LossUses::both},    {48, 16, true, LossUses::both},
                        {70, 64, true, LossUses::out_only}, {70, 64, true, LossUses::state_only},
                        {5, 8, true, LossUses::both},       {64, 1, true, LossUses::both}};
  uint64_t seed = 100;
  for (const Case& c : cases) {
    SCOPED_TRACE("T " + std::to_string(c.t) + " chunk " + std::to_string(c.chunk) +
                 (c.with_state ? " with state" : " no state") + " uses " + std::to_string(static_cast<int>(c.uses)));
    Problem p = random_problem(2, 3, c.t, 5, 4, at::tensor({0.3, 0.7, 0.97}, f64()), seed++);
    at::Tensor w_out = at::randn({2, 3, c.t, 4}, f64()), w_state = at::randn({2, 3, 5, 4}, f64());
    Grads want = grads_of(p, LightningImpl::naive, c.with_state, c.chunk, c.uses, w_out, w_state);
    Grads got = grads_of(p, LightningImpl::chunked, c.with_state, c.chunk, c.uses, w_out, w_state);
    if (c.uses == LossUses::state_only)  // q only reaches the output
      EXPECT_EQ(got.q.abs().max().item<double>(), 0.0);
    else
      EXPECT_LE(rel_diff(got.q, want.q), 1e-10);
    EXPECT_LE(rel_diff(got.k, want.k), 1e-10);
    EXPECT_LE(rel_diff(got.v, want.v), 1e-10);
    if (c.with_state) EXPECT_LE(rel_diff(got.s0, want.s0), 1e-10);
  }
}

TEST(LightningAttention, ChunkedTakesStridedInputs) {
  // The mixer's layout: [B,T,H,D] transposed to [B,H,T,D] (no copy).
  Problem p = random_problem(2, 3, 21, 4, 6, alibi_decays(3, at::kDouble), 11);
  Problem strided = p;
  strided.q = p.q.transpose(1, 2).contiguous().transpose(1, 2);
  strided.k = p.k.transpose(1, 2).contiguous().transpose(1, 2);
  strided.v = p.v.transpose(1, 2).contiguous().transpose(1, 2);
  ASSERT_FALSE(strided.q.is_contiguous());
  at::manual_seed(12);
  at::Tensor w_out = at::randn({2, 3, 21, 6}, f64()), w_state = at::randn({2, 3, 4, 6}, f64());
  Grads want = grads_of(p, LightningImpl::naive, true, 8, LossUses::both, w_out, w_state);
  Grads got = grads_of(strided, LightningImpl::chunked, true, 8, LossUses::both, w_out, w_state);
  EXPECT_LE(rel_diff(got.q, want.q), 1e-10);
  EXPECT_LE(rel_diff(got.k, want.k), 1e-10);
  EXPECT_LE(rel_diff(got.v, want.v), 1e-10);
  EXPECT_LE(rel_diff(got.s0, want.s0), 1e-10);
  EXPECT_LE(rel_diff(run(strided, LightningImpl::chunked, true, 8).out, run(p, LightningImpl::naive, true).out), 1e-10);
}

TEST(LightningAttention, ChunkedLowPrecisionGradients) {
  Problem p = random_problem(1, 3, 19, 8, 8, alibi_decays(3), 13);
  Problem rounded = p;
  rounded.q = p.q.to(at::kBFloat16).to(at::kDouble);
  rounded.k = p.k.to(at::kBFloat16).to(at::kDouble);
  rounded.v = p.v.to(at::kBFloat16).to(at::kDouble);
  rounded.decay = p.decay.to(at::kDouble);
  at::manual_seed(14);
  at::Tensor w_out = at::randn({1, 3, 19, 8}, f64()).to(at::kBFloat16).to(at::kDouble);
  at::Tensor w_state = at::randn({1, 3, 8, 8}, f64());
  Grads want = grads_of(rounded, LightningImpl::naive, true, 8, LossUses::both, w_out, w_state);

  Problem low = p;
  low.q = p.q.to(at::kBFloat16);
  low.k = p.k.to(at::kBFloat16);
  low.v = p.v.to(at::kBFloat16);
  low.s0 = p.s0.to(at::kFloat);
  Grads got =
      grads_of(low, LightningImpl::chunked, true, 8, LossUses::both, w_out.to(at::kBFloat16), w_state.to(at::kFloat));
  EXPECT_EQ(got.q.scalar_type(), at::kBFloat16);
  EXPECT_EQ(got.v.scalar_type(), at::kBFloat16);
  EXPECT_EQ(got.s0.scalar_type(), at::kFloat);
  EXPECT_LE(rel_diff(got.q, want.q), 1e-2);
  EXPECT_LE(rel_diff(got.k, want.k), 1e-2);
  EXPECT_LE(rel_diff(got.v, want.v), 1e-2);
  EXPECT_LE(rel_diff(got.s0, want.s0), 1e-5);
}

TEST(LightningAttention, ChunkedOutputsTakeInPlaceOps) {
  Problem p = random_problem(1, 3, 9, 4, 4, alibi_decays(3, at::kDouble), 16);
  for (int64_t chunk : {4, 9}) {  // two spans, one span
    at::Tensor q = p.q.clone().requires_grad_(true);
    LightningOutput r = lightning_attention(q, p.k, p.v, p.decay, p.scale, LightningImpl::chunked, p.s0, chunk);
    r.out.mul_(2);
    r.state.add_(1);
    (r.out.sum() + r.state.sum()).backward();
    Grads want = grads_of(p, LightningImpl::naive, true, chunk, LossUses::both, at::full({1, 3, 9, 4}, 2.0, f64()),
                          at::ones({1, 3, 4, 4}, f64()));
    EXPECT_LE(rel_diff(q.grad(), want.q), 1e-10) << chunk;
  }
}

TEST(LightningAttention, ChunkedRefusesDecaysThatWantAGradient) {
  Problem p = random_problem(1, 3, 5, 4, 4, alibi_decays(3, at::kDouble), 15);
  at::Tensor decay = p.decay.clone().requires_grad_(true);
  EXPECT_THROW(lightning_attention(p.q, p.k, p.v, decay, p.scale, LightningImpl::chunked), Error);
  EXPECT_NO_THROW(lightning_attention(p.q, p.k, p.v, decay.detach(), p.scale, LightningImpl::chunked));
  EXPECT_NO_THROW(lightning_attention(p.q, p.k, p.v, decay, p.scale, LightningImpl::naive));
}

TEST(LightningAttention, AlibiSlopes) {
  std::vector<double> s16 = alibi_slopes(16);
  ASSERT_EQ(s16.size(), 16u);
  for (int h = 1; h <= 16; ++h) EXPECT_DOUBLE_EQ(s16[h - 1], std::exp2(-0.5 * h)) << h;
  EXPECT_NEAR(s16[0], 0.70710678118654752, 1e-15);
  EXPECT_DOUBLE_EQ(s16[15], 0.00390625);

  // H=12: P=8 gives 2^-1..2^-8; then 2P=16 slopes at even positions 2^-0.5, 2^-1.5, ... (4).
  std::vector<double> want12 = {
      0.5,       0.25,       0.125,          0.0625,          0.03125,         0.015625,
      0.0078125, 0.00390625, std::sqrt(0.5), std::exp2(-1.5), std::exp2(-2.5), std::exp2(-3.5)};
  std::vector<double> s12 = alibi_slopes(12);
  ASSERT_EQ(s12.size(), want12.size());
  for (size_t i = 0; i < want12.size(); ++i) EXPECT_DOUBLE_EQ(s12[i], want12[i]) << i;

  // H=3: P=2 gives 2^-4, 2^-8; then one slope of 4: 2^-2.
  std::vector<double> s3 = alibi_slopes(3);
  ASSERT_EQ(s3.size(), 3u);
  EXPECT_DOUBLE_EQ(s3[0], 0.0625);
  EXPECT_DOUBLE_EQ(s3[1], 0.00390625);
  EXPECT_DOUBLE_EQ(s3[2], 0.25);

  at::Tensor gamma = alibi_decays(16);
  EXPECT_EQ(gamma.scalar_type(), at::kFloat);
  ASSERT_EQ(gamma.sizes(), at::IntArrayRef({16}));
  EXPECT_FLOAT_EQ(gamma[0].item<float>(), static_cast<float>(std::exp(-std::sqrt(0.5))));
  EXPECT_FLOAT_EQ(gamma[15].item<float>(), static_cast<float>(std::exp(-0.00390625)));
  EXPECT_THROW(alibi_slopes(0), Error);
}

TEST(LightningAttention, ParseImpl) {
  for (LightningImpl impl : kImpls) EXPECT_EQ(parse_lightning_impl(to_string(impl)), impl);
  EXPECT_EQ(to_string(LightningImpl::chunked), "chunked");
  try {
    parse_lightning_impl("fast");
    FAIL() << "no error for an unknown implementation";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), kExitUsage);
    EXPECT_NE(std::string(e.what()).find("'fast'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("naive, chunked, recurrent"), std::string::npos) << e.what();
  }
}

TEST(LightningAttention, LowPrecisionComputesInFloat32) {
  Problem p = random_problem(1, 3, 21, 8, 8, alibi_decays(3), 9);
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    // The float64 reference on the same rounded inputs (the decays are float32 in both).
    Problem rounded = p;
    rounded.q = p.q.to(dtype).to(at::kDouble);
    rounded.k = p.k.to(dtype).to(at::kDouble);
    rounded.v = p.v.to(dtype).to(at::kDouble);
    rounded.decay = p.decay.to(at::kDouble);
    LightningOutput want = run(rounded, LightningImpl::naive, true);
    for (LightningImpl impl : kImpls) {
      SCOPED_TRACE(to_string(impl) + " " + std::string(c10::toString(dtype)));
      LightningOutput got =
          lightning_attention(p.q.to(dtype), p.k.to(dtype), p.v.to(dtype), p.decay, p.scale, impl, p.s0, 8);
      EXPECT_EQ(got.out.scalar_type(), dtype);
      EXPECT_EQ(got.state.scalar_type(), at::kFloat);
      // The recurrence runs in float32; only the output is rounded to dtype (bf16: 2^-8).
      EXPECT_LE(rel_diff(got.out, want.out), dtype == at::kFloat ? 1e-5 : 1e-2);
      EXPECT_LE(rel_diff(got.state, want.state), 1e-5);
    }
  }
}

TEST(LightningAttention, EmptySequenceReturnsInitialState) {
  Problem p = random_problem(2, 3, 0, 4, 5, alibi_decays(3, at::kDouble), 5);
  for (LightningImpl impl : kImpls) {
    LightningOutput r = run(p, impl, true);
    EXPECT_EQ(r.out.sizes(), at::IntArrayRef({2, 3, 0, 5})) << to_string(impl);
    EXPECT_TRUE(at::equal(r.state, p.s0)) << to_string(impl);
  }
}

TEST(LightningAttention, RejectsBadInputs) {
  Problem p = random_problem(2, 3, 5, 4, 6, alibi_decays(3, at::kDouble), 6);
  auto call = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& decay,
                  const c10::optional<at::Tensor>& s0, int64_t chunk = 64) {
    lightning_attention(q, k, v, decay, p.scale, LightningImpl::chunked, s0, chunk);
  };
  EXPECT_NO_THROW(call(p.q, p.k, p.v, p.decay, p.s0));
  EXPECT_THROW(call(p.q[0], p.k, p.v, p.decay, p.s0), Error);               // 3-D q
  EXPECT_THROW(call(p.q, p.k.narrow(3, 0, 3), p.v, p.decay, p.s0), Error);  // Dk differs
  EXPECT_THROW(call(p.q, p.k, p.v.narrow(2, 0, 4), p.decay, p.s0), Error);  // T differs
  EXPECT_THROW(call(p.q, p.k, p.v, p.decay.narrow(0, 0, 2), p.s0), Error);  // H differs
  EXPECT_THROW(call(p.q, p.k, p.v, p.decay, p.s0.narrow(3, 0, 5)), Error);  // state Dv
  EXPECT_THROW(call(p.q, p.k.to(at::kFloat), p.v, p.decay, p.s0), Error);   // mixed dtypes
  EXPECT_THROW(call(p.q.to(at::kLong), p.k.to(at::kLong), p.v.to(at::kLong), p.decay, p.s0),
               Error);                                         // integer inputs
  EXPECT_THROW(call(p.q, p.k, p.v, p.decay, p.s0, 0), Error);  // chunk size
  try {
    call(p.q, p.k, p.v.narrow(2, 0, 4), p.decay, p.s0);
    FAIL() << "no error for a v of another length";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("v has shape [2, 3, 4, 6]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace halo
