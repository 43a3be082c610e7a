// Trainer, AdamW, clipping, LR schedules and training checkpoints, on a bigram model (an
// embedding and a linear head, a few hundred parameters) over a synthetic token corpus whose next
// token is mostly a fixed function of the current one, so the loss has something to learn.
// Crash and signal tests run training in a child process: this test binary itself, started
// through posix_spawn with a filter that selects the disabled TrainerChild.DISABLED_Train case
// and environment variables that say what to train, so no torch state crosses a fork.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <thread>

#include "data/token_dataset.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/logging.h"
#include "halo/token_corpus.h"
#include "halo/trainer.h"
#include "test_support.h"
#include "train/optimizer.h"
#include "train/training_checkpoint.h"

extern char** environ;

namespace halo {
namespace {
using test::make_temp_dir;
using test::write_text;

constexpr int64_t kVocab = 16;
constexpr int64_t kDim = 8;

// N tokens where the next token is (3 t + 1) mod 16 nine times in ten, else pseudo-random.
std::string make_corpus(int64_t n = 2000) {
  std::vector<uint32_t> ids(static_cast<size_t>(n));
  uint64_t state = 12345;
  uint32_t t = 0;
  for (auto& id : ids) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    t = (state >> 60) < 15 ? (3 * t + 1) % kVocab : static_cast<uint32_t>((state >> 33) % kVocab);
    id = t;
  }
  return test::write_token_dir(ids, kVocab);
}

// logits = (embedding[x] + small Gaussian noise) @ head + bias, mean cross-entropy. `before_loss` runs at the start of
// every loss() call (after `calls` counts it); call number `nan_at_call` returns NaN.
class BigramTask : public TrainingTask {
 public:
  explicit BigramTask(uint64_t seed, c10::Device device = at::kCPU) {
    at::Generator g = at::detail::createCPUGenerator(seed);
    embedding = (at::randn({kVocab, kDim}, g) * 0.5).to(device).requires_grad_();
    head = (at::randn({kDim, kVocab}, g) * 0.3).to(device).requires_grad_();
    bias = at::zeros({kVocab}, device).requires_grad_();
  }
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override {
    return {{"embedding", embedding}, {"head.weight", head}, {"head.bias", bias}};
  }
  at::Tensor loss(const at::Tensor& batch, int64_t* tokens) override {
    ++calls;
    if (before_loss) before_loss();
    const at::Tensor on_device = batch.to(embedding.device());
    const at::Tensor inputs = on_device.slice(1, 0, batch.size(1) - 1).flatten();
    const at::Tensor targets = on_device.slice(1, 1).flatten();
    at::Tensor hidden = embedding.index_select(0, inputs);
    if (noise) hidden = hidden + 0.01 * at::randn_like(hidden);  // draws from the global CPU generator
    at::Tensor loss = at::cross_entropy_loss(hidden.mm(head) + bias, targets);
    if (calls == nan_at_call || (nan_from_call > 0 && calls >= nan_from_call))
      loss = loss * std::numeric_limits<double>::quiet_NaN();
    *tokens = targets.numel();
    return loss;
  }

  at::Tensor embedding, head, bias;
  int64_t calls = 0, nan_at_call = -1, nan_from_call = -1;  // one NaN call; NaN from this call on
  bool noise = true;  // so that resuming must restore the generator state
  std::function<void()> before_loss;
};

TrainerConfig config_for(const std::string& run_dir, int64_t steps) {
  TrainerConfig c;
  c.steps = steps;
  c.lr = 3e-2;
  c.min_lr = 3e-3;
  c.warmup_steps = 2;
  c.weight_decay = 0.1;
  c.grad_clip = 1.0;
  c.keep_checkpoints = 2;
  c.run_dir = run_dir;
  c.label = "test";
  return c;
}

TokenBatcherOptions batches(int64_t batch_size = 4) {
  TokenBatcherOptions o;
  o.batch_size = batch_size;
  o.seq_len = 8;
  o.seed = 7;
  return o;
}

// Trains a fresh task (weights from `init_seed`) under `config`; returns the task's weights.
struct Trained {
  TrainingResult result;
  std::vector<at::Tensor> weights;
};
Trained train(const std::string& corpus, const TrainerConfig& config, uint64_t init_seed = 1,
              const std::function<void(BigramTask&)>& setup = {}) {
  TokenDataset dataset(corpus);
  TokenBatcher batcher(dataset, batches());
  BigramTask task(init_seed);
  if (setup) setup(task);
  Trainer trainer(config, task, batcher);
  Trained out;
  out.result = trainer.run();
  for (const auto& [name, p] : task.trainable_parameters()) out.weights.push_back(p.detach().clone());
  return out;
}

std::vector<nlohmann::json> metrics_of(const std::string& run_dir) {
  std::vector<nlohmann::json> records;
  const std::string path = run_dir + "/metrics.jsonl";
  if (!path_exists(path)) return records;
  std::istringstream lines(read_file(path));
  for (std::string line; std::getline(lines, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

std::vector<int64_t> metric_steps(const std::string& run_dir) {
  std::vector<int64_t> steps;
  for (const auto& r : metrics_of(run_dir)) steps.push_back(r["step"].get<int64_t>());
  return steps;
}

std::vector<int64_t> one_to(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i + 1;
  return v;
}

std::vector<int64_t> checkpoint_steps(const std::string& run_dir) {
  std::vector<int64_t> steps;
  for (const auto& c : list_checkpoints(run_dir + "/checkpoints")) steps.push_back(c.step);
  return steps;
}

void expect_bitwise_equal(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].equal(b[i])) << "tensor " << i << " differs";
}

using halo::test::error_of;

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::set_num_threads(1);  // the same kernels in this process and in training children
    log::set_level(log::Level::warn);
  }
};

