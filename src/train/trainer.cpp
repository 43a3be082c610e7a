// Trainer::run: the step loop around a TrainingTask (see trainer.h for the contract).
//
// Setup: remove leftovers of cut-short checkpoint writes; resume from the newest complete
// checkpoint when there is one (weights copied into the task's own tensors, optimizer moments,
// step, data cursor, RNG states; a changed trajectory setting is named in a warning), else seed
// the global generators with config.seed. The metrics file is cut back to the resumed step.
//
// One step (0-based index s, reported as step s + 1) is a TrainStep over grad_accum
// micro-batches: each backward of loss / grad_accum; under torchrun the average over the ranks
// (a GradientReducer that overlaps it with the last micro-batch's backward, or the
// all_reduce_gradients hook when set; every parameter then gets a gradient, zeros if unused, so
// that all ranks hand over the same list);
// global norm clipping; then the AdamW update at learning_rate(config, s). A step whose mean
// loss or gradient norm is NaN/Inf is not applied: nan_policy "stop" saves the state before that step (cursor and RNG
// included, so that resuming with "skip" drops exactly that batch) and fails naming the step; "skip" drops the
// gradients with a warning and still counts the step (the step counter, data cursor and schedule advance, so a run
// stays bounded; the AdamW step count does not).
//
// With several ranks, rank 0 alone cleans, chooses and writes checkpoints and writes metrics; the
// others wait for its choice at a barrier before they load the same checkpoint.
//
// After each step: a metrics line, the progress bar, a checkpoint every checkpoint_every steps
// and at the end (keeping the newest keep_checkpoints). SIGINT/SIGTERM set a flag during run();
// after the current step a checkpoint is saved and run() returns interrupted; a second signal
// ends the process at once through the default action. The handlers in place before run() are
// restored when it returns. One run() at a time per process (the flag is process-wide).
#include "halo/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/GradMode.h>
#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <iterator>
#include <cstdio>
#include <mutex>
#include <optional>
#include <set>

#include "data/token_dataset.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/logging.h"
#include "halo/process_group.h"
#include "halo/progress.h"
#include "train/gradient_reducer.h"
#include "train/metrics_log.h"
#include "train/optimizer.h"
#include "train/training_checkpoint.h"

namespace halo {
namespace {

using Clock = std::chrono::steady_clock;
using TensorMap = std::map<std::string, at::Tensor>;

std::atomic<int> stop_signal{0};

void request_stop(int signal) {
  if (stop_signal.exchange(signal) != 0) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}

// Installs request_stop for SIGINT and SIGTERM for its lifetime.
class StopSignalHandlers {
 public:
  StopSignalHandlers() {
    stop_signal = 0;
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &action, &previous_int_);
    ::sigaction(SIGTERM, &action, &previous_term_);
  }
  ~StopSignalHandlers() {
    ::sigaction(SIGINT, &previous_int_, nullptr);
    ::sigaction(SIGTERM, &previous_term_, nullptr);
  }
  StopSignalHandlers(const StopSignalHandlers&) = delete;
  StopSignalHandlers& operator=(const StopSignalHandlers&) = delete;

