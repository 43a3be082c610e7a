// One trainer for every HALO stage (align, distill, finetune, pretrain). A stage supplies a
// TrainingTask (its trainable parameters and the loss of one micro-batch); the trainer owns
// everything else: AdamW (betas 0.9/0.95, weight decay only on >= 2-D parameters), the LR
// schedule (linear warmup, then cosine to min_lr, WSD, or constant), gradient accumulation and
// clipping, checkpoints every N steps written atomically (trainable weights, optimizer moments,
// step, data cursor, RNG states; the last K kept), exact resume, SIGINT/SIGTERM -> checkpoint
// and a clean exit, NaN/Inf losses (stop naming the step, or skip the batch), metrics JSONL and
// a progress bar with ETA. Under torchrun (process_group.h) every rank steps together: gradients
// are averaged over the ranks (or through the `all_reduce_gradients` hook when one is set), the
// loss and tokens reported are global, a signal to any rank stops all after the same step, and
// rank 0 alone writes checkpoints, metrics and the progress bar.
// Pieces: optimizer.h (AdamW, clipping), training_checkpoint.h (the checkpoint layout),
// metrics_log.h (run_dir/metrics.jsonl); the step loop and its policies are described at the top
// of src/trainer.cpp, the schedules at the top of src/trainer_lr_schedule.cpp.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace halo {

class AdamW;
class GradientReducer;
class TokenBatcher;

struct TrainerConfig {
  int64_t steps = 0;       // optimizer steps
  int64_t grad_accum = 1;  // micro-batches per step
  double lr = 1e-3, min_lr = 1e-5;
  std::string schedule = "cosine";  // cosine | wsd | constant
  int64_t warmup_steps = 0;         // linear from 0
  double wsd_decay_fraction = 0.1;  // WSD: last fraction of steps decays linearly to min_lr
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.0;        // applied to parameters with >= 2 dimensions only
  double grad_clip = 1.0;           // max global L2 norm; 0 disables
  bool fp32_master = false;         // keep float32 copies of low-precision parameters
  std::string nan_policy = "stop";  // stop | skip (a skipped step still counts toward `steps`)
  // Under "skip": training fails once more than this fraction of `steps` has been skipped (a
  // diverged run must not finish "successfully" on a handful of good steps).
  double max_skipped_fraction = 0.05;
  int64_t checkpoint_every = 0;     // 0: only at the end (and on a signal)
  int64_t keep_checkpoints = 2;
  // Under torchrun: 0 every rank holds the whole AdamW state; 1 (ZeRO-1) each rank keeps and
  // updates the state of its share of the parameters and sends them to the others after a step;
  // 2 (ZeRO-2) as 1, and each rank gets (reduce) and keeps only its share's gradients.
  int64_t zero = 0;
  // On resume, a newest checkpoint that fails its checksums or checks is set aside and the one
  // before it used; false: stop with the error instead.
  bool resume_fallback = true;
  uint64_t seed = 0;            // seeds torch's global generators on a fresh start (data order: TokenBatcherOptions)
  std::string run_dir;          // checkpoints/, metrics.jsonl
  std::string label = "train";  // progress bar / log prefix
};

// The first invalid setting of a TrainerConfig: the key as an experiment's `train` section spells
// it and why; run_dir and label are not checked here.
struct TrainerConfigProblem {
  std::string key, reason;
};
std::optional<TrainerConfigProblem> trainer_config_problem(const TrainerConfig& config);

// The learning rate at `step` (0-based) under `config`.
double learning_rate(const TrainerConfig& config, int64_t step);

class TrainingTask {
 public:
  virtual ~TrainingTask() = default;
  // The parameters that train, with stable unique names (checkpoint keys). They must have
  // requires_grad set and stay the same tensors for the whole run.
  virtual std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() = 0;
  // The loss of one micro-batch [B, T + 1] int64 on the CPU (inputs row[:-1], targets row[1:]), a scalar
  // with an autograd graph to the trainable parameters. `tokens` receives the number of tokens
  // the loss averages over (for throughput).
  virtual at::Tensor loss(const at::Tensor& batch, int64_t* tokens) = 0;
};

// What one optimizer step did.
struct StepOutcome {
  double loss = 0;       // mean loss over the micro-batches
  double grad_norm = 0;  // global L2 norm before clipping
  int64_t tokens = 0;    // tokens the losses averaged over
  bool applied = false;  // false: the loss or the gradient norm was NaN/Inf, nothing was updated
};

// One optimizer step of a task (torchtitan's train_step): forward and backward of each
// micro-batch (loss / micro-batches), the gradient reduction hook, global-norm clipping, then the
// AdamW update, or, when the loss or the gradient norm is not finite, no update and the
// gradients dropped. Trainer::run drives it over the data with its checkpoints and policies;
// `halo bench training` times it, so that the bench measures exactly the steps of `halo run`.
class TrainStep {
 public:
  TrainStep(const TrainerConfig& config, TrainingTask& task);
  ~TrainStep();

  StepOutcome run(const std::vector<at::Tensor>& micro_batches, double lr);

  // The task's trainable parameters, checked (requires_grad, unique names), in its order.
  const std::vector<std::pair<std::string, at::Tensor>>& parameters() const { return parameters_; }
  AdamW& optimizer() { return *optimizer_; }
  // AdamW's whole state by checkpoint key (AdamW::state), on rank 0; with ZeRO-1 a collective
  // that every rank calls (the owners send their shards), empty on the other ranks.
  std::vector<std::pair<std::string, at::Tensor>> optimizer_state();

  // Called after backward of the last micro-batch, before clipping; the default does nothing
  // (one process). A data-parallel backend averages gradients here. It gets one gradient per
  // trainable parameter, in parameters() order (zeros for a parameter the loss did not reach),
  // and may change them in place or replace them in the vector.
  std::function<void(std::vector<at::Tensor>& grads)> all_reduce_gradients;

  // Averages gradients over ProcessGroup::world() and reports the loss and tokens of all ranks;
  // set under torchrun with several ranks. false: this rank alone (the one-GPU baseline of
  // halo bench training).
  bool data_parallel = false;

 private:
  TrainerConfig config_;
  TrainingTask& task_;
  std::vector<std::pair<std::string, at::Tensor>> parameters_;
  std::vector<int> owners_;  // ZeRO: the rank that updates each parameter; empty without
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<GradientReducer> reducer_;  // under torchrun: overlaps the reduction with backward
};

struct TrainingResult {
  int64_t steps_done = 0;    // total optimizer steps completed (including before a resume)
  int stop_signal = 0;       // SIGINT/SIGTERM that stopped it after saving a checkpoint; 0: ran to the end
  double final_loss = 0;     // mean loss of the last step
};

class Trainer {
 public:
  Trainer(TrainerConfig config, TrainingTask& task, TokenBatcher& data);

  // Resumes from the newest checkpoint in run_dir/checkpoints when there is one, then trains to
  // config.steps. Returns early (interrupted) on SIGINT/SIGTERM after saving a checkpoint.
  // Throws halo::Error naming the step on a NaN/Inf loss under nan_policy "stop". One run() at
  // a time per process (the signal flag is process-wide).
  TrainingResult run();

  // Handed to the TrainStep (see there).
  std::function<void(std::vector<at::Tensor>& grads)> all_reduce_gradients;

 private:
  TrainerConfig config_;
  TrainingTask& task_;
  TokenBatcher& data_;
};

}  // namespace halo
