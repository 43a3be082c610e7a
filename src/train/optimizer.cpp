// AdamW and gradient clipping (see optimizer.h). Every update runs under NoGradGuard on the
// parameters' own storage, so the tensors a task handed out stay the ones that train.
#include "train/optimizer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

#include "halo/error.h"

namespace halo {

AdamW::AdamW(NamedTensors parameters, AdamWOptions options, std::vector<bool> owned)
    : parameters_(std::move(parameters)), owned_(std::move(owned)), options_(options) {
  c10::NoGradGuard no_grad;
  if (!owned_.empty() && owned_.size() != parameters_.size()) fail("AdamW: ownership of ", owned_.size(), " parameters given for ", parameters_.size());
  moments_.reserve(parameters_.size());
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const at::Tensor& p = parameters_[i].second;
    Moments m;
    if (!owns(i)) {
      moments_.push_back(std::move(m));
      continue;
    }
    const auto f32 = p.options().dtype(at::kFloat);
    m.exp_avg = at::zeros(p.sizes(), f32);
    m.exp_avg_sq = at::zeros(p.sizes(), f32);
    if (options_.fp32_master && p.scalar_type() != at::kFloat) m.master = p.detach().to(at::kFloat, false, true);
    moments_.push_back(std::move(m));
  }
}

void AdamW::step(double lr) {
  c10::NoGradGuard no_grad;
  ++steps_;
  const double bias1 = 1 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double bias2 = 1 - std::pow(options_.beta2, static_cast<double>(steps_));
  const double step_size = lr / bias1;
  const double bias2_sqrt = std::sqrt(bias2);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const at::Tensor& p = parameters_[i].second;
    const at::Tensor& grad = p.grad();
    if (!grad.defined() || !owns(i)) continue;
    Moments& m = moments_[i];
    const at::Tensor g = grad.to(at::kFloat);
    // The float32 tensor that takes the update: the master copy, the parameter itself, or a
    // float32 copy of a low-precision parameter that is rounded back below.
    at::Tensor target = m.master.defined() ? m.master : p.detach();
    if (target.scalar_type() != at::kFloat) target = target.to(at::kFloat);
    if (options_.weight_decay != 0 && p.dim() >= 2) target.mul_(1 - lr * options_.weight_decay);
    m.exp_avg.mul_(options_.beta1).add_(g, 1 - options_.beta1);
    m.exp_avg_sq.mul_(options_.beta2).addcmul_(g, g, 1 - options_.beta2);
    const at::Tensor denom = (m.exp_avg_sq.sqrt() / bias2_sqrt).add_(options_.eps);
    target.addcdiv_(m.exp_avg, denom, -step_size);
    if (!target.is_same(p)) p.detach().copy_(target);
  }
}

void AdamW::zero_grad() {
  for (auto& [name, p] : parameters_) p.mutable_grad() = at::Tensor();
}

bool AdamW::keeps_master(size_t i) const {
  return options_.fp32_master && parameters_[i].second.scalar_type() != at::kFloat;
}

std::vector<at::Tensor> AdamW::state_of(size_t i) const {
  if (!owns(i)) return {};
  std::vector<at::Tensor> state{moments_[i].exp_avg, moments_[i].exp_avg_sq};
  if (moments_[i].master.defined()) state.push_back(moments_[i].master);
  return state;
}

NamedTensors AdamW::state() const {
  NamedTensors state;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (!owns(i)) continue;
    const std::string& name = parameters_[i].first;
    state.emplace_back("exp_avg." + name, moments_[i].exp_avg);
    state.emplace_back("exp_avg_sq." + name, moments_[i].exp_avg_sq);
    if (moments_[i].master.defined()) state.emplace_back("master." + name, moments_[i].master);
  }
  return state;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& state, int64_t steps, const std::string& origin) {
  c10::NoGradGuard no_grad;
  auto restore = [&](const std::string& key, at::Tensor& into, bool required) {
    const auto found = state.find(key);
    if (found == state.end()) {
      if (required) fail(origin, ": optimizer state '", key, "' is missing");
      return;
    }
    if (!found->second.sizes().equals(into.sizes())) {
      fail(origin, ": optimizer state '", key, "' has shape ", found->second.sizes(), ", expected ", into.sizes());
    }
    into.copy_(found->second);
  };
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (!owns(i)) continue;
    const std::string& name = parameters_[i].first;
    restore("exp_avg." + name, moments_[i].exp_avg, true);
    restore("exp_avg_sq." + name, moments_[i].exp_avg_sq, true);
    if (moments_[i].master.defined()) {
      moments_[i].master.copy_(parameters_[i].second.detach());
      restore("master." + name, moments_[i].master, false);
    }
  }
  steps_ = steps;
}

double clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm,
                      const std::function<double(double)>& sum_over_ranks) {
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const at::Tensor& g : grads) {
    if (!g.defined()) continue;
    const at::Tensor norm = at::linalg_vector_norm(g.to(at::kFloat), 2);
    norms.push_back(norms.empty() ? norm : norm.to(norms.front().device()));
  }
  double norm = norms.empty() ? 0.0 : at::linalg_vector_norm(at::stack(norms), 2).item<double>();
  if (sum_over_ranks) norm = std::sqrt(sum_over_ranks(norm * norm));
  if (norms.empty() && !sum_over_ranks) return 0;
  if (max_norm > 0 && std::isfinite(norm)) {
    const double factor = max_norm / (norm + 1e-6);
    if (factor < 1) {
      for (const at::Tensor& g : grads) {
        if (g.defined()) g.mul_(factor);
      }
    }
  }
  return norm;
}

}  // namespace halo
