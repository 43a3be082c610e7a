// LanguageModelingTask, AlignmentTask and DistillationTask (see training_tasks.h).
#include "halo/training_tasks.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "halo/causal_lm.h"
#include "halo/error.h"
#include "ops/lm_losses.h"

namespace halo {
namespace {

std::vector<std::pair<std::string, at::Tensor>> parameters_requiring_grad(CausalLM& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& [name, tensor] : model.named_parameters()) {
    if (tensor->requires_grad()) out.emplace_back(name, *tensor);
  }
  return out;
}

bool is_mixer_parameter(const std::string& name) {
  return name.find(".self_attn.") != std::string::npos;
}

}  // namespace

LanguageModelingTask::LanguageModelingTask(CausalLM& model, int64_t loss_chunk)
    : model_(model), loss_chunk_(loss_chunk) {
  model_.set_requires_grad(true);
}

std::vector<std::pair<std::string, at::Tensor>> LanguageModelingTask::trainable_parameters() {
  return parameters_requiring_grad(model_);
}

at::Tensor LanguageModelingTask::loss(const at::Tensor& batch, int64_t* tokens) {
  const int64_t t = batch.size(1) - 1;
  at::Tensor ids = batch.to(model_.device());
  at::Tensor hidden = model_.forward_hidden(ids.narrow(1, 0, t));
  at::Tensor targets = ids.narrow(1, 1, t).reshape({-1});
  if (tokens != nullptr) *tokens = targets.numel();
  return chunked_cross_entropy(hidden.reshape({-1, hidden.size(-1)}), model_.lm_head_weight(), targets, loss_chunk_);
}

AlignmentTask::AlignmentTask(CausalLM& teacher, CausalLM& student) : teacher_(teacher), student_(student) {
  if (student.config().num_hidden_layers != teacher.config().num_hidden_layers) {
    fail("stage 1: the student has ", student.config().num_hidden_layers, " layers, the teacher ",
         teacher.config().num_hidden_layers);
  }
  teacher_.set_requires_grad(false);
  for (auto& [name, tensor] : student_.named_parameters()) tensor->requires_grad_(is_mixer_parameter(name));
}

std::vector<std::pair<std::string, at::Tensor>> AlignmentTask::trainable_parameters() {
  return parameters_requiring_grad(student_);
}

at::Tensor AlignmentTask::loss(const at::Tensor& batch, int64_t* tokens) {
  const int64_t t = batch.size(1) - 1;
  at::Tensor ids = batch.to(teacher_.device()).narrow(1, 0, t);
  const ForwardContext student_ctx = student_.forward_context(ids, nullptr);
  std::vector<at::Tensor> squared_errors;
  int64_t elements = 0;
  layer_errors_.assign(teacher_.config().num_hidden_layers, 0.0);
  teacher_.set_mixer_observer([&](int64_t layer, const at::Tensor& input, const at::Tensor& output) {
    c10::AutoGradMode enable(true);
    at::Tensor student_out = student_.mixer_forward(layer, input.detach(), student_ctx);
    at::Tensor error = (student_out.to(at::kFloat) - output.detach().to(at::kFloat)).pow(2).sum();
    layer_errors_[layer] = error.item<double>() / output.numel();
    squared_errors.push_back(error);
    elements += output.numel();
  });
  {
    c10::NoGradGuard no_grad;
    teacher_.forward_hidden(ids);
  }
  teacher_.set_mixer_observer({});
  if (tokens != nullptr) *tokens = ids.numel();
  return at::stack(squared_errors).sum() / static_cast<double>(elements);
}

DistillationTask::DistillationTask(CausalLM& teacher, CausalLM& student, int64_t loss_chunk)
    : teacher_(teacher), student_(student), loss_chunk_(loss_chunk) {
  if (student.config().vocab_size != teacher.config().vocab_size) {
    fail("stage 2: student and teacher vocabularies differ (", student.config().vocab_size, " vs ",
         teacher.config().vocab_size, ")");
  }
  teacher_.set_requires_grad(false);
  student_.set_requires_grad(true);
}

std::vector<std::pair<std::string, at::Tensor>> DistillationTask::trainable_parameters() {
  return parameters_requiring_grad(student_);
}

at::Tensor DistillationTask::loss(const at::Tensor& batch, int64_t* tokens) {
  const int64_t t = batch.size(1) - 1;
  at::Tensor ids = batch.to(student_.device()).narrow(1, 0, t);
  at::Tensor teacher_hidden;
  {
    c10::NoGradGuard no_grad;
    teacher_hidden = teacher_.forward_hidden(ids);
  }
  at::Tensor student_hidden = student_.forward_hidden(ids);
  if (tokens != nullptr) *tokens = ids.numel();
  const int64_t h = student_hidden.size(-1);
  return chunked_kl_divergence(student_hidden.reshape({-1, h}), student_.lm_head_weight(),
                               teacher_hidden.reshape({-1, h}), teacher_.lm_head_weight(), loss_chunk_);
}

}  // namespace halo