TEST_F(TrainerTest, LossDecreases) {
  const std::string run_dir = make_temp_dir();
  const Trained t = train(make_corpus(), config_for(run_dir, 30));
  EXPECT_EQ(t.result.steps_done, 30);
  EXPECT_EQ(t.result.stop_signal, 0);
  const auto m = metrics_of(run_dir);
  ASSERT_EQ(m.size(), 30u);
  const double first = (m[0]["loss"].get<double>() + m[1]["loss"].get<double>() + m[2]["loss"].get<double>()) / 3;
  const double last = (m[27]["loss"].get<double>() + m[28]["loss"].get<double>() + m[29]["loss"].get<double>()) / 3;
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
  EXPECT_DOUBLE_EQ(t.result.final_loss, m[29]["loss"].get<double>());
  // Every field of a metrics line, with sane values.
  for (const char* key : {"step", "loss", "lr", "grad_norm", "tokens_per_s", "tokens_seen", "peak_memory_bytes",
                          "elapsed_s", "skipped"}) {
    EXPECT_TRUE(m[29].contains(key)) << key;
  }
  EXPECT_EQ(m[29]["tokens_seen"].get<int64_t>(), 30 * 4 * 8);
  EXPECT_GT(m[29]["peak_memory_bytes"].get<int64_t>(), 0);
  EXPECT_GT(m[29]["tokens_per_s"].get<double>(), 0);
  EXPECT_FALSE(m[29]["skipped"].get<bool>());
  EXPECT_DOUBLE_EQ(m[0]["lr"].get<double>(), 1.5e-2);  // first warmup step: lr / 2
  // The final checkpoint holds the final weights.
  EXPECT_EQ(checkpoint_steps(run_dir), std::vector<int64_t>{30});
  const TrainingCheckpoint c = load_training_checkpoint(run_dir + "/checkpoints/step-00000030");
  EXPECT_TRUE(c.trainable.at("head.weight").equal(t.weights[1]));
  EXPECT_EQ(c.state.step, 30);
  EXPECT_EQ(c.state.optimizer_steps, 30);
}

TEST_F(TrainerTest, LearningRateCurves) {
  TrainerConfig c;
  c.steps = 10;
  c.warmup_steps = 2;
  c.lr = 1.0;
  c.min_lr = 0.1;
  for (const char* schedule : {"cosine", "wsd", "constant"}) {
    c.schedule = schedule;
    EXPECT_DOUBLE_EQ(learning_rate(c, 0), 0.5) << schedule;  // linear from 0: (s + 1) / W
    EXPECT_DOUBLE_EQ(learning_rate(c, 1), 1.0) << schedule;
    EXPECT_DOUBLE_EQ(learning_rate(c, 2), 1.0) << schedule;
  }
  c.schedule = "cosine";
  EXPECT_DOUBLE_EQ(learning_rate(c, 9), 0.1);  // the last step at min_lr
  EXPECT_NEAR(learning_rate(c, 5), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 3 / 7)), 1e-12);
  for (int64_t s = 2; s < 9; ++s) EXPECT_GT(learning_rate(c, s), learning_rate(c, s + 1)) << s;
  EXPECT_DOUBLE_EQ(learning_rate(c, 20), 0.1);
  c.schedule = "wsd";
  c.wsd_decay_fraction = 0.3;  // the last 3 steps decay
  for (int64_t s = 2; s < 7; ++s) EXPECT_DOUBLE_EQ(learning_rate(c, s), 1.0) << s;
  EXPECT_NEAR(learning_rate(c, 7), 0.7, 1e-12);
  EXPECT_NEAR(learning_rate(c, 8), 0.4, 1e-12);
  EXPECT_DOUBLE_EQ(learning_rate(c, 9), 0.1);
  c.schedule = "constant";
  for (int64_t s = 2; s < 10; ++s) EXPECT_DOUBLE_EQ(learning_rate(c, s), 1.0) << s;
  c.schedule = "cosine";
  c.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 1.0);
  c.schedule = "linear";
  EXPECT_NE(error_of([&] { learning_rate(c, 3); }).find("'linear' is unknown"), std::string::npos);
}

