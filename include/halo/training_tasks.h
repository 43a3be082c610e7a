// The losses of the HALO stages as TrainingTasks for the one Trainer (trainer.h):
// - LanguageModelingTask: next-token cross-entropy, every parameter trains (pretraining a
//   teacher from scratch, stage 3 long-context finetuning);
// - AlignmentTask (stage 1): the teacher runs as usual; each layer's student mixer sees the
//   same normalized input (detached) and is pulled toward the teacher mixer's output by MSE
//   over all layers; only the student mixers train;
// - DistillationTask (stage 2): forward KL(teacher || student) per token, averaged; the
//   teacher runs without autograd; every student parameter trains.
// Logit-level losses go through lm_losses.h, so [tokens, vocab] logits are never whole.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "halo/trainer.h"

namespace halo {

class CausalLM;

class LanguageModelingTask : public TrainingTask {
 public:
  explicit LanguageModelingTask(CausalLM& model, int64_t loss_chunk = 1024);
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override;
  at::Tensor loss(const at::Tensor& batch, int64_t* tokens) override;

 private:
  CausalLM& model_;
  int64_t loss_chunk_;
};

class AlignmentTask : public TrainingTask {
 public:
  // `student` has the teacher's layer count with every layer lightning (stage 0's output);
  // only its mixers train. Both models must be on the same device.
  AlignmentTask(CausalLM& teacher, CausalLM& student);
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override;
  at::Tensor loss(const at::Tensor& batch, int64_t* tokens) override;

  // Mean squared error per layer of the last loss() call (for logs and tests).
  const std::vector<double>& layer_errors() const { return layer_errors_; }

 private:
  CausalLM& teacher_;
  CausalLM& student_;
  std::vector<double> layer_errors_;
};

class DistillationTask : public TrainingTask {
 public:
  DistillationTask(CausalLM& teacher, CausalLM& student, int64_t loss_chunk = 1024);
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override;
  at::Tensor loss(const at::Tensor& batch, int64_t* tokens) override;

 private:
  CausalLM& teacher_;
  CausalLM& student_;
  int64_t loss_chunk_;
};

}  // namespace halo
