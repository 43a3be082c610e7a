// Lightning attention. The entry point validates shapes, makes the initial state explicit
// (zeros when absent) in the compute dtype (float64 stays float64, anything else becomes float32
// as in the reference) and dispatches:
// - naive and recurrent: plain ATen ops on q, k, v upcast with `scale` folded into q; autograd
//   differentiates them.
// - chunked: a torch::autograd::Function with a hand-written backward. Every intra-chunk and
//   chunk-state term is one matmul batched over all B*H*N chunks; only the state hand-over from
//   chunk to chunk is sequential, a scan (a CUDA kernel in lightning_scan_cuda.cu when built with
//   HALO_CUDA, else a loop of fused ATen ops), run forward for the states and in reverse for
//   their gradients. The backward recomputes the states rather than saving [B,H,N,Dk,Dv].
// - chunked with 16-bit CUDA inputs (head dims 64 or 128, chunk 64, HALO_CUDA builds): fused
//   tensor-core kernels instead (FusedChunkedLightning below, lightning_chunk_cuda.cu).
// Decay powers are built as gamma^e with non-negative exponents only, so nothing overflows for
// strong decays or long sequences.
#include "halo/lightning_attention.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <array>
#include <cmath>
#include <iterator>
#include <utility>
#include <vector>

#include "halo/error.h"
#ifdef HALO_WITH_CUDA_KERNELS
#include "ops/lightning_chunk_cuda.h"
#include "ops/lightning_scan_cuda.h"
#endif

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
LightningOutput naive(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& gamma,
                      const at::Tensor& s0) {
  const int64_t t = q.size(2);
  at::Tensor pos = at::arange(t, gamma.options());
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * decay_matrix(gamma, t);
  at::Tensor q_decayed = q * decay_powers(gamma, pos + 1).unsqueeze(-1);
  at::Tensor out = at::matmul(scores, v) + at::matmul(q_decayed, s0);
  at::Tensor k_decayed = k * decay_powers(gamma, (t - 1) - pos).unsqueeze(-1);
  at::Tensor state =
      at::matmul(k_decayed.transpose(-1, -2), v) + s0 * at::pow(gamma, static_cast<double>(t)).view({-1, 1, 1});
  return {out, state};
}

// Decay tables of one chunk length c, in the compute dtype, shaped to broadcast over
// [B,H,N,c,*] (scale folded into the two that produce the output).
struct ChunkDecays {
  at::Tensor scores;  // [1,H,1,c,c]: scale * gamma^(i-j) for j <= i, else 0
  at::Tensor query;   // [1,H,1,c,1]: scale * gamma^(i+1), the entering state seen by query i
  at::Tensor key;     // [1,H,1,c,1]: gamma^(c-1-j), key j's share of the leaving state
  at::Tensor chunk;   // [H]: gamma^c, the state carried over one whole chunk
};

ChunkDecays chunk_decays(const at::Tensor& gamma, double scale, int64_t c) {
  const int64_t h = gamma.size(0);
  at::Tensor pos = at::arange(c, gamma.options());
  return {(decay_matrix(gamma, c) * scale).view({1, h, 1, c, c}),
          (decay_powers(gamma, pos + 1) * scale).view({1, h, 1, c, 1}),
          decay_powers(gamma, (c - 1) - pos).view({1, h, 1, c, 1}), at::pow(gamma, static_cast<double>(c))};
}

// The state walk over the chunks of x [B,H,N,Dk,Dv], in place (contract: lightning_scan.h):
// forward, x_n <- s and s <- g^c s + x_n for n = 0..N-1, from s = edge; reverse, the same
// walk from n = N-1 down. Returns the final s. Without the CUDA kernel: one fused update and
// one copy per chunk.
at::Tensor scan_chunks(const at::Tensor& x, const at::Tensor& chunk_decay, const at::Tensor& edge, bool reverse) {
#ifdef HALO_WITH_CUDA_KERNELS
  if (x.is_cuda()) {
    at::Tensor start = edge.contiguous();
    at::Tensor last = at::empty_like(start);
    lightning_scan_cuda(x, chunk_decay, start, last, reverse);
    return last;
  }
#endif
  const int64_t n = x.size(2);
  at::Tensor g = chunk_decay.view({-1, 1, 1});
  at::Tensor s = edge;
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor slot = x.select(2, reverse ? n - 1 - i : i);
    at::Tensor next = at::addcmul(slot, s, g);
    slot.copy_(s);
    s = std::move(next);
  }
  return s;
}

