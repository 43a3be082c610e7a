// Chunked cross-entropy and forward-KL as torch::autograd::Functions. Forward: per slice,
// logits = h W^T in the model dtype, upcast to float32, loss summed. Backward: per slice, the
// logits are formed again and dL/dlogits = (softmax(student) - target distribution) * g / N is
// pushed through the matmul into dh (slice rows) and dW (accumulated in float32).
#include "halo/lm_losses.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "halo/error.h"

namespace halo {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// float32 for every model dtype but float64, which stays float64.
at::ScalarType loss_dtype(const at::Tensor& hidden) {
  return hidden.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor float_logits(const at::Tensor& hidden, const at::Tensor& weight) {
  return at::matmul(hidden, weight.t()).to(loss_dtype(hidden));
}

struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& targets, int64_t chunk) {
    ctx->save_for_backward({hidden, weight, targets});
    ctx->saved_data["chunk"] = chunk;
    const int64_t count = (targets >= 0).sum().item<int64_t>();
    ctx->saved_data["count"] = count;
    at::Tensor total = at::zeros({}, hidden.options().dtype(loss_dtype(hidden)));
    for (int64_t begin = 0; begin < hidden.size(0); begin += chunk) {
      const int64_t len = std::min(chunk, hidden.size(0) - begin);
      at::Tensor t = targets.narrow(0, begin, len);
      at::Tensor valid = t >= 0;
      at::Tensor logits = float_logits(hidden.narrow(0, begin, len), weight);
      at::Tensor picked = logits.gather(1, t.clamp_min(0).unsqueeze(1)).squeeze(1);
      total += ((at::logsumexp(logits, 1) - picked) * valid).sum();
    }
    return total / std::max<int64_t>(count, 1);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &weight = saved[1], &targets = saved[2];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const int64_t count = std::max<int64_t>(ctx->saved_data["count"].toInt(), 1);
    const at::Tensor scale = grad_outputs[0].to(loss_dtype(hidden)) / static_cast<double>(count);
    at::Tensor d_hidden = at::empty_like(hidden);
    at::Tensor d_weight = at::zeros(weight.sizes(), weight.options().dtype(loss_dtype(hidden)));
    for (int64_t begin = 0; begin < hidden.size(0); begin += chunk) {
      const int64_t len = std::min(chunk, hidden.size(0) - begin);
      at::Tensor h = hidden.narrow(0, begin, len);
      at::Tensor t = targets.narrow(0, begin, len);
      at::Tensor g = at::softmax(float_logits(h, weight), 1);
      g.scatter_add_(1, t.clamp_min(0).unsqueeze(1), -at::ones({len, 1}, g.options()));
      g = (g * (t >= 0).unsqueeze(1) * scale).to(hidden.scalar_type());
      d_hidden.narrow(0, begin, len).copy_(at::matmul(g, weight));
      d_weight += at::matmul(g.t(), h).to(loss_dtype(hidden));
    }
    return {d_hidden, d_weight.to(weight.scalar_type()), at::Tensor(), at::Tensor()};
  }
};

struct ChunkedKlDivergence : public torch::autograd::Function<ChunkedKlDivergence> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& student_hidden, const at::Tensor& student_weight,
                            const at::Tensor& teacher_hidden, const at::Tensor& teacher_weight, int64_t chunk) {
    ctx->save_for_backward({student_hidden, student_weight, teacher_hidden, teacher_weight});
    ctx->saved_data["chunk"] = chunk;
    at::Tensor total = at::zeros({}, student_hidden.options().dtype(loss_dtype(student_hidden)));
    for (int64_t begin = 0; begin < student_hidden.size(0); begin += chunk) {
      const int64_t len = std::min(chunk, student_hidden.size(0) - begin);
      at::Tensor log_t = at::log_softmax(float_logits(teacher_hidden.narrow(0, begin, len), teacher_weight), 1);
      at::Tensor log_s = at::log_softmax(float_logits(student_hidden.narrow(0, begin, len), student_weight), 1);
      total += (log_t.exp() * (log_t - log_s)).sum();
    }
    return total / static_cast<double>(std::max<int64_t>(student_hidden.size(0), 1));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &weight = saved[1], &teacher_hidden = saved[2], &teacher_weight = saved[3];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const at::Tensor scale = grad_outputs[0].to(loss_dtype(hidden)) / static_cast<double>(std::max<int64_t>(hidden.size(0), 1));
    at::Tensor d_hidden = at::empty_like(hidden);
    at::Tensor d_weight = at::zeros(weight.sizes(), weight.options().dtype(loss_dtype(hidden)));
    for (int64_t begin = 0; begin < hidden.size(0); begin += chunk) {
      const int64_t len = std::min(chunk, hidden.size(0) - begin);
      at::Tensor h = hidden.narrow(0, begin, len);
      at::Tensor p_t = at::softmax(float_logits(teacher_hidden.narrow(0, begin, len), teacher_weight), 1);
      at::Tensor g = ((at::softmax(float_logits(h, weight), 1) - p_t) * scale).to(hidden.scalar_type());
      d_hidden.narrow(0, begin, len).copy_(at::matmul(g, weight));
      d_weight += at::matmul(g.t(), h).to(loss_dtype(hidden));
    }
    return {d_hidden, d_weight.to(weight.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor chunked_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                 int64_t chunk) {
  if (hidden.dim() != 2 || targets.dim() != 1 || hidden.size(0) != targets.size(0)) {
    fail("chunked_cross_entropy: hidden must be [N, H] and targets [N], got ", hidden.sizes(), " and ", targets.sizes());
  }
  if (chunk < 1) usage_fail("loss chunk must be positive");
  return ChunkedCrossEntropy::apply(hidden, weight, targets, chunk);
}

at::Tensor chunked_kl_divergence(const at::Tensor& student_hidden, const at::Tensor& student_weight,
                                 const at::Tensor& teacher_hidden, const at::Tensor& teacher_weight, int64_t chunk) {
  if (student_hidden.dim() != 2 || student_hidden.sizes() != teacher_hidden.sizes()) {
    fail("chunked_kl_divergence: hidden states must be [N, H] and match, got ", student_hidden.sizes(), " and ",
         teacher_hidden.sizes());
  }
  if (chunk < 1) usage_fail("loss chunk must be positive");
  return ChunkedKlDivergence::apply(student_hidden, student_weight, teacher_hidden.detach(), teacher_weight.detach(),
                                    chunk);
}

}  // namespace halo