 private:
  struct sigaction previous_int_ {
  }, previous_term_{};
};

void check_config(const TrainerConfig& c) {
  if (const auto problem = trainer_config_problem(c)) usage_fail("train.", problem->key, " ", problem->reason);
  if (c.run_dir.empty()) usage_fail("the trainer needs a run directory");
}

// The settings that shape the trajectory, stored in each checkpoint and compared on resume.
nlohmann::json trajectory_config(const TrainerConfig& c) {
  return {{"steps", c.steps},
          {"grad_accum", c.grad_accum},
          {"lr", c.lr},
          {"min_lr", c.min_lr},
          {"schedule", c.schedule},
          {"warmup_steps", c.warmup_steps},
          {"wsd_decay_fraction", c.wsd_decay_fraction},
          {"beta1", c.beta1},
          {"beta2", c.beta2},
          {"eps", c.eps},
          {"weight_decay", c.weight_decay},
          {"grad_clip", c.grad_clip},
          {"fp32_master", c.fp32_master},
          {"seed", c.seed}};
}

void warn_config_changes(const TrainerConfig& config, const nlohmann::json& saved, const std::string& origin) {
  const nlohmann::json now = trajectory_config(config);
  for (const auto& [key, value] : now.items()) {
    const std::string before = saved.contains(key) ? saved[key].dump() : "absent";
    if (!saved.contains(key) || saved[key] != value) {
      log::warn(cat(config.label, ": ", key, " is ", value.dump(), " now but was ", before, " in ", origin,
                    "; the run continues with the new value"));
    }
  }
}

NamedTensors checked_parameters(TrainingTask& task) {
  NamedTensors parameters = task.trainable_parameters();
  if (parameters.empty()) fail("the training task has no trainable parameters");
  std::set<std::string> names;
  for (const auto& [name, p] : parameters) {
    if (!names.insert(name).second) fail("trainable parameter '", name, "' is listed twice");
    if (!p.defined() || !p.requires_grad() || !p.is_leaf()) {
      fail("trainable parameter '", name, "' must be a defined leaf tensor with requires_grad set");
    }
  }
  return parameters;
}

std::vector<c10::DeviceIndex> cuda_devices_of(const NamedTensors& parameters) {
  std::set<c10::DeviceIndex> devices;
  for (const auto& [name, p] : parameters) {
    if (p.is_cuda()) devices.insert(p.device().index());
  }
  return {devices.begin(), devices.end()};
}

// Copies the checkpoint's trainable tensors into the task's parameters, which must match it
// name for name, shape for shape and dtype for dtype.
void load_trainable(const NamedTensors& parameters, const TensorMap& saved, const std::string& origin) {
  c10::NoGradGuard no_grad;
  if (saved.size() != parameters.size()) {
    fail(origin, ": holds ", saved.size(), " trainable tensors but the task trains ", parameters.size(),
         "; the checkpoint belongs to another stage or model");
  }
  for (const auto& [name, p] : parameters) {
    const auto found = saved.find(name);
    if (found == saved.end())
      fail(origin, ": has no trainable tensor '", name, "'; the checkpoint belongs to another stage or model");
    const at::Tensor& t = found->second;
    if (!t.sizes().equals(p.sizes()) || t.scalar_type() != p.scalar_type()) {
      fail(origin, ": trainable tensor '", name, "' is ", t.scalar_type(), " ", t.sizes(), " but the task's is ",
           p.scalar_type(), " ", p.sizes());
    }
    p.detach().copy_(t);
  }
}

TensorMap trainable_state(const NamedTensors& parameters) {
  TensorMap state;
  for (const auto& [name, p] : parameters) state.emplace(name, p.detach());
  return state;
}

at::Tensor generator_state(at::Generator generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_generator_state(at::Generator generator, const at::Tensor& state) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

at::Generator cuda_generator(c10::DeviceIndex index) {
  return at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, index));
}

// The CPU generator's state and those of the CUDA devices that hold parameters.
TensorMap capture_rng(const std::vector<c10::DeviceIndex>& cuda_devices) {
  TensorMap states;
  states.emplace("cpu", generator_state(at::detail::getDefaultCPUGenerator()));
  for (c10::DeviceIndex index : cuda_devices)
    states.emplace(cat("cuda:", static_cast<int>(index)), generator_state(cuda_generator(index)));
  return states;
}

