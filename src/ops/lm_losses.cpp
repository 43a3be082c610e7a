// Chunked cross-entropy and forward-KL as torch::autograd::Functions that compute their
// gradients in the forward pass (as Liger's fused linear losses do): the loss is a sum of
// per-token terms, so per slice of tokens the logits h W^T are formed once (float32), a row
// function turns them into the loss terms and dLoss/dlogits (unscaled, model dtype), and that
// gradient goes through the lm head at once: dh rows = g W, dW += g^T h (float32 accumulation).
// The backward pass only scales the stored dh and dW by grad_output / N. On CUDA the row
// function is a fused kernel and dW accumulates in cuBLAS (lm_losses_cuda.cu); elsewhere
// ATen ops (float64 models stay float64). Without gradients (evaluation) only the loss terms are
// computed.
#include "ops/lm_losses.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include "halo/error.h"
#ifdef HALO_WITH_CUDA_KERNELS
#include "ops/lm_losses_cuda.h"
#endif

namespace halo {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// float32 for every model dtype but float64, which stays float64.
at::ScalarType loss_dtype(const at::Tensor& hidden) {
  return hidden.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// Logits h W^T in the loss dtype: 16-bit CUDA operands accumulate in float32 and are written
// as float32 (no rounding of logits that reach 20-30 to bf16's 1/8 steps); elsewhere the
// product in the model dtype, then converted.
at::Tensor float_logits(const at::Tensor& h, const at::Tensor& weight) {
  if (h.is_cuda() && (h.scalar_type() == at::kBFloat16 || h.scalar_type() == at::kHalf))
    return at::mm(h, weight.t(), at::kFloat);
  return at::mm(h, weight.t()).to(loss_dtype(h));
}

// Per-token loss terms [n] (loss dtype) and, when asked, dLoss/dlogits [n, V] in the model dtype.
struct RowTerms {
  at::Tensor loss, grad;
};

#ifdef HALO_WITH_CUDA_KERNELS
// The gradient's buffer for the CUDA row kernels, or none.
at::Tensor gradient_buffer(const at::Tensor& logits, c10::optional<at::ScalarType> grad_dtype) {
  return grad_dtype ? at::empty(logits.sizes(), logits.options().dtype(*grad_dtype)) : at::Tensor();
}
#endif

RowTerms kl_rows(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                 c10::optional<at::ScalarType> grad_dtype) {
#ifdef HALO_WITH_CUDA_KERNELS
  if (lm_losses_cuda_supported(student_logits)) {
    at::Tensor grad = gradient_buffer(student_logits, grad_dtype);
    return {kl_divergence_rows_cuda(student_logits, teacher_logits, grad), grad};
  }
#endif
  at::Tensor log_t = at::log_softmax(teacher_logits, 1);
  at::Tensor log_s = at::log_softmax(student_logits, 1);
  at::Tensor p_t = log_t.exp();
  at::Tensor loss = (p_t * (log_t - log_s)).sum(1);
  if (!grad_dtype) return {loss, at::Tensor()};
  return {loss, (log_s.exp() - p_t).to(*grad_dtype)};
}

RowTerms cross_entropy_rows(const at::Tensor& logits, const at::Tensor& targets,
                            c10::optional<at::ScalarType> grad_dtype) {
#ifdef HALO_WITH_CUDA_KERNELS
  if (lm_losses_cuda_supported(logits)) {
    at::Tensor grad = gradient_buffer(logits, grad_dtype);
    return {cross_entropy_rows_cuda(logits, targets, grad), grad};
  }
#endif
  at::Tensor log_p = at::log_softmax(logits, 1);
  at::Tensor valid = (targets >= 0).unsqueeze(1);
  at::Tensor picked = targets.clamp_min(0).unsqueeze(1);
  at::Tensor loss = -(log_p.gather(1, picked) * valid).squeeze(1);
  if (!grad_dtype) return {loss, at::Tensor()};
  at::Tensor grad = log_p.exp();
  grad.scatter_add_(1, picked, -at::ones_like(picked, grad.options()));
  return {loss, (grad * valid).to(*grad_dtype)};
}

// d_weight += g^T h with float32 accumulation (float64 for float64 models).
void add_weight_gradient(at::Tensor& d_weight, const at::Tensor& g, const at::Tensor& h) {
#ifdef HALO_WITH_CUDA_KERNELS
  if (g.is_cuda() && g.scalar_type() != at::kDouble) return add_transposed_product_cuda(d_weight, g, h);
#endif
  d_weight += at::matmul(g.t(), h).to(d_weight.scalar_type());
}

// Which gradients the forward pass computes.
struct Wanted {
  bool hidden, weight;
  bool any() const { return hidden || weight; }
};

Wanted wanted_gradients(const at::Tensor& hidden, const at::Tensor& weight) {
  const bool grad_mode = at::GradMode::is_enabled();
  return {grad_mode && hidden.requires_grad(), grad_mode && weight.requires_grad()};
}

// The slice loop shared by both losses: the sum of the row terms over `count`. rows(begin,
// logits, grad_dtype) returns the RowTerms of rows [begin, begin + len) from their float logits
// [len, V]. The gradients wait in ctx for scaled_gradients.
template <typename Rows>
at::Tensor sliced_loss(AutogradContext* ctx, const at::Tensor& hidden_in, const at::Tensor& weight, int64_t chunk,
                       int64_t count, Wanted wanted, Rows rows) {
  const at::Tensor hidden = hidden_in.contiguous();
  at::Tensor total = at::zeros({}, hidden.options().dtype(loss_dtype(hidden)));
  at::Tensor d_hidden = wanted.hidden ? at::empty_like(hidden) : at::Tensor();
  at::Tensor d_weight =
      wanted.weight ? at::zeros(weight.sizes(), weight.options().dtype(loss_dtype(hidden))) : at::Tensor();
  for (int64_t begin = 0; begin < hidden.size(0); begin += chunk) {
    const int64_t len = std::min(chunk, hidden.size(0) - begin);
    const at::Tensor h = hidden.narrow(0, begin, len);
    RowTerms terms = rows(begin, float_logits(h, weight),
                          wanted.any() ? c10::optional<at::ScalarType>(hidden.scalar_type()) : c10::nullopt);
    total += terms.loss.sum();
    if (wanted.hidden) {
      at::Tensor slice = d_hidden.narrow(0, begin, len);
      at::mm_out(slice, terms.grad, weight);
    }
    if (wanted.weight) add_weight_gradient(d_weight, terms.grad, h);
  }
  const auto divisor = static_cast<double>(std::max<int64_t>(count, 1));
  ctx->saved_data["divisor"] = divisor;
  ctx->saved_data["weight_dtype"] = weight.scalar_type();
  ctx->saved_data["d_hidden"] = d_hidden;
  ctx->saved_data["d_weight"] = d_weight;
  return total / divisor;
}

// The backward pass of both: the stored gradients times grad_output / count, in the inputs'
// dtypes, for the first two of `inputs` (hidden, weight).
variable_list scaled_gradients(AutogradContext* ctx, const at::Tensor& grad_output, size_t inputs) {
  variable_list out(inputs);
  const at::Tensor d_hidden = ctx->saved_data["d_hidden"].toTensor();
  const at::Tensor d_weight = ctx->saved_data["d_weight"].toTensor();
  // A 0-dim float scale keeps a 16-bit d_hidden's dtype and multiplies in float32.
  const at::Tensor scale = grad_output / ctx->saved_data["divisor"].toDouble();
  if (d_hidden.defined()) out[0] = d_hidden * scale;
  if (d_weight.defined()) {
    out[1] = at::empty(d_weight.sizes(), d_weight.options().dtype(ctx->saved_data["weight_dtype"].toScalarType()));
    at::mul_out(out[1], d_weight, scale);  // scaled and rounded in one pass
  }
  return out;
}

struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& targets, int64_t chunk, int64_t count, bool grad_hidden,
                            bool grad_weight) {
    return sliced_loss(ctx, hidden, weight, chunk, count, {grad_hidden, grad_weight},
                       [&](int64_t begin, const at::Tensor& logits, c10::optional<at::ScalarType> grad_dtype) {
                         return cross_entropy_rows(logits, targets.narrow(0, begin, logits.size(0)), grad_dtype);
                       });
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return scaled_gradients(ctx, grad_outputs[0], 7);
  }
};

