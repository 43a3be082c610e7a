// Lightning attention: the linear-attention RNN of HypeNet's converted layers (../shared/docs/METHOD.md §2.3).
// Per head h with a fixed decay gamma_h, the state S (Dk x Dv) follows
//   S_t = gamma_h * S_{t-1} + k_t^T v_t ,   o_t = scale * q_t S_t   (token t included).
// Three implementations compute the same function, all differentiable: `naive` (the quadratic
// masked form, the reference) and `recurrent` (decode: one token at a time) in plain ATen ops
// under autograd, and `chunked` (training/prefill: matmuls batched over all chunks, the state
// carried chunk to chunk by a scan) with a hand-written backward. Each takes an optional initial
// state and returns the final one, so a sequence may be split over several calls.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <string>
#include <vector>

namespace halo {

// The ALiBi slopes m_1..m_H: 2^(-8h/H) when H is a power of two; otherwise the slopes of the
// nearest lower power of two P followed by every other slope of 2P (the first H-P of them).
std::vector<double> alibi_slopes(int64_t num_heads);

// The per-head decays gamma_h = exp(-m_h) as a CPU tensor [H] (float32 as in the reference;
// pass kDouble for exact tests).
at::Tensor alibi_decays(int64_t num_heads, at::ScalarType dtype = at::kFloat);

enum class LightningImpl { naive, chunked, recurrent };

// "naive" / "chunked" / "recurrent"; anything else fails (usage error) listing the valid names.
LightningImpl parse_lightning_impl(const std::string& name);
std::string to_string(LightningImpl impl);

struct LightningOutput {
  at::Tensor out;    // [B,H,T,Dv], q's dtype
  at::Tensor state;  // [B,H,Dk,Dv], float64 for float64 inputs, else float32
};

// q, k: [B,H,T,Dk]; v: [B,H,T,Dv] (q, k, v of one floating dtype); decay: [H] gamma values,
// each in (0,1]; initial_state: [B,H,Dk,Dv] (zeros when absent). All on one device.
// float64 inputs are computed in float64, any other floating dtype in float32 (as the
// reference). chunk_size is used by `chunked` only; T need not be a multiple of it. `chunked`
// gives the decays no gradient (they are fixed) and fails if they require one.
LightningOutput lightning_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& decay, double scale, LightningImpl impl,
                                    const c10::optional<at::Tensor>& initial_state = {}, int64_t chunk_size = 64);

}  // namespace halo