void restore_rng(const TensorMap& states, const std::vector<c10::DeviceIndex>& cuda_devices,
                 const std::string& origin) {
  for (const auto& [name, state] : states) {
    if (name == "cpu") {
      set_generator_state(at::detail::getDefaultCPUGenerator(), state);
      continue;
    }
    bool restored = false;
    for (c10::DeviceIndex index : cuda_devices) {
      if (name == cat("cuda:", static_cast<int>(index))) {
        set_generator_state(cuda_generator(index), state);
        restored = true;
      }
    }
    if (!restored)
      log::warn(
          cat(origin, ": generator state '", name, "' is for a device that holds no parameters now; not restored"));
  }
}

// The highest per-GPU peak of allocated bytes when parameters are on CUDA, else the process's
// peak resident set size.
int64_t peak_memory_bytes(const std::vector<c10::DeviceIndex>& cuda_devices) {
  if (cuda_devices.empty()) {
    struct rusage usage {};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
  }
  int64_t peak = 0;
  for (c10::DeviceIndex index : cuda_devices) {
    const auto stats = c10::getDeviceAllocator(c10::DeviceType::CUDA)->getDeviceStats(index);
    peak = std::max(peak, stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak);
  }
  return peak;
}

std::string describe(double value) {
  if (std::isnan(value)) return "nan";
  return value > 0 ? "inf" : "-inf";
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string progress_postfix(double loss, double lr) {
  char text[64];
  std::snprintf(text, sizeof text, "loss %.4f lr %.2e", loss, lr);
  return text;
}

}  // namespace

// ZeRO-1's owners: each parameter to the rank with the fewest elements so far, largest first
// (the greedy partition of torch's ZeroRedundancyOptimizer), the same on every rank.
std::vector<int> parameter_owners(const NamedTensors& parameters, int ranks) {
  std::vector<size_t> order(parameters.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return parameters[a].second.numel() > parameters[b].second.numel();
  });
  std::vector<int64_t> load(static_cast<size_t>(ranks), 0);
  std::vector<int> owners(parameters.size(), 0);
  for (size_t i : order) {
    const auto least = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owners[i] = least;
    load[static_cast<size_t>(least)] += parameters[i].second.numel();
  }
  return owners;
}

TrainStep::TrainStep(const TrainerConfig& config, TrainingTask& task)
    : config_(config), task_(task), parameters_(checked_parameters(task)) {
  ProcessGroup& world = ProcessGroup::world();
  data_parallel = world.distributed();
  std::vector<bool> owned;
  if (data_parallel && config.zero >= 1) {
    owners_ = parameter_owners(parameters_, world.size());
    for (int owner : owners_) owned.push_back(owner == world.rank());
  }
  optimizer_ = std::make_unique<AdamW>(
      parameters_, AdamWOptions{config.beta1, config.beta2, config.eps, config.weight_decay, config.fp32_master},
      std::move(owned));
  if (data_parallel) {
    std::vector<at::Tensor> tensors;
    for (const auto& [name, p] : parameters_) tensors.push_back(p);
    reducer_ = std::make_unique<GradientReducer>(std::move(tensors), config.zero == 2 ? owners_ : std::vector<int>{},
                                                 world);
  }
}

NamedTensors TrainStep::optimizer_state() {
  if (owners_.empty()) return optimizer_->state();
  // Each owner sends its parameters' state; rank 0 keeps all of it.
  ProcessGroup& world = ProcessGroup::world();
  NamedTensors state;
  for (int owner = 0; owner < world.size(); ++owner) {
    std::vector<at::Tensor> sent;
    std::vector<std::string> names;
    for (size_t i = 0; i < parameters_.size(); ++i) {
      if (owners_[i] != owner) continue;
      const std::string& name = parameters_[i].first;
      std::vector<at::Tensor> tensors = optimizer_->state_of(i);
      if (tensors.empty()) {  // not ours: room for the owner's
        const auto f32 = parameters_[i].second.options().dtype(at::kFloat);
        const size_t count = optimizer_->keeps_master(i) ? 3 : 2;
        for (size_t k = 0; k < count; ++k) tensors.push_back(at::empty(parameters_[i].second.sizes(), f32));
      }
      names.push_back("exp_avg." + name);
      names.push_back("exp_avg_sq." + name);
      if (tensors.size() == 3) names.push_back("master." + name);
      sent.insert(sent.end(), tensors.begin(), tensors.end());
    }
    if (owner != 0) world.broadcast(sent, owner);
    if (world.is_main()) {
      for (size_t k = 0; k < sent.size(); ++k) state.emplace_back(names[k], sent[k]);
    }
  }
  return state;
}

