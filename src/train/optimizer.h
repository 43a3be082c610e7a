// The optimizer side of a training step: AdamW and global gradient-norm clipping, written with
// ATen ops so that they run on any device and are deterministic on the CPU.
//
// AdamW follows torch.optim.AdamW: decoupled weight decay p *= 1 - lr * weight_decay (here only
// for parameters with >= 2 dimensions: matrices and embeddings, not biases or norm gains), then
// m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps).
// The moments are float32 whatever the parameter dtype, and the update is computed in float32.
// A low-precision parameter (bf16, f16) is updated in float32 and rounded back each step; with
// fp32_master it keeps a float32 master copy that takes the update and is rounded into the
// parameter, so updates smaller than the bf16 spacing accumulate instead of vanishing.
// One step count t serves every parameter (it counts step() calls); a parameter without a
// gradient in some step is left alone, moments included, but t still advances.
// Sharded (ZeRO-1): given `owned`, only the owned parameters get moments and updates; the
// others belong to another rank, which updates them and sends them over (TrainStep).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <functional>
#include <vector>

#include "halo/tensor_io.h"

namespace halo {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.0;  // parameters with >= 2 dimensions only
  bool fp32_master = false;   // float32 master copies of parameters stored in lower precision
};

class AdamW {
 public:
  // `parameters` are the trainable tensors (leaves with requires_grad); they are updated in place.
  // Moments (and master copies) are allocated here, on each parameter's device.
  AdamW(NamedTensors parameters, AdamWOptions options, std::vector<bool> owned = {});

  // Updates every parameter that has a gradient (.grad() defined) at learning rate `lr`.
  void step(double lr);
  // Sets every parameter's gradient to undefined (frees it).
  void zero_grad();

  int64_t steps() const { return steps_; }  // t: step() calls so far (bias correction)
  const NamedTensors& parameters() const { return parameters_; }

  // The state by checkpoint key: exp_avg.<name>, exp_avg_sq.<name>, and master.<name> for each
  // parameter with a master copy, of the owned parameters. The tensors are the live state (save,
  // do not modify).
  NamedTensors state() const;
  // The state of parameter i (exp_avg, exp_avg_sq, master when kept), empty when not owned.
  std::vector<at::Tensor> state_of(size_t i) const;
  bool owns(size_t i) const { return owned_.empty() || owned_[i]; }
  bool keeps_master(size_t i) const;
  // Copies a saved state() (of every parameter) into this optimizer's owned tensors and sets t
  // to `steps`. Fails naming `origin` and the key when a moment is missing or its shape differs. A master copy absent
  // from `state` starts from the parameter (fp32_master switched on); one not needed is ignored.
  void load_state(const std::map<std::string, at::Tensor>& state, int64_t steps, const std::string& origin);

 private:
  struct Moments {
    at::Tensor exp_avg, exp_avg_sq, master;  // master undefined unless fp32_master and not float32
  };
  NamedTensors parameters_;
  std::vector<bool> owned_;  // empty: every parameter
  std::vector<Moments> moments_;
  AdamWOptions options_;
  int64_t steps_ = 0;
};

// Scales `grads` in place so that their global L2 norm is at most `max_norm` (factor
// max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_, applied only when below 1) and
// returns the norm before clipping, computed in float32. `max_norm` 0 only measures. A
// non-finite norm is returned without touching the gradients. Undefined tensors are skipped.
// `sum_over_ranks`, when given, turns this rank's squared norm into the sum over all ranks'
// (ZeRO-2: each rank holds the gradients of its own parameters only).
double clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm,
                      const std::function<double(double)>& sum_over_ranks = {});

}  // namespace halo