// One span of n whole chunks of c tokens. q, k: [B,H,n*c,Dk], v, dout: [B,H,n*c,Dv], all
// contiguous in the compute dtype; every matmul is batched over the B*H*n chunks.
struct Span {
  const at::Tensor &q, &k, &v;
  const ChunkDecays& decays;
  int64_t c;

  int64_t chunks() const { return q.size(2) / c; }
  // [B,H,n*c,D] or [B,H,n,c,D] as the matmul batch [B*H*n, c, D].
  at::Tensor flat(const at::Tensor& x) const { return x.view({-1, c, x.size(-1)}); }
  at::Tensor chunked(const at::Tensor& x) const { return x.view({x.size(0), x.size(1), chunks(), c, x.size(-1)}); }
  // [B*H*n, c, c] masked in place by the decayed causal mask.
  at::Tensor& mask(at::Tensor& scores) const {
    scores.view({q.size(0), q.size(1), chunks(), c, c}).mul_(decays.scores);
    return scores;
  }
  // Each chunk's own contribution to the state leaving it, U_n = (k_n . b)^T v_n: [B,H,n,Dk,Dv].
  at::Tensor chunk_states(const at::Tensor& k_decayed) const {
    return at::bmm(flat(k_decayed).transpose(1, 2), flat(v))
        .view({q.size(0), q.size(1), chunks(), q.size(3), v.size(3)});
  }
  at::Tensor flat_states(const at::Tensor& x) const { return x.view({-1, q.size(3), v.size(3)}); }

  // out_n = (q_n k_n^T . M) v_n + (q_n . a) S_n ; returns {out, the state leaving the span}.
  // out is a tensor of its own, not a view (a custom Function's view outputs refuse in-place use).
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& s_in) const {
    at::Tensor out = at::empty(v.sizes(), v.options());
    at::Tensor out_flat = flat(out);
    at::Tensor scores = at::bmm(flat(q), flat(k).transpose(1, 2));
    at::bmm_out(out_flat, mask(scores), flat(v));
    scores.reset();
    at::Tensor states = chunk_states(chunked(k) * decays.key);
    at::Tensor s_out = scan_chunks(states, decays.chunk, s_in, false);  // states: S_n entering
    out_flat.baddbmm_(flat(chunked(q) * decays.query), flat_states(states));
    return {out, s_out};
  }

  // The gradients of q, k, v and of the entering state, from those of out and the leaving state.
  // With a_i = scale gamma^(i+1), b_j = gamma^(c-1-j), M_ij = scale gamma^(i-j) (j <= i), S_n the
  // state entering chunk n (S_{n+1} = g^c S_n + U_n) and G_n = dL/dS_n:
  //   G_n = g^c G_{n+1} + (q_n . a)^T do_n, from G_N = ds_out   (reverse scan; ds_in = G_0)
  //   dq_n = (do_n v_n^T . M) k_n + (do_n . a) S_n^T
  //   dk_n = (do_n v_n^T . M)^T q_n + (v_n . b) G_{n+1}^T
  //   dv_n = (q_n k_n^T . M)^T do_n + (k_n . b) G_{n+1}
  // The entering states are recomputed from k, v (one matmul and one scan), not saved.
  std::array<at::Tensor, 4> backward(const at::Tensor& s_in, const at::Tensor& dout, const at::Tensor& ds_out) const {
    at::Tensor k_decayed = chunked(k) * decays.key;
    at::Tensor states = chunk_states(k_decayed);
    scan_chunks(states, decays.chunk, s_in, false);  // states: S_n entering chunk n
    at::Tensor dstates = at::bmm(flat(chunked(q) * decays.query).transpose(1, 2), flat(dout))
                             .view(states.sizes());  // the direct gradient of each S_n
    at::Tensor dscores = at::bmm(flat(dout), flat(v).transpose(1, 2));
    mask(dscores);
    at::Tensor dq = at::bmm(dscores, flat(k));
    dq.baddbmm_(flat(chunked(dout) * decays.query), flat_states(states).transpose(1, 2));
    states.reset();
    at::Tensor ds_in = scan_chunks(dstates, decays.chunk, ds_out, true);  // dstates: G_{n+1}
    at::Tensor dk = at::bmm(dscores.transpose(1, 2), flat(q));
    dscores.reset();
    dk.baddbmm_(flat(chunked(v) * decays.key), flat_states(dstates).transpose(1, 2));
    at::Tensor scores = at::bmm(flat(q), flat(k).transpose(1, 2));
    at::Tensor dv = at::bmm(mask(scores).transpose(1, 2), flat(dout));
    scores.reset();
    dv.baddbmm_(flat(k_decayed), flat_states(dstates));
    return {dq.view(q.sizes()), dk.view(k.sizes()), dv.view(v.sizes()), ds_in};
  }
};