TEST_F(TrainerTest, AdamWMatchesAHandComputedFloat64Step) {
  const double lr = 0.1, wd = 0.5, b1 = 0.9, b2 = 0.95, eps = 1e-8;
  at::Tensor w = at::tensor({0.5, -1.0, 2.0, 0.25}, at::kFloat).reshape({2, 2}).requires_grad_();
  at::Tensor b = at::tensor({0.1, -0.2}, at::kFloat).requires_grad_();
  AdamW adamw({{"w", w}, {"b", b}}, {b1, b2, eps, wd, false});
  const std::vector<std::vector<double>> grads_w = {{0.3, -0.7, 1.5, 0.01}, {-0.2, 0.4, 0.9, -0.05}};
  const std::vector<std::vector<double>> grads_b = {{2.0, -0.5}, {1.0, 0.25}};
  std::vector<double> pw = {0.5, -1.0, 2.0, 0.25}, pb = {0.1, -0.2};
  std::vector<double> mw(4), vw(4), mb(2), vb(2);
  auto reference = [&](std::vector<double>& p, std::vector<double>& m, std::vector<double>& v,
                       const std::vector<double>& g, bool decay, int t) {
    for (size_t i = 0; i < p.size(); ++i) {
      if (decay) p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double m_hat = m[i] / (1 - std::pow(b1, t)), v_hat = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  };
  for (int t = 1; t <= 2; ++t) {
    w.mutable_grad() = at::tensor(grads_w[t - 1], at::kFloat).reshape({2, 2});
    b.mutable_grad() = at::tensor(grads_b[t - 1], at::kFloat);
    adamw.step(lr);
    reference(pw, mw, vw, grads_w[t - 1], true, t);
    reference(pb, mb, vb, grads_b[t - 1], false, t);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(w.flatten()[i].item<double>(), pw[i], 1e-6) << "step " << t << " w" << i;
    for (int i = 0; i < 2; ++i) EXPECT_NEAR(b[i].item<double>(), pb[i], 1e-6) << "step " << t << " b" << i;
  }
  EXPECT_EQ(adamw.steps(), 2);
  adamw.zero_grad();
  EXPECT_FALSE(w.grad().defined());
  // The state holds the float32 moments by checkpoint key.
  const NamedTensors state = adamw.state();
  ASSERT_EQ(state.size(), 4u);
  EXPECT_EQ(state[0].first, "exp_avg.w");
  EXPECT_EQ(state[3].first, "exp_avg_sq.b");
  EXPECT_NEAR(state[0].second.flatten()[0].item<double>(), mw[0], 1e-7);
  EXPECT_NEAR(state[3].second[1].item<double>(), vb[1], 1e-7);
}

TEST_F(TrainerTest, Fp32MasterKeepsUpdatesSmallerThanTheBf16Spacing) {
  for (bool master : {false, true}) {
    at::Tensor p = at::ones({2, 2}, at::kBFloat16).requires_grad_();
    AdamW adamw({{"p", p}}, {0.9, 0.95, 1e-8, 0.0, master});
    for (int t = 0; t < 50; ++t) {
      p.mutable_grad() = at::ones({2, 2}, at::kBFloat16);
      adamw.step(1e-4);  // each update is about 1e-4, below half the bf16 spacing under 1 (2^-9)
    }
    EXPECT_EQ(p.scalar_type(), at::kBFloat16);
    if (master) {
      ASSERT_EQ(adamw.state().size(), 3u);
      const at::Tensor m = adamw.state()[2].second;
      EXPECT_EQ(adamw.state()[2].first, "master.p");
      EXPECT_NEAR(m[0][0].item<double>(), 1 - 50e-4, 1e-5);
      EXPECT_TRUE(p.detach().equal(m.to(at::kBFloat16)));
      EXPECT_LT(p[0][0].item<double>(), 1.0);
    } else {
      EXPECT_EQ(adamw.state().size(), 2u);
      EXPECT_EQ(p[0][0].item<double>(), 1.0);  // every update rounded away
    }
  }
}

TEST_F(TrainerTest, GradClippingBoundsTheGlobalNorm) {
  auto grads = [] {
    return std::vector<at::Tensor>{at::tensor({3.0f, 4.0f}), at::tensor({12.0f}).reshape({1, 1}), at::Tensor()};
  };
  auto norm = [](const std::vector<at::Tensor>& g) {
    return std::sqrt(g[0].pow(2).sum().item<double>() + g[1].pow(2).sum().item<double>());
  };
  std::vector<at::Tensor> g = grads();
  EXPECT_NEAR(clip_grad_norm(g, 1.0), 13.0, 1e-5);  // returns the norm before clipping
  EXPECT_LE(norm(g), 1.0);
  EXPECT_GT(norm(g), 0.999);
  EXPECT_NEAR(g[0][1].item<double>() / g[0][0].item<double>(), 4.0 / 3.0, 1e-6);  // direction kept
  g = grads();
  EXPECT_NEAR(clip_grad_norm(g, 100.0), 13.0, 1e-5);
  EXPECT_TRUE(g[0].equal(grads()[0]));  // under the limit: untouched
  g = grads();
  clip_grad_norm(g, 0.0);
  EXPECT_TRUE(g[1].equal(grads()[1]));  // 0 disables
}

TEST_F(TrainerTest, AccumulatedMicroBatchesMatchOneLargeBatchAndTheHookSeesEveryGradient) {
  const std::string corpus = make_corpus();
  TrainerConfig config = config_for(make_temp_dir(), 5);
  TokenDataset dataset(corpus);
  std::vector<at::Tensor> large, accumulated;
  for (int64_t accum : {1, 2}) {
    TokenBatcher batcher(dataset, batches(4 / accum));
    BigramTask task(1);
    task.noise = false;  // one draw of [16, 8] and two of [8, 8] need not give the same numbers
    config.grad_accum = accum;
    config.run_dir = make_temp_dir();
    Trainer trainer(config, task, batcher);
    int64_t hook_calls = 0;
    trainer.all_reduce_gradients = [&](std::vector<at::Tensor>& grads) {
      ++hook_calls;
      EXPECT_EQ(grads.size(), 3u);
      for (const auto& g : grads) EXPECT_TRUE(g.defined());
    };
    trainer.run();
    EXPECT_EQ(hook_calls, 5);
    EXPECT_EQ(task.calls, 5 * accum);
    auto& out = accum == 1 ? large : accumulated;
    for (const auto& [name, p] : task.trainable_parameters()) out.push_back(p.detach().clone());
  }
  for (size_t i = 0; i < large.size(); ++i) EXPECT_TRUE(large[i].allclose(accumulated[i], 1e-5, 1e-6)) << i;
  EXPECT_FALSE(large[0].equal(BigramTask(1).embedding));
}

// Trains 10 steps with a checkpoint every 4, interrupted by SIGINT during step 6, then resumes
// in a fresh trainer, task (other initial weights) and batcher; `before_resume` may alter the
// run directory in between. Returns the final weights.
std::vector<at::Tensor> interrupted_and_resumed(const std::string& corpus, const std::string& run_dir,
                                                const std::function<void()>& before_resume) {
  TrainerConfig config = config_for(run_dir, 10);
  config.checkpoint_every = 4;
  struct sigaction before {
  }, after{};
  ::sigaction(SIGINT, nullptr, &before);
  const Trained first = train(corpus, config, 1, [](BigramTask& task) {
    task.before_loss = [&task] {
      if (task.calls == 6) std::raise(SIGINT);
    };
  });
  ::sigaction(SIGINT, nullptr, &after);
  EXPECT_EQ(before.sa_handler, after.sa_handler) << "run() must restore the SIGINT handler";
  EXPECT_EQ(first.result.stop_signal, SIGINT);
  EXPECT_EQ(first.result.steps_done, 6);
  EXPECT_EQ(checkpoint_steps(run_dir), (std::vector<int64_t>{4, 6}));
  EXPECT_EQ(metric_steps(run_dir), one_to(6));
  before_resume();
  const Trained second = train(corpus, config, 99);
  EXPECT_EQ(second.result.stop_signal, 0);
  EXPECT_EQ(second.result.steps_done, 10);
  EXPECT_EQ(metric_steps(run_dir), one_to(10));
  EXPECT_EQ(checkpoint_steps(run_dir), (std::vector<int64_t>{8, 10}));
  return second.weights;
}

TEST_F(TrainerTest, InterruptedAndResumedRunEndsWithTheSameWeights) {
  const std::string corpus = make_corpus();
  TrainerConfig config = config_for(make_temp_dir(), 10);
  config.checkpoint_every = 4;
  const Trained reference = train(corpus, config);
  const std::string run_dir = make_temp_dir();
  const auto resumed = interrupted_and_resumed(corpus, run_dir, [] {});
  expect_bitwise_equal(resumed, reference.weights);
  EXPECT_FALSE(resumed[0].equal(BigramTask(99).embedding));
  // The metrics of the resumed steps match the uninterrupted run's.
  const auto a = metrics_of(run_dir), b = metrics_of(config.run_dir);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i]["loss"], b[i]["loss"]) << "step " << i + 1;
  // A run that is complete already does nothing more.
  const Trained again = train(corpus, config_for(run_dir, 10));
  EXPECT_EQ(again.result.steps_done, 10);
  EXPECT_EQ(metric_steps(run_dir), one_to(10));
}