TrainStep::~TrainStep() = default;

StepOutcome TrainStep::run(const std::vector<at::Tensor>& micro_batches, double lr) {
  StepOutcome outcome;
  at::Tensor loss_sum;
  const double count = static_cast<double>(micro_batches.size());
  // The reducer takes the gradients of the last micro-batch's backward as they come.
  const bool overlap = data_parallel && reducer_ && !all_reduce_gradients;
  for (size_t k = 0; k < micro_batches.size(); ++k) {
    const at::Tensor& batch = micro_batches[k];
    int64_t batch_tokens = batch.size(0) * (batch.size(1) - 1);
    const at::Tensor loss = task_.loss(batch, &batch_tokens);
    if (!loss.defined() || loss.numel() != 1) fail(config_.label, ": the task's loss is not a scalar");
    if (overlap && k + 1 == micro_batches.size()) reducer_->arm();
    (loss / count).backward();
    const at::Tensor value = loss.detach().to(at::kDouble).reshape({});
    loss_sum = loss_sum.defined() ? loss_sum + value : value;
    outcome.tokens += batch_tokens;
  }
  ProcessGroup& world = ProcessGroup::world();
  if (overlap) reducer_->finish();
  std::vector<at::Tensor> grads;
  for (const auto& [name, p] : parameters_) {
    if (all_reduce_gradients && !p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    grads.push_back(p.grad());
  }
  if (all_reduce_gradients) {
    all_reduce_gradients(grads);
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!grads[i].is_same(parameters_[i].second.grad())) parameters_[i].second.mutable_grad() = grads[i];
    }
  }
  outcome.loss = loss_sum.item<double>() / count;
  if (data_parallel) {  // every rank reports the loss and tokens of the whole step
    std::vector<at::Tensor> totals{at::tensor({outcome.loss, static_cast<double>(outcome.tokens)}, at::kDouble)};
    world.all_reduce_sum(totals);  // one collective for both
    outcome.loss = totals[0][0].item<double>() / world.size();
    outcome.tokens = static_cast<int64_t>(totals[0][1].item<double>());
  }
  // ZeRO-2: each rank holds its own parameters' gradients; the norm is over all ranks'.
  std::function<double(double)> sum_over_ranks;
  if (overlap && config_.zero == 2) {
    sum_over_ranks = [&world](double squares) {
      std::vector<at::Tensor> total{at::full({1}, squares, at::kDouble)};
      world.all_reduce_sum(total);
      return total[0].item<double>();
    };
  }
  outcome.grad_norm = clip_grad_norm(grads, config_.grad_clip, sum_over_ranks);
  grads.clear();
  outcome.applied = std::isfinite(outcome.loss) && std::isfinite(outcome.grad_norm);
  if (outcome.applied) {
    optimizer_->step(lr);
    // ZeRO: each rank updated its own parameters; every owner sends them to the others.
    if (!owners_.empty() && data_parallel) {
      c10::NoGradGuard no_grad;
      ProcessGroup& world = ProcessGroup::world();
      for (int owner = 0; owner < world.size(); ++owner) {
        std::vector<at::Tensor> updated;
        for (size_t i = 0; i < parameters_.size(); ++i) {
          if (owners_[i] == owner) updated.push_back(parameters_[i].second.detach());
        }
        world.broadcast(updated, owner);
      }
    }
  }
  optimizer_->zero_grad();
  return outcome;
}