// The sequence as spans: the whole chunks, then the remainder as one shorter chunk (its own
// length sets its decays). Either may be absent.
struct SpanRange {
  int64_t begin, len, c;
};

std::vector<SpanRange> spans_of(int64_t t, int64_t c) {
  std::vector<SpanRange> spans;
  const int64_t whole = t / c * c;
  if (whole > 0) spans.push_back({0, whole, c});
  if (t > whole) spans.push_back({whole, t - whole, t - whole});
  return spans;
}

// x[:, :, span] in dtype and contiguous, in one pass (the upcast is the copy). to() alone would
// return a strided x of the right dtype as it is.
at::Tensor span_input(const at::Tensor& x, const SpanRange& r, at::ScalarType dtype) {
  return x.narrow(2, r.begin, r.len)
      .to(x.options().dtype(dtype), /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous)
      .contiguous();
}

// Gathers the spans' pieces into one [B,H,T,D] tensor of `dtype` (one span: its piece, cast).
struct SpanJoin {
  at::IntArrayRef sizes;
  at::ScalarType dtype;
  at::Tensor whole;

  void put(const SpanRange& r, const at::Tensor& piece) {
    if (r.len == sizes[2]) {
      whole = piece.to(dtype);
      return;
    }
    if (!whole.defined()) whole = at::empty(sizes, piece.options().dtype(dtype));
    whole.narrow(2, r.begin, r.len).copy_(piece);
  }
};

