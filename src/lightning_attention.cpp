// Lightning attention in plain ATen ops, so autograd differentiates every implementation.
// The entry point validates shapes, upcasts to the compute dtype (float64 stays float64, anything
// else becomes float32 as in the reference), folds `scale` into q once and makes the initial
// state explicit (zeros when absent); the three implementations then see the same inputs.
// Decay powers are built as gamma^e with non-negative exponents only, so nothing overflows for
// strong decays or long sequences.
#include "halo/lightning_attention.h"

#include <ATen/ATen.h>

#include <cmath>
#include <iterator>
#include <utility>
#include <vector>

#include "halo/error.h"

namespace halo {
namespace {

constexpr const char* kImplNames[] = {"naive", "chunked", "recurrent"};

// [H, n] with gamma_h ^ exponents[e].
at::Tensor decay_powers(const at::Tensor& gamma, const at::Tensor& exponents) {
  return at::pow(gamma.unsqueeze(-1), exponents.unsqueeze(0));
}

// [H, n, n] with gamma_h ^ (i - j) for j <= i, else 0.
at::Tensor decay_matrix(const at::Tensor& gamma, int64_t n) {
  at::Tensor idx = at::arange(n, gamma.options());
  at::Tensor lag = (idx.unsqueeze(1) - idx.unsqueeze(0)).clamp_min(0);
  return at::pow(gamma.view({-1, 1, 1}), lag).tril();
}

// The quadratic form over the whole sequence: the reference the other two must match.
LightningOutput naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const at::Tensor& gamma, const at::Tensor& s0) {
  const int64_t t = q.size(2);
  at::Tensor pos = at::arange(t, gamma.options());
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * decay_matrix(gamma, t);
  at::Tensor q_decayed = q * decay_powers(gamma, pos + 1).unsqueeze(-1);
  at::Tensor out = at::matmul(scores, v) + at::matmul(q_decayed, s0);
  at::Tensor k_decayed = k * decay_powers(gamma, (t - 1) - pos).unsqueeze(-1);
  at::Tensor state = at::matmul(k_decayed.transpose(-1, -2), v) +
                     s0 * at::pow(gamma, static_cast<double>(t)).view({-1, 1, 1});
  return {out, state};
}

// Chunks of exactly `c` tokens (T a multiple of c). Intra-chunk terms and each chunk's own
// state contribution are batched over all chunks [B,H,N,...]; only the state hand-over from
// chunk to chunk is a loop over N, of one fused elementwise op each.
LightningOutput chunk_pass(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& gamma, const at::Tensor& s0, int64_t c) {
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), dk = q.size(3), dv = v.size(3);
  const int64_t n = t / c;
  at::Tensor qc = q.reshape({b, h, n, c, dk});
  at::Tensor kc = k.reshape({b, h, n, c, dk});
  at::Tensor vc = v.reshape({b, h, n, c, dv});
  at::Tensor pos = at::arange(c, gamma.options());

  at::Tensor scores = at::matmul(qc, kc.transpose(-1, -2)) * decay_matrix(gamma, c).unsqueeze(1);
  at::Tensor k_decayed = kc * decay_powers(gamma, (c - 1) - pos).view({h, 1, c, 1});
  at::Tensor chunk_kv = at::matmul(k_decayed.transpose(-1, -2), vc);  // [B,H,N,Dk,Dv]

  at::Tensor decay_c = at::pow(gamma, static_cast<double>(c)).view({h, 1, 1});
  std::vector<at::Tensor> starts;  // the state entering each chunk
  starts.reserve(n);
  at::Tensor state = s0;
  for (int64_t i = 0; i < n; ++i) {
    starts.push_back(state);
    state = at::addcmul(chunk_kv.select(2, i), state, decay_c);
  }
  at::Tensor q_decayed = qc * decay_powers(gamma, pos + 1).view({h, 1, c, 1});
  at::Tensor out = at::matmul(scores, vc) + at::matmul(q_decayed, at::stack(starts, 2));
  return {out.reshape({b, h, t, dv}), state};
}

// Whole chunks first, then the remainder as one shorter chunk (its own length sets its decays).
LightningOutput chunked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const at::Tensor& gamma, const at::Tensor& s0, int64_t c) {
  const int64_t t = q.size(2);
  const int64_t whole = t / c * c;
  std::vector<at::Tensor> outs;
  at::Tensor state = s0;
  struct Span { int64_t begin, len, chunk; };
  for (Span span : {Span{0, whole, c}, Span{whole, t - whole, t - whole}}) {
    if (span.len == 0) continue;
    auto part_of = [&](const at::Tensor& x) { return x.narrow(2, span.begin, span.len); };
    LightningOutput part = chunk_pass(part_of(q), part_of(k), part_of(v), gamma, state, span.chunk);
    outs.push_back(part.out);
    state = part.state;
  }
  return {outs.size() == 1 ? outs[0] : at::cat(outs, 2), state};
}

// One token at a time: the decode path (per token an outer product, one fused update, a matmul).
LightningOutput recurrent(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const at::Tensor& gamma, const at::Tensor& s0) {
  at::Tensor decay = gamma.view({-1, 1, 1});
  std::vector<at::Tensor> outs;
  outs.reserve(q.size(2));
  at::Tensor state = s0;
  for (int64_t i = 0; i < q.size(2); ++i) {
    at::Tensor kv = k.select(2, i).unsqueeze(-1) * v.select(2, i).unsqueeze(-2);
    state = at::addcmul(kv, state, decay);
    outs.push_back(at::matmul(q.narrow(2, i, 1), state));
  }
  return {outs.size() == 1 ? outs[0] : at::cat(outs, 2), state};
}