TEST_F(TrainerTest, ResumeFromAnOlderCheckpointRedoesLaterStepsOnce) {
  const std::string corpus = make_corpus();
  TrainerConfig config = config_for(make_temp_dir(), 10);
  config.checkpoint_every = 4;
  const Trained reference = train(corpus, config);
  const std::string run_dir = make_temp_dir();
  // Without the step-6 checkpoint the run resumes at step 4; metrics lines 5 and 6 go.
  const auto resumed = interrupted_and_resumed(corpus, run_dir, [&] {
    remove_tree(run_dir + "/checkpoints/step-00000006");
    std::ofstream(run_dir + "/metrics.jsonl", std::ios::app) << "{\"step\": 7, \"loss\": 1.0";  // a torn line
  });
  expect_bitwise_equal(resumed, reference.weights);
}

// A flipped bit in the newest checkpoint, or a state.json that claims another step, is caught
// by the checksums: the run sets that checkpoint aside, resumes from the one before and ends
// with exactly the weights of an undisturbed run; with resume_fallback off it stops instead.
TEST_F(TrainerTest, ADamagedCheckpointIsSetAsideAndTheOneBeforeResumed) {
  const std::string corpus = make_corpus();
  auto flip_bit = [](const std::string& path, uint64_t offset) {
    std::string bytes = read_file(path);
    bytes[offset] = static_cast<char>(bytes[offset] ^ 0x10);
    write_text(path, bytes);
  };
  for (const std::string damage : {"weights", "state"}) {
    // 12 steps with checkpoints at 4, 8 and 12; the last is removed, the one at 8 damaged.
    const std::string run_dir = make_temp_dir();
    TrainerConfig config = config_for(run_dir, 12);
    config.checkpoint_every = 4;
    config.keep_checkpoints = 3;
    const Trained reference = train(corpus, config);
    ASSERT_EQ(checkpoint_steps(run_dir), (std::vector<int64_t>{4, 8, 12}));
    remove_tree(run_dir + "/checkpoints/step-00000012");
    const std::string newest = run_dir + "/checkpoints/step-00000008";
    if (damage == "weights") {
      const std::string weights = newest + "/trainable.safetensors";
      flip_bit(weights, file_size(weights) - 3);
    } else {
      std::string state = read_file(newest + "/state.json");
      state.replace(state.find("\"step\": 8"), 10, "\"step\": 1000000000");
      write_text(newest + "/state.json", state);
    }
    TrainerConfig strict = config;
    strict.resume_fallback = false;
    const std::string err = error_of([&] { train(corpus, strict); });
    EXPECT_NE(err.find(damage == "weights" ? "trainable.safetensors: damaged" : "state.json: damaged"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("resume_fallback"), std::string::npos) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
    const Trained resumed = train(corpus, config, 99);  // other initial weights: all come from step 4
    expect_bitwise_equal(resumed.weights, reference.weights);
    EXPECT_TRUE(is_directory(newest + ".damaged")) << damage;
    EXPECT_EQ(checkpoint_steps(run_dir), (std::vector<int64_t>{4, 8, 12})) << damage;  // 8 saved anew
  }
  // No usable checkpoint at all: an error, not a fresh start.
  const std::string run_dir = make_temp_dir();
  train(corpus, config_for(run_dir, 2));
  remove_tree(run_dir + "/checkpoints/step-00000002/checksums.json");
  const std::string err = error_of([&] { train(corpus, config_for(run_dir, 4)); });
  EXPECT_NE(err.find("no usable checkpoint"), std::string::npos) << err;
}

TEST_F(TrainerTest, NanLossStopsNamingTheStepAndSavesTheStepBefore) {
  const std::string corpus = make_corpus();
  const std::string run_dir = make_temp_dir();
  TrainerConfig config = config_for(run_dir, 10);
  const std::string err = error_of([&] { train(corpus, config, 1, [](BigramTask& t) { t.nan_at_call = 5; }); });
  EXPECT_NE(err.find("step 5: loss is nan"), std::string::npos) << err;
  EXPECT_NE(err.find("step-00000004"), std::string::npos) << err;
  ASSERT_EQ(checkpoint_steps(run_dir), std::vector<int64_t>{4});
  const TrainingCheckpoint c = load_training_checkpoint(run_dir + "/checkpoints/step-00000004");
  for (const auto& [name, t] : c.trainable) EXPECT_TRUE(at::isfinite(t).all().item<bool>()) << name;
  EXPECT_EQ(c.state.data_cursor.position, 4 * 4);  // before the batch of step 5
  EXPECT_EQ(metric_steps(run_dir), one_to(4));
  // Resuming with nan_policy skip drops exactly that batch.
  config.nan_policy = "skip";
  config.max_skipped_fraction = 0.1;
  const Trained resumed = train(corpus, config, 1, [](BigramTask& t) { t.nan_at_call = 1; });
  EXPECT_EQ(resumed.result.steps_done, 10);
  const auto m = metrics_of(run_dir);
  ASSERT_EQ(m.size(), 10u);
  EXPECT_TRUE(m[4]["skipped"].get<bool>());
  EXPECT_FALSE(m[5]["skipped"].get<bool>());
}

TEST_F(TrainerTest, NanLossSkipDropsTheStepAndKeepsGoing) {
  const std::string run_dir = make_temp_dir();
  TrainerConfig config = config_for(run_dir, 6);
  config.nan_policy = "skip";
  config.max_skipped_fraction = 0.2;
  const Trained t = train(make_corpus(), config, 1, [](BigramTask& task) { task.nan_at_call = 3; });
  EXPECT_EQ(t.result.steps_done, 6);
  for (const auto& w : t.weights) EXPECT_TRUE(at::isfinite(w).all().item<bool>());
  const auto m = metrics_of(run_dir);
  ASSERT_EQ(m.size(), 6u);
  for (size_t i = 0; i < m.size(); ++i) EXPECT_EQ(m[i]["skipped"].get<bool>(), i == 2) << i;
  EXPECT_TRUE(m[2]["loss"].is_null());  // NaN has no JSON spelling
  const TrainingCheckpoint c = load_training_checkpoint(run_dir + "/checkpoints/step-00000006");
  EXPECT_EQ(c.state.skipped_steps, 1);
  EXPECT_EQ(c.state.optimizer_steps, 5);
  EXPECT_EQ(c.state.data_cursor.position, 6 * 4);  // the skipped batch was consumed
}

// A diverged run under nan_policy skip fails once the skipped steps pass max_skipped_fraction of
// the steps, instead of finishing "successfully" on its few good steps.
TEST_F(TrainerTest, NanLossSkipFailsWhenTooManyStepsAreSkipped) {
  TrainerConfig config = config_for(make_temp_dir(), 20);
  config.nan_policy = "skip";
  config.max_skipped_fraction = 0.1;  // 2 of 20 allowed
  const std::string err = error_of([&] { train(make_corpus(), config, 1, [](BigramTask& t) { t.nan_from_call = 5; }); });
  EXPECT_NE(err.find("3 steps skipped"), std::string::npos) << err;
  EXPECT_NE(err.find("max_skipped_fraction"), std::string::npos) << err;
}

TEST_F(TrainerTest, KeepsTheNewestCheckpointsAndRemovesStaleTemporaries) {
  const std::string run_dir = make_temp_dir();
  create_directories(run_dir + "/checkpoints/step-00000003.tmp-12345");
  write_text(run_dir + "/checkpoints/step-00000003.tmp-12345/trainable.safetensors", "torn");
  create_directories(run_dir + "/checkpoints/step-00000001.tmp-removing-999");
  TrainerConfig config = config_for(run_dir, 9);
  config.checkpoint_every = 2;
  config.keep_checkpoints = 2;
  train(make_corpus(), config);
  EXPECT_EQ(list_directory(run_dir + "/checkpoints"), (std::vector<std::string>{"step-00000008", "step-00000009"}));
  config.keep_checkpoints = 0;
  EXPECT_NE(error_of([&] { train(make_corpus(), config); }).find("train.keep_checkpoints must be >= 1"),
            std::string::npos);
}

TEST_F(TrainerTest, ResumingIntoADifferentModelFailsClearly) {
  const std::string corpus = make_corpus();
  const std::string run_dir = make_temp_dir();
  train(corpus, config_for(run_dir, 2));
  class OtherTask : public BigramTask {
   public:
    OtherTask() : BigramTask(1) {}
    std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override {
      return {{"embedding", embedding}, {"head.weight", head}, {"head.bias_renamed", bias}};
    }
  } other;
  TokenDataset dataset(corpus);
  TokenBatcher batcher(dataset, batches());
  Trainer trainer(config_for(run_dir, 4), other, batcher);
  const std::string err = error_of([&] { trainer.run(); });
  EXPECT_NE(err.find("has no trainable tensor 'head.bias_renamed'"), std::string::npos) << err;
}

// On the test device ($HALO_TEST_DEVICE; the GPU under scripts/device/test.sh): the checkpoint
// holds that device's generator state, peak memory is reported, and an interrupted run resumes
// to the weights of an uninterrupted one (bitwise on the CPU; CUDA's embedding backward adds in
// no fixed order, so there only closely).
TEST_F(TrainerTest, TrainsAndResumesOnTheTestDevice) {
  const c10::Device device = test::device();
  const std::string corpus = make_corpus();
  auto run = [&](const std::string& run_dir, int64_t interrupt_at_call) {
    TokenDataset dataset(corpus);
    TokenBatcher batcher(dataset, batches());
    BigramTask task(1, device);
    task.before_loss = [&task, interrupt_at_call] {
      if (task.calls == interrupt_at_call) std::raise(SIGINT);
    };
    TrainerConfig config = config_for(run_dir, 6);
    config.checkpoint_every = 3;
    const TrainingResult result = Trainer(config, task, batcher).run();
    std::vector<at::Tensor> weights;
    for (const auto& [name, p] : task.trainable_parameters()) {
      EXPECT_EQ(p.device(), device) << name;
      weights.push_back(p.detach().cpu());
    }
    return std::make_pair(result, weights);
  };
  const std::string run_dir = make_temp_dir();
  EXPECT_EQ(run(run_dir, 4).first.stop_signal, SIGINT);
  const auto [result, resumed] = run(run_dir, -1);
  EXPECT_EQ(result.steps_done, 6);
  const auto reference = run(make_temp_dir(), -1).second;
  for (size_t i = 0; i < resumed.size(); ++i) {
    if (device.is_cpu()) {
      EXPECT_TRUE(resumed[i].equal(reference[i])) << i;
    } else {
      EXPECT_TRUE(resumed[i].allclose(reference[i], 1e-4, 1e-5)) << i;
    }
  }
  const TrainingCheckpoint c = load_training_checkpoint(run_dir + "/checkpoints/step-00000006");
  EXPECT_EQ(c.rng.count("cpu"), 1u);
  if (device.is_cuda()) EXPECT_EQ(c.rng.count(cat("cuda:", device.has_index() ? device.index() : 0)), 1u);
  for (const auto& record : metrics_of(run_dir)) EXPECT_GT(record["peak_memory_bytes"].get<int64_t>(), 0);
}

// --- Crash and signal tests: training in a child process -------------------------------------

// What the child trains: corpus, run directory, steps and checkpoint interval.
struct ChildRun {
  std::string corpus, run_dir;
  int64_t steps = 100000, checkpoint_every = 1;
};

TrainerConfig child_config(const ChildRun& run) {
  TrainerConfig config = config_for(run.run_dir, run.steps);
  config.schedule = "constant";  // so the parent can finish the run with other `steps`
  config.checkpoint_every = run.checkpoint_every;
  config.keep_checkpoints = 3;
  return config;
}

// Starts this binary running TrainerChild.DISABLED_Train for `run`; output goes to run_dir/child.log.
pid_t spawn_training_child(const ChildRun& run) {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  exe[n] = '\0';
  std::vector<std::string> args = {exe, "--gtest_filter=TrainerChild.DISABLED_Train",
                                   "--gtest_also_run_disabled_tests"};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.push_back("HALO_TRAINER_CHILD_CORPUS=" + run.corpus);
  env.push_back("HALO_TRAINER_CHILD_RUN_DIR=" + run.run_dir);
  env.push_back(cat("HALO_TRAINER_CHILD_STEPS=", run.steps));
  env.push_back(cat("HALO_TRAINER_CHILD_CHECKPOINT_EVERY=", run.checkpoint_every));
  auto pointers = [](std::vector<std::string>& strings) {
    std::vector<char*> p;
    for (auto& s : strings) p.push_back(s.data());
    p.push_back(nullptr);
    return p;
  };
  std::vector<char*> argv = pointers(args), envp = pointers(env);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log = run.run_dir + "/child.log";
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe, &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("posix_spawn failed");
  return pid;
}

// Waits (up to 60 s) until `ready` holds or the child has exited; true when `ready` held.
bool wait_until(pid_t pid, const std::function<bool()>& ready) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

// Complete lines in a file that another process may be appending to.
int64_t complete_lines(const std::string& path) {
  if (!path_exists(path)) return 0;
  const std::string text = read_file(path);
  return std::count(text.begin(), text.end(), '\n');
}

int64_t newest_checkpoint(const std::string& run_dir) {
  const auto steps = checkpoint_steps(run_dir);
  return steps.empty() ? 0 : steps.back();
}

// Every step-* directory loads completely, with the step its name says and finite weights.
void expect_checkpoints_complete(const std::string& run_dir) {
  for (const auto& location : list_checkpoints(run_dir + "/checkpoints")) {
    try {
      const TrainingCheckpoint c = load_training_checkpoint(location.path);
      EXPECT_EQ(c.state.step, location.step);
      ASSERT_EQ(c.trainable.size(), 3u) << location.path;
      EXPECT_EQ(c.trainable.at("embedding").sizes(), at::IntArrayRef({kVocab, kDim}));
      EXPECT_EQ(c.optimizer.size(), 6u) << location.path;
      EXPECT_EQ(c.rng.count("cpu"), 1u) << location.path;
      for (const auto& [name, t] : c.trainable) EXPECT_TRUE(at::isfinite(t).all().item<bool>()) << location.path;
    } catch (const Error& e) {
      ADD_FAILURE() << "torn checkpoint: " << e.what();
    }
  }
}

// The child's side: trains what the environment says and records how run() ended.
TEST(TrainerChild, DISABLED_Train) {
  const char* corpus = std::getenv("HALO_TRAINER_CHILD_CORPUS");
  if (corpus == nullptr) GTEST_SKIP() << "only run by the crash and signal tests";
  at::set_num_threads(1);
  log::set_level(log::Level::warn);
  ChildRun run{corpus, std::getenv("HALO_TRAINER_CHILD_RUN_DIR"), std::atoll(std::getenv("HALO_TRAINER_CHILD_STEPS")),
               std::atoll(std::getenv("HALO_TRAINER_CHILD_CHECKPOINT_EVERY"))};
  const Trained t = train(run.corpus, child_config(run));
  write_text(run.run_dir + "/child-result.json",
             nlohmann::json{{"stop_signal", t.result.stop_signal}, {"steps_done", t.result.steps_done}}.dump());
}

TEST_F(TrainerTest, CheckpointsSurviveKillNineAndTheRunResumesExactly) {
  ChildRun run{make_corpus(), make_temp_dir()};
  const int delays_ms[] = {0, 1, 3, 7, 11, 29};
  for (int delay : delays_ms) {
    const int64_t start = newest_checkpoint(run.run_dir);
    const pid_t pid = spawn_training_child(run);
    const bool training = wait_until(pid, [&] { return newest_checkpoint(run.run_dir) >= start + 2; });
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(training && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child did not train until killed:\n"
        << read_file(run.run_dir + "/child.log");
    expect_checkpoints_complete(run.run_dir);
  }
  // Finish in this process a few steps past the newest checkpoint, and compare with a run that
  // was never interrupted.
  const int64_t steps = newest_checkpoint(run.run_dir) + 3;
  ASSERT_GE(steps, 2 * static_cast<int64_t>(std::size(delays_ms)) + 3);  // each child saved two or more
  run.steps = steps;
  const Trained resumed = train(run.corpus, child_config(run));
  EXPECT_EQ(resumed.result.steps_done, steps);
  ChildRun fresh = run;
  fresh.run_dir = make_temp_dir();
  const Trained reference = train(run.corpus, child_config(fresh));
  expect_bitwise_equal(resumed.weights, reference.weights);
  EXPECT_EQ(metric_steps(run.run_dir), one_to(steps));
  for (const auto& name : list_directory(run.run_dir + "/checkpoints")) {
    EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  }
}

TEST_F(TrainerTest, SigtermEndsTrainingWithACheckpointOfTheLastStep) {
  ChildRun run{make_corpus(), make_temp_dir()};
  run.checkpoint_every = 0;
  const pid_t pid = spawn_training_child(run);
  const bool training = wait_until(pid, [&] { return complete_lines(run.run_dir + "/metrics.jsonl") >= 3; });
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(training && WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << "\n"
                                                                         << read_file(run.run_dir + "/child.log");
  const auto result = nlohmann::json::parse(read_file(run.run_dir + "/child-result.json"));
  EXPECT_EQ(result["stop_signal"].get<int>(), SIGTERM);
  const int64_t steps_done = result["steps_done"].get<int64_t>();
  EXPECT_GE(steps_done, 3);
  EXPECT_EQ(checkpoint_steps(run.run_dir), std::vector<int64_t>{steps_done});
  EXPECT_EQ(metric_steps(run.run_dir), one_to(steps_done));
  expect_checkpoints_complete(run.run_dir);
}

}  // namespace
}  // namespace halo