std::optional<TrainerConfigProblem> trainer_config_problem(const TrainerConfig& c) {
  auto problem = [](const char* key, std::string reason) { return TrainerConfigProblem{key, std::move(reason)}; };
  if (c.steps < 1) return problem("steps", cat("must be >= 1, not ", c.steps));
  if (c.grad_accum < 1) return problem("grad_accum", cat("must be >= 1, not ", c.grad_accum));
  if (!(c.lr > 0 && c.lr < 1e3)) return problem("lr", cat("must be positive (and below 1000), not ", c.lr));
  if (!(c.min_lr >= 0 && c.min_lr <= c.lr)) return problem("min_lr", cat("must be in [0, lr = ", c.lr, "], not ", c.min_lr));
  if (c.schedule != "cosine" && c.schedule != "wsd" && c.schedule != "constant") {
    return problem("schedule", cat("'", c.schedule, "' is unknown; use cosine, wsd or constant"));
  }
  if (c.warmup_steps < 0) return problem("warmup_steps", cat("must be >= 0, not ", c.warmup_steps));
  if (!(c.wsd_decay_fraction >= 0 && c.wsd_decay_fraction <= 1)) {
    return problem("wsd_decay_fraction", cat("must be in [0, 1], not ", c.wsd_decay_fraction));
  }
  if (!(c.beta1 >= 0 && c.beta1 < 1)) return problem("beta1", cat("must be in [0, 1), not ", c.beta1));
  if (!(c.beta2 >= 0 && c.beta2 < 1)) return problem("beta2", cat("must be in [0, 1), not ", c.beta2));
  if (!(c.eps > 0 && c.eps < 1)) return problem("eps", cat("must be in (0, 1), not ", c.eps));
  if (!(c.weight_decay >= 0 && c.weight_decay < 1e3)) {
    return problem("weight_decay", cat("must be >= 0 (and below 1000), not ", c.weight_decay));
  }
  if (!(c.grad_clip >= 0 && std::isfinite(c.grad_clip))) {
    return problem("grad_clip", cat("must be >= 0 (0 disables clipping), not ", c.grad_clip));
  }
  if (c.nan_policy != "stop" && c.nan_policy != "skip") {
    return problem("nan_policy", cat("'", c.nan_policy, "' is unknown; use stop or skip"));
  }
  if (!(c.max_skipped_fraction >= 0 && c.max_skipped_fraction <= 1)) {
    return problem("max_skipped_fraction", cat("must be in [0, 1], not ", c.max_skipped_fraction));
  }
  if (c.checkpoint_every < 0) {
    return problem("checkpoint_every", cat("must be >= 0 (0: only at the end), not ", c.checkpoint_every));
  }
  if (c.keep_checkpoints < 1) return problem("keep_checkpoints", cat("must be >= 1, not ", c.keep_checkpoints));
  if (c.zero < 0 || c.zero > 2) {
    return problem("zero", cat("must be 0, 1 (ZeRO-1: AdamW state sharded) or 2 (ZeRO-2: gradients too), not ", c.zero));
  }
  return std::nullopt;
}

Trainer::Trainer(TrainerConfig config, TrainingTask& task, TokenBatcher& data)
    : config_(std::move(config)), task_(task), data_(data) {
  check_config(config_);
}