void check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& decay, const c10::optional<at::Tensor>& initial_state,
                  int64_t chunk_size) {
  const char* where = "lightning_attention: ";
  using Named = std::pair<const char*, const at::Tensor*>;
  for (auto [name, x] : {Named{"q", &q}, Named{"k", &k}, Named{"v", &v}}) {
    if (!x->defined()) fail(where, name, " is undefined");
    if (x->dim() != 4) fail(where, name, " must be 4-D [B,H,T,D], got shape ", x->sizes());
  }
  if (!at::isFloatingType(q.scalar_type()))
    fail(where, "q must be a floating tensor, got ", q.scalar_type());
  if (k.scalar_type() != q.scalar_type() || v.scalar_type() != q.scalar_type())
    fail(where, "q, k, v must share one dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ",
         v.scalar_type());
  if (k.sizes() != q.sizes())
    fail(where, "k has shape ", k.sizes(), " but q has ", q.sizes(), " (both [B,H,T,Dk])");
  if (v.sizes().slice(0, 3) != q.sizes().slice(0, 3))
    fail(where, "v has shape ", v.sizes(), " but q has ", q.sizes(), " (v must be [B,H,T,Dv])");
  const int64_t heads = q.size(1);
  if (!decay.defined() || decay.dim() != 1 || decay.size(0) != heads ||
      !at::isFloatingType(decay.scalar_type()))
    fail(where, "decay must be a floating tensor [H] = [", heads, "], got ",
         decay.defined() ? cat(decay.sizes(), " ", decay.scalar_type()) : "undefined");
  if (initial_state && initial_state->defined()) {
    const at::Tensor& s = *initial_state;
    std::vector<int64_t> want = {q.size(0), heads, q.size(3), v.size(3)};
    if (s.sizes() != at::IntArrayRef(want) || !at::isFloatingType(s.scalar_type()))
      fail(where, "initial_state must be a floating tensor [B,H,Dk,Dv] = ", at::IntArrayRef(want),
           ", got ", s.sizes(), " ", s.scalar_type());
    if (s.device() != q.device())
      fail(where, "initial_state is on ", s.device(), " but q on ", q.device());
  }
  if (k.device() != q.device() || v.device() != q.device() || decay.device() != q.device())
    fail(where, "q, k, v, decay must be on one device, got ", q.device(), ", ", k.device(), ", ",
         v.device(), ", ", decay.device());
  if (chunk_size < 1) fail(where, "chunk_size must be at least 1, got ", chunk_size);
}

}  // namespace

std::vector<double> alibi_slopes(int64_t num_heads) {
  if (num_heads < 1) fail("alibi_slopes: the number of heads must be at least 1, got ", num_heads);
  auto power_of_two_slopes = [](int64_t n) {
    std::vector<double> slopes;
    for (int64_t h = 1; h <= n; ++h) slopes.push_back(std::exp2(-8.0 * h / n));
    return slopes;
  };
  int64_t p = 1;
  while (p * 2 <= num_heads) p *= 2;
  std::vector<double> slopes = power_of_two_slopes(p);
  std::vector<double> finer = power_of_two_slopes(2 * p);
  for (int64_t i = 0; static_cast<int64_t>(slopes.size()) < num_heads; i += 2)
    slopes.push_back(finer[i]);
  return slopes;
}

at::Tensor alibi_decays(int64_t num_heads, at::ScalarType dtype) {
  std::vector<double> gammas;
  for (double m : alibi_slopes(num_heads)) gammas.push_back(std::exp(-m));
  return at::tensor(gammas, at::TensorOptions().dtype(at::kDouble)).to(dtype);
}

LightningImpl parse_lightning_impl(const std::string& name) {
  std::string valid;
  for (size_t i = 0; i < std::size(kImplNames); ++i) {
    if (name == kImplNames[i]) return static_cast<LightningImpl>(i);
    valid += cat(i == 0 ? "" : ", ", kImplNames[i]);
  }
  usage_fail("unknown lightning attention implementation '", name, "' (valid: ", valid, ")");
}

std::string to_string(LightningImpl impl) { return kImplNames[static_cast<int>(impl)]; }

LightningOutput lightning_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& decay, double scale, LightningImpl impl,
                                    const c10::optional<at::Tensor>& initial_state,
                                    int64_t chunk_size) {
  check_inputs(q, k, v, decay, initial_state, chunk_size);
  const at::ScalarType compute = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor qs = q.to(compute) * scale;
  at::Tensor ks = k.to(compute), vs = v.to(compute), gamma = decay.to(compute);
  at::Tensor s0 = initial_state && initial_state->defined()
                      ? initial_state->to(compute)
                      : at::zeros({q.size(0), q.size(1), q.size(3), v.size(3)}, qs.options());
  if (q.size(2) == 0) return {at::empty({q.size(0), q.size(1), 0, v.size(3)}, q.options()), s0};

  LightningOutput result;
  switch (impl) {
    case LightningImpl::naive: result = naive(qs, ks, vs, gamma, s0); break;
    case LightningImpl::chunked: result = chunked(qs, ks, vs, gamma, s0, chunk_size); break;
    case LightningImpl::recurrent: result = recurrent(qs, ks, vs, gamma, s0); break;
  }
  result.out = result.out.to(q.scalar_type());
  return result;
}

}  // namespace halo