struct ChunkedKlDivergence : public torch::autograd::Function<ChunkedKlDivergence> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& student_hidden, const at::Tensor& student_weight,
                            const at::Tensor& teacher_hidden, const at::Tensor& teacher_weight, int64_t chunk,
                            bool grad_hidden, bool grad_weight) {
    const at::Tensor teacher = teacher_hidden.contiguous();
    return sliced_loss(ctx, student_hidden, student_weight, chunk, student_hidden.size(0), {grad_hidden, grad_weight},
                       [&](int64_t begin, const at::Tensor& logits, c10::optional<at::ScalarType> grad_dtype) {
                         const at::Tensor t = float_logits(teacher.narrow(0, begin, logits.size(0)), teacher_weight);
                         return kl_rows(logits, t, grad_dtype);
                       });
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return scaled_gradients(ctx, grad_outputs[0], 7);
  }
};

}  // namespace

at::Tensor chunked_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                 int64_t chunk) {
  if (hidden.dim() != 2 || targets.dim() != 1 || hidden.size(0) != targets.size(0)) {
    fail("chunked_cross_entropy: hidden must be [N, H] and targets [N], got ", hidden.sizes(), " and ",
         targets.sizes());
  }
  if (chunk < 1) usage_fail("loss chunk must be positive");
  // One device-to-host copy for both: how many targets count, and whether all fit the vocabulary.
  const at::Tensor facts =
      at::stack({(targets >= 0).sum(), at::cat({targets, at::full({1}, -1, targets.options())}).max()}).to(at::kCPU);
  const int64_t count = facts[0].item<int64_t>(), largest = facts[1].item<int64_t>();
  if (largest >= weight.size(0)) {
    fail("chunked_cross_entropy: target id ", largest, " is outside the vocabulary of ", weight.size(0),
         " (is the data tokenized with this model's tokenizer?)");
  }
  const Wanted wanted = wanted_gradients(hidden, weight);
  return ChunkedCrossEntropy::apply(hidden, weight, targets.contiguous(), chunk, count, wanted.hidden, wanted.weight);
}

at::Tensor chunked_kl_divergence(const at::Tensor& student_hidden, const at::Tensor& student_weight,
                                 const at::Tensor& teacher_hidden, const at::Tensor& teacher_weight, int64_t chunk) {
  if (student_hidden.dim() != 2 || student_hidden.sizes() != teacher_hidden.sizes()) {
    fail("chunked_kl_divergence: hidden states must be [N, H] and match, got ", student_hidden.sizes(), " and ",
         teacher_hidden.sizes());
  }
  if (student_weight.size(0) != teacher_weight.size(0)) {
    fail("chunked_kl_divergence: the student's vocabulary (", student_weight.size(0), ") differs from the teacher's (",
         teacher_weight.size(0), ")");
  }
  if (chunk < 1) usage_fail("loss chunk must be positive");
  const Wanted wanted = wanted_gradients(student_hidden, student_weight);
  return ChunkedKlDivergence::apply(student_hidden, student_weight, teacher_hidden.detach(), teacher_weight.detach(),
                                    chunk, wanted.hidden, wanted.weight);
}

}  // namespace halo