TrainingResult Trainer::run() {
  const std::string checkpoints_dir = join_path(config_.run_dir, "checkpoints");
  ProcessGroup& world = ProcessGroup::world();
  const bool main_rank = world.is_main();  // the one rank that writes
  if (main_rank) {
    create_directories(checkpoints_dir);
    remove_stale_checkpoint_dirs(checkpoints_dir);
  }

  TrainStep train_step(config_, task_);
  train_step.all_reduce_gradients = all_reduce_gradients;
  const NamedTensors& parameters = train_step.parameters();
  AdamW& optimizer = train_step.optimizer();
  const std::vector<c10::DeviceIndex> cuda_devices = cuda_devices_of(parameters);
  const std::string config_json = trajectory_config(config_).dump();

  TrainingState state;
  std::optional<TrainingCheckpoint> resumed;
  std::string resumed_from;
  // The main rank picks the checkpoint (setting damaged ones aside) before the others look.
  if (!main_rank) world.barrier();
  if (const auto checkpoints = list_checkpoints(checkpoints_dir); !checkpoints.empty()) {
    // Newest first; a damaged one is set aside (or, with resume_fallback off, stops the run).
    for (auto it = checkpoints.rbegin(); it != checkpoints.rend() && !resumed; ++it) {
      try {
        resumed = load_training_checkpoint(it->path);
        resumed_from = it->path;
      } catch (const Error& error) {
        if (!config_.resume_fallback || !main_rank) {
          fail(error.what(), "; not resuming from an older checkpoint (train.resume_fallback is false)");
        }
        const std::string aside = set_aside_damaged_checkpoint(it->path);
        log::warn(cat(config_.label, ": ", error.what(), "; set aside as ", aside,
                      std::next(it) != checkpoints.rend() ? "; resuming from the previous checkpoint" : ""));
      }
    }
    if (!resumed) {
      fail(checkpoints_dir, ": no usable checkpoint (each failed its checks, see the warnings); delete ",
           checkpoints_dir, " to start the ", config_.label, " stage over");
    }
    warn_config_changes(config_, nlohmann::json::parse(resumed->state.config_json), resumed_from);
    load_trainable(parameters, resumed->trainable, join_path(resumed_from, "trainable.safetensors"));
  }
  if (resumed) {
    state = resumed->state;
    optimizer.load_state(resumed->optimizer, state.optimizer_steps, join_path(resumed_from, "optimizer.safetensors"));
    restore_rng(resumed->rng, cuda_devices, join_path(resumed_from, "rng.safetensors"));
    data_.restore(state.data_cursor);
    resumed.reset();  // releases the mapped checkpoint files
    log::info(cat(config_.label, ": resuming from ", resumed_from, " (step ", state.step, " of ", config_.steps, ")"));
    if (state.step > config_.steps) {
      log::warn(cat(config_.label, ": the checkpoint is past the configured ", config_.steps,
                    " steps; the stage ends with its weights"));
    }
  } else {
    at::manual_seed(config_.seed);
  }
  if (main_rank) world.barrier();
  state.config_json = config_json;

  std::optional<MetricsLog> metrics;
  if (main_rank) metrics.emplace(join_path(config_.run_dir, "metrics.jsonl"), state.step);
  // Only the main rank writes checkpoints; the others' weights are the same after every step.
  // The optimizer state is gathered on every rank (ZeRO-1 shards it: a collective).
  auto save = [&](TrainingState saved, TensorMap rng) -> std::string {
    NamedTensors optimizer_state = train_step.optimizer_state();
    if (!main_rank) return checkpoint_name(saved.step) + " (written by rank 0)";
    saved.config_json = config_json;
    TrainingCheckpoint checkpoint{std::move(saved), trainable_state(parameters), {}, std::move(rng)};
    for (const auto& [key, tensor] : optimizer_state) checkpoint.optimizer.emplace(key, tensor);
    const std::string path = save_training_checkpoint(checkpoints_dir, checkpoint);
    prune_checkpoints(checkpoints_dir, config_.keep_checkpoints);
    log::debug(cat(config_.label, ": checkpoint ", path));
    return path;
  };

  TrainingResult result;
  result.final_loss = state.loss;
  StopSignalHandlers signals;
  std::optional<ProgressBar> bar;
  if (main_rank) bar.emplace(config_.label, std::max<int64_t>(config_.steps - state.step, 0), "step");
  const Clock::time_point session_start = Clock::now();
  const double elapsed_before = state.elapsed_s;
  while (state.step < config_.steps) {
    const int64_t number = state.step + 1;  // the step being taken, 1-based
    const TokenCursor cursor_before = data_.cursor();
    TensorMap rng_before = capture_rng(cuda_devices);
    const Clock::time_point step_start = Clock::now();
    const double lr = learning_rate(config_, state.step);

    std::vector<at::Tensor> micro_batches;
    for (int64_t micro = 0; micro < config_.grad_accum; ++micro) micro_batches.push_back(data_.next());
    const StepOutcome outcome = train_step.run(micro_batches, lr);
    micro_batches.clear();
    const double loss_value = outcome.loss, grad_norm = outcome.grad_norm;
    const bool skipped = !outcome.applied;
    if (skipped) {
      const std::string what = !std::isfinite(loss_value) ? cat("loss is ", describe(loss_value))
                                                          : cat("gradient norm is ", describe(grad_norm));
      if (config_.nan_policy == "stop") {
        std::string saved;
        if (state.step > 0) {
          TrainingState before = state;
          before.data_cursor = cursor_before;
          before.elapsed_s = elapsed_before + seconds_since(session_start);
          saved = cat("; the state after step ", state.step, " is in ", save(before, std::move(rng_before)),
                      " (resume with nan_policy skip to drop this step's batches)");
        }
        fail("step ", number, ": ", what, saved, "; nan_policy stop ended training");
      }
      log::warn(cat(config_.label, ": step ", number, ": ", what, "; its batches are skipped (nan_policy skip)"));
      ++state.skipped_steps;
      const int64_t allowed = static_cast<int64_t>(config_.max_skipped_fraction * static_cast<double>(config_.steps));
      if (state.skipped_steps > allowed) {
        fail(config_.label, ": ", state.skipped_steps, " steps skipped for a non-finite loss or gradient, more than ",
             fixed(100 * config_.max_skipped_fraction, 1), "% of ", config_.steps,
             " (train.max_skipped_fraction); training diverges: lower the learning rate or fix the data");
      }
    } else {
      ++state.optimizer_steps;
    }

    const double step_seconds = seconds_since(step_start);
    // A signal to any rank stops every rank after the same step; the peak memory logged is the
    // largest rank's.
    const std::vector<double> maxima =
        world.max({static_cast<double>(stop_signal.load()), static_cast<double>(peak_memory_bytes(cuda_devices))});
    const int signal_seen = static_cast<int>(maxima[0]);
    state.step = number;
    state.tokens_seen += outcome.tokens;
    state.loss = loss_value;
    state.lr = lr;
    state.elapsed_s = elapsed_before + seconds_since(session_start);
    if (metrics) metrics->append({{"step", number},
                    {"loss", loss_value},
                    {"lr", lr},
                    {"grad_norm", grad_norm},
                    {"tokens_per_s", step_seconds > 0 ? static_cast<double>(outcome.tokens) / step_seconds : 0.0},
                    {"tokens_seen", state.tokens_seen},
                    {"peak_memory_bytes", static_cast<int64_t>(maxima[1])},
                    {"elapsed_s", state.elapsed_s},
                    {"skipped", skipped}});
    if (bar) {
      bar->set_postfix(progress_postfix(loss_value, lr));
      bar->advance();
    }
    result.final_loss = loss_value;

    const bool stop_requested = signal_seen != 0 && state.step < config_.steps;
    if (stop_requested || state.step == config_.steps ||
        (config_.checkpoint_every > 0 && state.step % config_.checkpoint_every == 0)) {
      state.data_cursor = data_.cursor();
      const std::string path = save(state, capture_rng(cuda_devices));
      if (stop_requested) {
        if (bar) bar->finish();
        log::warn(cat(config_.label, ": stopped by signal ", signal_seen, " after step ", state.step,
                      "; checkpoint ", path));
        result.stop_signal = signal_seen;
        break;
      }
    }
  }
  if (bar) bar->finish();
  result.steps_done = state.step;
  return result;
}

}  // namespace halo