// The chunked form with a hand-written backward. Inputs: q, k, v in their own dtype (upcast
// span by span to the compute dtype, that of s0), s0 [B,H,Dk,Dv], gamma [H] in the compute
// dtype. Outputs: out in q's dtype and the final state. Saved for backward: q, k, v as given
// (bf16 stays bf16: half the memory of float32 copies, for one more upcast), and per span its
// entering state and decay tables (small); the per-chunk states are recomputed. The decays get
// no gradient (they are fixed).
struct ChunkedLightning : public torch::autograd::Function<ChunkedLightning> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q,
                                                const at::Tensor& k, const at::Tensor& v, const at::Tensor& s0,
                                                const at::Tensor& gamma, double scale, int64_t chunk) {
    const at::ScalarType compute = s0.scalar_type();
    SpanJoin out{v.sizes(), q.scalar_type(), {}};
    std::vector<at::Tensor> saved = {q, k, v};  // then per span: its entering state, decays
    at::Tensor state = s0;
    for (const SpanRange& r : spans_of(q.size(2), chunk)) {
      at::Tensor qs = span_input(q, r, compute), ks = span_input(k, r, compute), vs = span_input(v, r, compute);
      ChunkDecays decays = chunk_decays(gamma, scale, r.c);
      saved.insert(saved.end(), {state, decays.scores, decays.query, decays.key, decays.chunk});
      auto [piece, leaving] = Span{qs, ks, vs, decays, r.c}.forward(state);
      out.put(r, piece);
      state = leaving;
    }
    ctx->save_for_backward(saved);
    ctx->saved_data["chunk"] = chunk;
    return {out.whole, state};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2];
    const at::ScalarType compute = saved[3].scalar_type();  // the first span's entering state
    SpanJoin dq{q.sizes(), q.scalar_type(), {}}, dk{k.sizes(), k.scalar_type(), {}}, dv{v.sizes(), v.scalar_type(), {}};
    const std::vector<SpanRange> spans = spans_of(q.size(2), ctx->saved_data["chunk"].toInt());
    at::Tensor ds = grads[1];
    for (size_t i = spans.size(); i-- > 0;) {
      const SpanRange& r = spans[i];
      const at::Tensor* span_saved = &saved[3 + 5 * i];
      ChunkDecays decays{span_saved[1], span_saved[2], span_saved[3], span_saved[4]};
      at::Tensor qs = span_input(q, r, compute), ks = span_input(k, r, compute), vs = span_input(v, r, compute),
                 dout = span_input(grads[0], r, compute);
      auto [dqs, dks, dvs, ds_in] = Span{qs, ks, vs, decays, r.c}.backward(span_saved[0], dout, ds);
      dq.put(r, dqs);
      dk.put(r, dks);
      dv.put(r, dvs);
      ds = ds_in;
    }
    return {dq.whole, dk.whole, dv.whole, ds, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

#ifdef HALO_WITH_CUDA_KERNELS
// The chunked form for 16-bit CUDA inputs on the fused kernels (lightning_chunk_cuda.h):
// scores stay on chip and the states pass between kernels in the inputs' dtype. Saved for
// backward: q, k, v, s0 and the decays; the backward recomputes the entering states S_n (one
// forward recurrence) after the reverse recurrence for G_{n+1} and ds_in = G_0, then computes
// dq, dk, dv chunk by chunk. The output is laid out [B,T,H,D] in
// memory (the mixer's next transpose is free).
struct FusedChunkedLightning : public torch::autograd::Function<FusedChunkedLightning> {
  static at::Tensor states_like(const at::Tensor& q) {
    const int64_t chunks = (q.size(2) + kFusedLightningChunk - 1) / kFusedLightningChunk;
    return at::empty({q.size(0), q.size(1), chunks, q.size(3), q.size(3)}, q.options());
  }

  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q,
                                                const at::Tensor& k, const at::Tensor& v, const at::Tensor& s0,
                                                const at::Tensor& gamma, double scale) {
    const int64_t b = q.size(0), h = q.size(1), t = q.size(2), d = q.size(3);
    at::Tensor states = states_like(q), last = at::empty_like(s0);
    lightning_chunk_recurrence_cuda(k, v, gamma, s0, last, states, scale, /*reverse=*/false);
    at::Tensor out = at::empty_strided({b, h, t, d}, {t * h * d, d, h * d, 1}, q.options());
    lightning_chunk_forward_cuda(q, k, v, states, gamma, scale, out);
    ctx->save_for_backward({q, k, v, s0, gamma});
    ctx->saved_data["scale"] = scale;
    return {out, last};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &s0 = saved[3], &gamma = saved[4];
    const double scale = ctx->saved_data["scale"].toDouble();
    at::Tensor dout = grads[0].defined() ? grads[0] : at::zeros_like(q);
    if (!lightning_chunk_cuda_supported(dout, dout, dout)) dout = dout.contiguous();
    at::Tensor ds_out = grads[1].defined() ? grads[1].to(at::kFloat).contiguous() : at::zeros_like(s0);
    at::Tensor states = states_like(q), grad_states = states_like(q);
    at::Tensor unused = at::empty_like(s0), ds_in = at::empty_like(s0);
    // The two recurrences are independent but run in turn: side by side on two streams they
    // slowed each other down (1x64K fwd+bwd on an H100: 3.51 ms in turn, 4.07-4.13 side by side).
    lightning_chunk_recurrence_cuda(q, dout, gamma, ds_out, ds_in, grad_states, scale, /*reverse=*/true);
    lightning_chunk_recurrence_cuda(k, v, gamma, s0, unused, states, scale, /*reverse=*/false);
    at::Tensor dq = at::empty_like(q), dk = at::empty_like(k), dv = at::empty_like(v);
    lightning_chunk_backward_cuda(q, k, v, dout, states, grad_states, gamma, scale, dq, dk, dv);
    return {dq, dk, dv, ds_in, at::Tensor(), at::Tensor()};
  }
};
#endif

