// The math under training: chunked cross-entropy and KL equal their whole-logits definitions
// (values and gradients, float64), activation recomputation leaves gradients unchanged, and the
// stage losses have the right structure (stage-1 MSE is zero for a student equal to the
// teacher's attention; stage-2 KL is zero for a student equal to the teacher).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "halo/causal_lm.h"
#include "halo/hypenet_conversion.h"
#include "halo/model_directory.h"
#include "halo/training_tasks.h"
#include "ops/lm_losses.h"
#include "test_support.h"

namespace halo {
namespace {

double max_relative(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), 1e-300);
}

TEST(LmLosses, ChunkedCrossEntropyEqualsTheDefinition) {
  auto opts = at::TensorOptions().dtype(at::kDouble);
  at::Tensor hidden = at::randn({13, 8}, opts).requires_grad_();
  at::Tensor weight = at::randn({29, 8}, opts).requires_grad_();
  at::Tensor targets = at::randint(0, 29, {13}, at::kLong);
  targets[4] = -100;  // ignored
  at::Tensor got = chunked_cross_entropy(hidden, weight, targets, 5);
  auto [gh, gw] = [&] {
    got.backward();
    return std::make_pair(hidden.grad().clone(), weight.grad().clone());
  }();
  hidden.mutable_grad().reset();
  weight.mutable_grad().reset();
  at::Tensor logits = at::matmul(hidden, weight.t());
  at::Tensor valid = targets >= 0;
  at::Tensor nll = at::logsumexp(logits, 1) - logits.gather(1, targets.clamp_min(0).unsqueeze(1)).squeeze(1);
  at::Tensor want = (nll * valid).sum() / valid.sum();
  want.backward();
  EXPECT_LE(std::abs(got.item<double>() - want.item<double>()), 1e-12 * want.item<double>());
  EXPECT_LE(max_relative(gh, hidden.grad()), 1e-12);
  EXPECT_LE(max_relative(gw, weight.grad()), 1e-12);
}

TEST(LmLosses, ChunkedKlEqualsTheDefinition) {
  auto opts = at::TensorOptions().dtype(at::kDouble);
  at::Tensor hidden = at::randn({11, 6}, opts).requires_grad_();
  at::Tensor weight = at::randn({17, 6}, opts).requires_grad_();
  at::Tensor teacher_hidden = at::randn({11, 6}, opts), teacher_weight = at::randn({17, 6}, opts);
  at::Tensor got = chunked_kl_divergence(hidden, weight, teacher_hidden, teacher_weight, 4);
  got.backward();
  at::Tensor gh = hidden.grad().clone(), gw = weight.grad().clone();
  hidden.mutable_grad().reset();
  weight.mutable_grad().reset();
  at::Tensor log_t = at::log_softmax(at::matmul(teacher_hidden, teacher_weight.t()), 1);
  at::Tensor log_s = at::log_softmax(at::matmul(hidden, weight.t()), 1);
  at::Tensor want = (log_t.exp() * (log_t - log_s)).sum(1).mean();
  want.backward();
  EXPECT_LE(std::abs(got.item<double>() - want.item<double>()), 1e-12 * want.item<double>());
  EXPECT_LE(max_relative(gh, hidden.grad()), 1e-12);
  EXPECT_LE(max_relative(gw, weight.grad()), 1e-12);
  // KL of a distribution to itself is zero.
  EXPECT_NEAR(chunked_kl_divergence(teacher_hidden, teacher_weight, teacher_hidden, teacher_weight, 3).item<double>(),
              0.0, 1e-12);
}

std::vector<at::Tensor> gradients_of(CausalLM& model, const at::Tensor& ids) {
  for (auto& [name, tensor] : model.named_parameters()) tensor->mutable_grad().reset();
  model.forward(ids).pow(2).mean().backward();
  std::vector<at::Tensor> grads;
  for (auto& [name, tensor] : model.named_parameters()) grads.push_back(tensor->grad().clone());
  return grads;
}

TEST(ActivationRecompute, GradientsAreUnchanged) {
  CausalLM teacher = load_causal_lm(test::fixture("qwen3-tiny"), at::kDouble, at::kCPU);
  CausalLM model = convert_to_hypenet(teacher, hypenet_config(teacher.config(), {1}), 0);
  model.set_requires_grad(true);
  at::Tensor ids = at::randint(0, 1024, {2, 21}, at::kLong);
  std::vector<at::Tensor> plain = gradients_of(model, ids);
  model.set_recompute_activations(true);
  std::vector<at::Tensor> recomputed = gradients_of(model, ids);
  ASSERT_EQ(plain.size(), recomputed.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_TRUE(recomputed[i].defined()) << i;
    EXPECT_LE(max_relative(recomputed[i], plain[i]), 1e-12) << model.named_parameters()[i].first;
  }
}

TEST(TrainingTasks, StageLossesVanishWhereStudentEqualsTeacher) {
  CausalLM teacher = load_causal_lm(test::fixture("qwen3-tiny"), at::kDouble, at::kCPU);
  at::Tensor batch = at::randint(0, 1024, {2, 17}, at::kLong);
  // Stage 2 with a student that is the teacher itself (an all-attention HypeNet copy).
  CausalLM copy = load_causal_lm(test::fixture("qwen3-tiny"), at::kDouble, at::kCPU);
  DistillationTask distill(teacher, copy);
  int64_t tokens = 0;
  EXPECT_NEAR(distill.loss(batch, &tokens).item<double>(), 0.0, 1e-12);
  EXPECT_EQ(tokens, 32);
  // Stage 1: a fresh stage-0 student has a positive error in every layer, and a gradient
  // reaches every student mixer parameter and nothing else.
  CausalLM student = convert_to_hypenet(teacher, hypenet_config(teacher.config(), {}), 0);
  AlignmentTask align(teacher, student);
  at::Tensor loss = align.loss(batch, &tokens);
  EXPECT_GT(loss.item<double>(), 0.0);
  for (double e : align.layer_errors()) EXPECT_GT(e, 0.0);
  loss.backward();
  auto trainable = align.trainable_parameters();
  EXPECT_EQ(trainable.size(), 4u * 8u);  // q,k,v,o,z proj + q,k,o norm per layer
  for (auto& [name, tensor] : trainable) {
    EXPECT_NE(name.find("self_attn"), std::string::npos) << name;
    ASSERT_TRUE(tensor.grad().defined()) << name;
    EXPECT_GT(tensor.grad().abs().sum().item<double>(), 0.0) << name;
  }
  EXPECT_FALSE(student.layer(0).mlp.up_proj.requires_grad());
}

}  // namespace
}  // namespace halo