// One token at a time: the decode path (per token an outer product, one fused update, a matmul).
LightningOutput recurrent(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& gamma,
                          const at::Tensor& s0) {
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

void check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& decay,
                  const c10::optional<at::Tensor>& initial_state, int64_t chunk_size) {
  const char* where = "lightning_attention: ";
  using Named = std::pair<const char*, const at::Tensor*>;
  for (auto [name, x] : {Named{"q", &q}, Named{"k", &k}, Named{"v", &v}}) {
    if (!x->defined()) fail(where, name, " is undefined");
    if (x->dim() != 4) fail(where, name, " must be 4-D [B,H,T,D], got shape ", x->sizes());
  }
  if (!at::isFloatingType(q.scalar_type())) fail(where, "q must be a floating tensor, got ", q.scalar_type());
  if (k.scalar_type() != q.scalar_type() || v.scalar_type() != q.scalar_type())
    fail(where, "q, k, v must share one dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ", v.scalar_type());
  if (k.sizes() != q.sizes()) fail(where, "k has shape ", k.sizes(), " but q has ", q.sizes(), " (both [B,H,T,Dk])");
  if (v.sizes().slice(0, 3) != q.sizes().slice(0, 3))
    fail(where, "v has shape ", v.sizes(), " but q has ", q.sizes(), " (v must be [B,H,T,Dv])");
  const int64_t heads = q.size(1);
  if (!decay.defined() || decay.dim() != 1 || decay.size(0) != heads || !at::isFloatingType(decay.scalar_type()))
    fail(where, "decay must be a floating tensor [H] = [", heads, "], got ",
         decay.defined() ? cat(decay.sizes(), " ", decay.scalar_type()) : "undefined");
  if (initial_state && initial_state->defined()) {
    const at::Tensor& s = *initial_state;
    std::vector<int64_t> want = {q.size(0), heads, q.size(3), v.size(3)};
    if (s.sizes() != at::IntArrayRef(want) || !at::isFloatingType(s.scalar_type()))
      fail(where, "initial_state must be a floating tensor [B,H,Dk,Dv] = ", at::IntArrayRef(want), ", got ", s.sizes(),
           " ", s.scalar_type());
    if (s.device() != q.device()) fail(where, "initial_state is on ", s.device(), " but q on ", q.device());
  }
  if (k.device() != q.device() || v.device() != q.device() || decay.device() != q.device())
    fail(where, "q, k, v, decay must be on one device, got ", q.device(), ", ", k.device(), ", ", v.device(), ", ",
         decay.device());
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
  for (int64_t i = 0; static_cast<int64_t>(slopes.size()) < num_heads; i += 2) slopes.push_back(finer[i]);
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

std::string to_string(LightningImpl impl) {
  return kImplNames[static_cast<int>(impl)];
}

LightningOutput lightning_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& decay, double scale, LightningImpl impl,
                                    const c10::optional<at::Tensor>& initial_state, int64_t chunk_size) {
  check_inputs(q, k, v, decay, initial_state, chunk_size);
  const at::ScalarType compute = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor gamma = decay.to(compute);
  at::Tensor s0 = initial_state && initial_state->defined()
                      ? initial_state->to(compute)
                      : at::zeros({q.size(0), q.size(1), q.size(3), v.size(3)}, q.options().dtype(compute));
  if (q.size(2) == 0) return {at::empty({q.size(0), q.size(1), 0, v.size(3)}, q.options()), s0};
  if (impl == LightningImpl::chunked) {
    if (decay.requires_grad() && at::GradMode::is_enabled())
      fail(
          "lightning_attention: chunked gives the fixed decays no gradient; pass them detached "
          "(or use naive to differentiate them)");
#ifdef HALO_WITH_CUDA_KERNELS
    if (chunk_size == kFusedLightningChunk && lightning_chunk_cuda_supported(q, k, v)) {
      auto outs = FusedChunkedLightning::apply(q, k, v, s0.contiguous(), gamma.contiguous(), scale);
      return {outs[0], outs[1]};
    }
#endif
    auto outs = ChunkedLightning::apply(q, k, v, s0, gamma, scale, chunk_size);
    return {outs[0], outs[1]};
  }

  at::Tensor qs = q.to(compute) * scale;
  at::Tensor ks = k.to(compute), vs = v.to(compute);
  LightningOutput result =
      impl == LightningImpl::naive ? naive(qs, ks, vs, gamma, s0) : recurrent(qs, ks, vs, gamma, s0);
  result.out = result.out.to(q.scalar_type());
  return result;
}

}  // namespace halo
