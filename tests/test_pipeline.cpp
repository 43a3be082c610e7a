// The HALO pipeline end to end on the tiny fixture: every stage runs from one experiment file,
// lowers its loss within a few steps, writes a loadable model and DONE; stage 1 brings the
// student mixers closer to the teacher's than stage 0; finished stages are skipped on a rerun;
// bad experiment files fail naming the key.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <iostream>
#include <sstream>

#include "data/token_dataset.h"
#include "halo/causal_lm.h"
#include "halo/error.h"
#include "halo/experiment.h"
#include "halo/file_system.h"
#include "halo/hypenet_conversion.h"
#include "halo/model_directory.h"
#include "halo/tensor_io.h"
#include "halo/token_corpus.h"
#include "halo/tokenizer.h"
#include "halo/training_tasks.h"
#include "test_support.h"
#include "train/training_checkpoint.h"

namespace halo {
namespace {

using nlohmann::json;

// A byte-level token directory made from the first 200 KB of WikiText-2 valid.
struct TinyData {
  std::string dir, tokenizer, tokens, text;
};

TinyData make_data() {
  TinyData d;
  d.dir = test::make_temp_dir();
  d.tokenizer = test::write_byte_tokenizer(d.dir);
  d.text = d.dir + "/corpus.txt";
  test::write_text(d.text, read_file(test::shared_dir() + "/data/wikitext-2/valid.txt").substr(0, 200000));
  d.tokens = d.dir + "/tokens";
  auto tokenizer = load_tokenizer(d.tokenizer);
  TokenizeCorpusOptions options;
  options.inputs = {d.text};
  options.out_dir = d.tokens;
  options.documents.split = TextSplit::blank_line;
  options.append_eos = false;
  options.tokenizer = fingerprint_tokenizer(d.tokenizer);
  tokenize_corpus(*tokenizer, options);
  return d;
}

std::string experiment_yaml(const TinyData& d, const std::string& body) {
  const std::string path = d.dir + "/experiment.yaml";
  test::write_text(path,
                   "run_dir: " + d.dir + "/run\ndevice: cpu\ndtype: float32\ntokenizer: " + d.tokenizer + "\n" + body);
  return path;
}

std::vector<double> losses(const std::string& metrics) {
  std::vector<double> out;
  std::istringstream lines(read_file(metrics));
  for (std::string line; std::getline(lines, line);) {
    const json j = json::parse(line);
    if (j["loss"].is_number()) out.push_back(j["loss"].get<double>());
  }
  return out;
}

void expect_loss_falls(const std::string& metrics) {
  const std::vector<double> l = losses(metrics);
  ASSERT_GE(l.size(), 6u) << metrics;
  const double first = (l[0] + l[1] + l[2]) / 3, last = (l[l.size() - 1] + l[l.size() - 2] + l[l.size() - 3]) / 3;
  EXPECT_LT(last, first) << metrics;
}

TEST(Pipeline, EveryStageRunsLowersItsLossAndResumes) {
  const TinyData d = make_data();
  const std::string data = "  data: {tokens: " + d.tokens + ", seq_len: 32, batch_size: 4}\n";
  const std::string path = experiment_yaml(
      d, "teacher: " + test::fixture("qwen3-tiny") +
             "\n"
             "align:\n" +
             data +
             "  train: {steps: 12, lr: 3.0e-3, warmup_steps: 2, checkpoint_every: 6}\n"
             "select:\n  criterion: halo\n"
             "  niah: {length: 512, samples: 1, depths: [0.5], filler: " +
             d.text +
             "}\n"
             "  commonsense: {text: " +
             d.text +
             ", tokens: 256}\n"
             "distill:\n" +
             data +
             "  train: {steps: 12, lr: 3.0e-3, warmup_steps: 2}\n"
             "finetune:\n  data: {tokens: " +
             d.tokens +
             ", seq_len: 64, batch_size: 2}\n"
             "  train: {steps: 8, lr: 1.0e-3, schedule: constant}\n  recompute_activations: true\n"
             "tune: {text: " +
             d.text +
             ", grid: [100, 1000], context_factors: [16], niah_samples: 1, ppl_tokens: 600}\n"
             "report: {text: " +
             d.text + ", context_factors: [16], ppl_tokens: 600, ppl_tail: 64, filler: " + d.text +
             ", niah_samples: 1, decode_tokens: 4, decode_contexts: [64],"
             " commonsense: {task: " +
             test::shared_dir() + "/data/piqa/valid.jsonl, labels: " + test::shared_dir() +
             "/data/piqa/valid-labels.lst, limit: 6}, compare: {stage 2: " + d.dir + "/run/distill/model}}\n");
  const Experiment x = load_experiment(path);
  EXPECT_NE(describe_plan(x).find("distill: 12 steps"), std::string::npos) << describe_plan(x);
  // Planned for 4 ranks: the batch is per rank.
  const std::string plan4 = describe_plan(x, 4);
  EXPECT_NE(plan4.find("distill: 12 steps x 1 x [4, 32] x 4 ranks"), std::string::npos) << plan4;
  ASSERT_EQ(run_experiment(x, "all"), 0);
  for (const char* stage : {"align", "select", "distill", "finetune", "tune", "report"}) {
    EXPECT_TRUE(path_exists(x.run_dir + "/" + stage + "/DONE")) << stage;
  }
  // tune chose one of its grid values and wrote it into the student the report compares.
  const json tuned = json::parse(read_file(x.run_dir + "/tune/hype_scaling.json"));
  const double a = tuned["best_a"].get<double>();
  EXPECT_TRUE(a == 100 || a == 1000) << a;
  EXPECT_EQ(*load_model_config(x.run_dir + "/tune/model").attn_logits_scaling_a, a);
  for (const char* stage : {"align", "distill", "finetune"})
    expect_loss_falls(x.run_dir + "/" + stage + "/metrics.jsonl");
  const json selection = json::parse(read_file(x.run_dir + "/select/selection.json"));
  ASSERT_EQ(selection["attention_layers"].size(), 1u);  // floor(4 / 4)
  EXPECT_TRUE(path_exists(x.run_dir + "/select/selection.png"));
  CausalLM student = load_causal_lm(x.run_dir + "/finetune/model", at::kFloat, at::kCPU);
  EXPECT_EQ(student.config().mixer_types[selection["attention_layers"][0].get<int64_t>()], MixerType::attention);
  EXPECT_NE(read_file(x.run_dir + "/report/report.md").find("| NIAH @ 512 |"), std::string::npos);
  // The report measures every model (teacher, student, the compared one) the same way.
  const json report = json::parse(read_file(x.run_dir + "/report/report.json"));
  for (const char* model : {"teacher", "student", "stage 2"}) {
    ASSERT_TRUE(report.contains(model)) << model;
    const json& m = report[model];
    EXPECT_GT(m["ppl"]["512"].get<double>(), 1.0) << model;
    EXPECT_GT(m["ppl_tail"]["512"].get<double>(), 1.0) << model;
    EXPECT_EQ(m["mc"]["items"].get<int64_t>(), 6) << model;
    EXPECT_GT(m["decode"]["64"]["ms_per_token"].get<double>(), 0.0) << model;
    EXPECT_TRUE(m["niah"].contains("512")) << model;
  }
  EXPECT_NE(report["student"]["ppl"]["512"], report["stage 2"]["ppl"]["512"]);  // finetune and tune changed it
  EXPECT_TRUE(path_exists(x.run_dir + "/report/niah.png"));
  EXPECT_TRUE(path_exists(x.run_dir + "/report/ppl.png"));

  // Stage 1 moved the student mixers toward the teacher's outputs.
  CausalLM teacher = load_causal_lm(test::fixture("qwen3-tiny"), at::kFloat, at::kCPU);
  CausalLM stage0 = convert_to_hypenet(teacher, hypenet_config(teacher.config(), {}), 0);
  CausalLM stage1 = load_causal_lm(x.run_dir + "/align/model", at::kFloat, at::kCPU);
  TokenDataset dataset(d.tokens);
  TokenBatcher batcher(dataset, {4, 32, 99, 0, 1});
  const at::Tensor batch = batcher.next();
  const double before = AlignmentTask(teacher, stage0).loss(batch, nullptr).item<double>();
  const double after = AlignmentTask(teacher, stage1).loss(batch, nullptr).item<double>();
  EXPECT_LT(after, before);

  // A rerun skips every finished stage (DONE files untouched).
  const std::string done = read_file(x.run_dir + "/distill/DONE");
  ASSERT_EQ(run_experiment(x, "all"), 0);
  EXPECT_EQ(read_file(x.run_dir + "/distill/DONE"), done);
}

// The position-encoding ablations (all-RoPE, all-NoPE) through --set overrides of one file, and
// the refusal to distill onto a stage 1 aligned with the other RNN position encoding.
TEST(Pipeline, PositionEncodingVariantsReachTheStudent) {
  const TinyData d = make_data();
  const std::string data = "  data: {tokens: " + d.tokens + ", seq_len: 32, batch_size: 2}\n";
  const std::string path =
      experiment_yaml(d, "teacher: " + test::fixture("qwen3-tiny") + "\nalign:\n" + data +
                             "  train: {steps: 2, lr: 1.0e-3}\nselect: {criterion: even}\ndistill:\n" + data +
                             "  train: {steps: 2, lr: 1.0e-3}\n");
  for (const char* encoding : {"rope", "nope"}) {
    const Experiment x =
        load_experiment(path, {cat("run_dir=", d.dir, "/run-", encoding), cat("position_encoding=", encoding)});
    ASSERT_EQ(run_experiment(x, "all"), 0) << encoding;
    const ModelConfig student = load_model_config(x.run_dir + "/distill/model");
    EXPECT_EQ(student.attn_use_rope, std::string(encoding) == "rope") << encoding;
    EXPECT_EQ(student.lightning_use_rope, std::string(encoding) == "rope") << encoding;
    EXPECT_EQ(load_model_config(x.run_dir + "/align/model").lightning_use_rope, std::string(encoding) == "rope");
  }
  // The all-RoPE run's stage 1 (RoPE in the RNN layers) cannot start an all-NoPE stage 2.
  const Experiment mixed =
      load_experiment(path, {cat("run_dir=", d.dir, "/run-rope"), "position_encoding=nope", "distill.train.steps=3"});
  remove_tree(mixed.run_dir + "/distill");
  try {
    run_experiment(mixed, "distill");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("position_encoding"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("align"), std::string::npos) << e.what();
  }
}

TEST(Experiment, OverridesReplaceAddAndDropKeys) {
  const TinyData d = make_data();
  const std::string data = "  data: {tokens: " + d.tokens + ", seq_len: 32, batch_size: 4}\n";
  const std::string path = experiment_yaml(d, "teacher: " + test::fixture("qwen3-tiny") + "\nalign:\n" + data +
                                                  "  train: {steps: 3, lr: 1.0e-3}\nselect: {criterion: halo,"
                                                  " niah: {filler: x.txt}, commonsense: {text: x.txt}}\n"
                                                  "report: {text: x.txt}\n");
  const Experiment x =
      load_experiment(path, {"align.train.steps=7", "select.attention_layers=[0, 2]", "report=null",
                             "finetune.data.tokens=" + d.tokens, "finetune.data.seq_len=64",
                             "finetune.data.batch_size=1", "finetune.train={steps: 2, lr: 1.0e-5}", "seed=5"});
  EXPECT_EQ(x.align.train.steps, 7);
  EXPECT_EQ(x.select.attention_layers, (std::vector<int64_t>{0, 2}));
  EXPECT_FALSE(x.report.enabled);
  EXPECT_TRUE(x.finetune.enabled);
  EXPECT_EQ(x.finetune.data.seq_len, 64);
  EXPECT_EQ(x.seed, 5u);
  EXPECT_EQ(x.position_encoding, PositionEncoding::hype);
  auto expect_error = [&](const std::string& o, const std::string& needle) {
    try {
      load_experiment(path, {o});
      ADD_FAILURE() << "no error for " << o;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("align.train.steps", "expected KEY=VALUE");
  expect_error("=3", "expected KEY=VALUE");
  expect_error("align..steps=3", "empty key");
  expect_error("run_dir.x=3", "not a mapping");
  expect_error("align.train.steps=[1", "not valid YAML");
  expect_error("align.train.stepz=3", "align.train.stepz");
  expect_error("position_encoding=alibi", "position_encoding");
  expect_error("report.compare={teacher: x}", "report.compare");
  expect_error("report.compare=[x]", "report.compare");
  expect_error("report.ppl_tail=-1", "report.ppl_tail");
  expect_error("report.niah_depths=[1.5]", "report.niah_depths");
  expect_error("report.decode_contexts=[1]", "report.decode_contexts");
  expect_error("report.commonsense={labels: x}", "report.commonsense.task");
}

// Two processes on one run directory: the second fails at once naming the first's pid.
TEST(Pipeline, ASecondRunOnTheSameDirectoryIsRefused) {
  const TinyData d = make_data();
  const std::string path =
      experiment_yaml(d, "teacher: " + test::fixture("qwen3-tiny") + "\nselect: {criterion: even}\n");
  const Experiment x = load_experiment(path);
  create_directories(x.run_dir);
  const int fd = ::open((x.run_dir + "/.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  ASSERT_EQ(::pwrite(fd, "4242", 4, 0), 4);
  try {
    run_experiment(x, "all");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another halo run (pid 4242)"), std::string::npos) << e.what();
  }
  ::close(fd);  // released: the run goes ahead
  EXPECT_EQ(run_experiment(x, "all"), 0);
  EXPECT_TRUE(path_exists(x.run_dir + "/select/DONE"));
}

// Starts the halo CLI with `args` and the extra environment `env` ("NAME=VALUE"), its output
// appended to `log`; returns its pid.
pid_t spawn_halo(const std::vector<std::string>& args, const std::string& log,
                 const std::vector<std::string>& env = {}) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    for (const std::string& e : env) ::putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> argv{const_cast<char*>(HALO_CLI_PATH)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(HALO_CLI_PATH, argv.data());
    ::_exit(127);
  }
  return pid;
}

int exit_status_of(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A TCP port nobody listens on now (the kernel's choice for port 0).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t length = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// `world` halo processes with the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT), on a free port of this machine; a stuck collective fails after two
// minutes instead of hours.
std::vector<pid_t> spawn_ranks(const std::vector<std::string>& args, const std::string& log, int world) {
  const std::string port = std::to_string(free_port());
  std::vector<pid_t> ranks;
  for (int rank = 0; rank < world; ++rank) {
    ranks.push_back(spawn_halo(args, log,
                               {cat("RANK=", rank), cat("WORLD_SIZE=", world), cat("LOCAL_RANK=", rank),
                                "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port, "HALO_DISTRIBUTED_TIMEOUT_S=120"}));
  }
  return ranks;
}

// Held by each multi-rank test for its whole run: ctest runs tests side by side, and two jobs
// whose stores met on one port (TCPStore may share a port between listeners) would join each
// other's ranks. An flock on one file serializes them across test processes.
class RankTestLock {
 public:
  RankTestLock() : fd_(::open("/tmp/halo-rank-tests.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~RankTestLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  RankTestLock(const RankTestLock&) = delete;
  RankTestLock& operator=(const RankTestLock&) = delete;

 private:
  int fd_;
};

// ||a - b|| / ||a|| over all tensors of two state maps with the same names (float64); a missing
// name fails the test.
double relative_difference(const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double difference = 0, norm = 0;
  for (const auto& [name, t] : a) {
    if (b.count(name) == 0) {
      ADD_FAILURE() << "no tensor " << name;
      return INFINITY;
    }
    difference += (t.to(at::kDouble) - b.at(name).to(at::kDouble)).pow(2).sum().item<double>();
    norm += t.to(at::kDouble).pow(2).sum().item<double>();
  }
  return std::sqrt(difference / norm);
}

// Two ranks with the environment torchrun sets (env:// rendezvous, Gloo), B per rank, end every
// training stage (stage 3 with activation recomputation) with the weights one process gets from
// the same global batch 2B: the data is
// sharded so that both see the same windows, gradients are averaged, and rank 0 alone writes.
// AdamW's eps is 1e-3 here: with 1e-8 a gradient element that cancels to ~1e-12 moves its weight
// by +-lr whichever way the last rounding went, so the order of the sums (per rank, then across
// ranks) would decide updates; with a larger eps the update is smooth in the gradient.
TEST(Pipeline, TwoRanksTrainLikeOneWithTheSameGlobalBatch) {
  const RankTestLock serialized;
  const TinyData d = make_data();
  auto body = [&](int64_t batch) {
    const std::string data = cat("  data: {tokens: ", d.tokens, ", seq_len: 32, batch_size: ", batch, "}\n");
    return "teacher: " + test::fixture("qwen3-tiny") + "\nalign:\n" + data +
           "  train: {steps: 4, lr: 1.0e-3, eps: 1.0e-3, checkpoint_every: 2}\nselect: {attention_layers: [1]}\n"
           "distill:\n" +
           data + "  train: {steps: 3, lr: 1.0e-3, eps: 1.0e-3}\nfinetune:\n" + data +
           "  train: {steps: 3, lr: 1.0e-4, eps: 1.0e-3}\n  recompute_activations: true\n";
  };
  const std::string one = experiment_yaml(d, body(8));
  const std::string log = d.dir + "/ranks.log";
  ASSERT_EQ(exit_status_of(spawn_halo({"run", one, "--set", "run_dir=" + d.dir + "/one"}, log)), 0) << read_file(log);
  const std::string two = d.dir + "/two.yaml";
  test::write_text(two, read_file(experiment_yaml(d, body(4))));
  // Without ZeRO, with ZeRO-1 (AdamW state sharded over the ranks), and with ZeRO-2 (gradients
  // too) over two micro-batches of 2 (the reduction overlaps only the last one's backward).
  for (const std::string zero : {"0", "1", "2"}) {
    const std::string run = d.dir + "/two-zero" + zero;
    std::vector<std::string> args{"run", two, "--set", "run_dir=" + run};
    for (const char* stage : {"align", "distill", "finetune"}) {
      args.insert(args.end(), {"--set", cat(stage, ".train.zero=", zero)});
      if (zero == "2") {
        args.insert(args.end(),
                    {"--set", cat(stage, ".train.grad_accum=2"), "--set", cat(stage, ".data.batch_size=2")});
      }
    }
    for (pid_t pid : spawn_ranks(args, log, 2)) EXPECT_EQ(exit_status_of(pid), 0) << read_file(log);
    auto expect_close = [&](const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b,
                            const std::string& what) { EXPECT_LT(relative_difference(a, b), 1e-6) << what; };
    for (const char* stage : {"align", "distill", "finetune"}) {
      expect_close(load_tensors(d.dir + "/one/" + stage + "/model"), load_tensors(run + "/" + stage + "/model"),
                   cat("zero ", zero, " ", stage));
      // Rank 0 alone wrote the stage, with the global token count.
      const auto done = json::parse(read_file(run + "/" + stage + "/DONE"));
      EXPECT_EQ(done["tokens"], json::parse(read_file(d.dir + "/one/" + stage + "/DONE"))["tokens"]) << stage;
    }
    // The checkpoint holds the whole optimizer state, gathered from both ranks under ZeRO-1.
    expect_close(load_tensors(d.dir + "/one/align/checkpoints/step-00000004/optimizer.safetensors"),
                 load_tensors(run + "/align/checkpoints/step-00000004/optimizer.safetensors"),
                 cat("zero ", zero, " optimizer state"));
    // The logged loss is the global one.
    const std::vector<double> a = losses(d.dir + "/one/distill/metrics.jsonl"),
                              b = losses(run + "/distill/metrics.jsonl");
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6 * std::abs(a[i])) << "step " << i + 1;
  }
}

// torchrun with one rank (the whole data-parallel path: hooks, buckets, Gloo, or NCCL on a GPU
// where built with it) trains as one plain process, without ZeRO and with ZeRO-2; on the GPU
// when there is one.
TEST(Pipeline, OneRankUnderTorchrunTrainsLikeOneProcess) {
  const std::string device = at::hasCUDA() && at::getNumGPUs() > 0 ? "cuda" : "cpu";
  const RankTestLock serialized;
  const TinyData d = make_data();
  const std::string data = cat("  data: {tokens: ", d.tokens, ", seq_len: 32, batch_size: 4}\n");
  const std::string yaml = experiment_yaml(
      d, "teacher: " + test::fixture("qwen3-tiny") + "\nalign:\n" + data +
             "  train: {steps: 3, lr: 1.0e-3, eps: 1.0e-3}\nselect: {attention_layers: [1]}\ndistill:\n" + data +
             "  train: {steps: 3, lr: 1.0e-3, eps: 1.0e-3, grad_accum: 2}\n");
  const std::string log = d.dir + "/cuda.log";
  auto args = [&](const std::string& run, const std::string& zero) {
    return std::vector<std::string>{"run",      yaml,
                                    "--device", device,
                                    "--set",    "run_dir=" + run,
                                    "--set",    "align.train.zero=" + zero,
                                    "--set",    "distill.train.zero=" + zero};
  };
  ASSERT_EQ(exit_status_of(spawn_halo(args(d.dir + "/plain", "0"), log)), 0) << read_file(log);
  for (const std::string zero : {"0", "2"}) {
    const std::string run = d.dir + "/torchrun-zero" + zero;
    for (pid_t pid : spawn_ranks(args(run, zero), log, 1)) ASSERT_EQ(exit_status_of(pid), 0) << read_file(log);
    EXPECT_NE(read_file(log).find("torchrun: 1 rank;"), std::string::npos) << read_file(log);
    const std::string text = read_file(log);
    std::cout << text.substr(text.find("torchrun: 1 rank;"),
                             text.find('\n', text.find("torchrun: 1 rank;")) - text.find("torchrun: 1 rank;"))
              << "\n";
    for (const char* stage : {"align", "distill"}) {
      EXPECT_LT(relative_difference(load_tensors(d.dir + "/plain/" + stage + "/model"),
                                    load_tensors(run + "/" + stage + "/model")),
                1e-6)
          << "zero " << zero << " " << stage;
    }
  }
}

// Two ranks with ZeRO-1 resume bit-exactly on the same world size: a distill stopped after 2 of
// its steps and resumed to 4 (constant lr, so the schedule does not depend on the total) ends
// with the very weights of 4 steps in one go (the data cursor of each rank, the RNG states and
// the gathered optimizer state all come back).
TEST(Pipeline, TwoRanksResumeBitExactly) {
  const RankTestLock serialized;
  const TinyData d = make_data();
  const std::string data = "  data: {tokens: " + d.tokens + ", seq_len: 32, batch_size: 2}\n";
  const std::string path = experiment_yaml(
      d, "teacher: " + test::fixture("qwen3-tiny") + "\nalign:\n" + data +
             "  train: {steps: 2, lr: 1.0e-3, zero: 1}\nselect: {attention_layers: [1]}\ndistill:\n" + data +
             "  train: {steps: 4, lr: 1.0e-3, schedule: constant, warmup_steps: 0, checkpoint_every: 2, zero: 1}\n");
  const std::string log = d.dir + "/resume.log";
  auto run = [&](const std::string& dir, std::vector<std::string> extra) {
    std::vector<std::string> args{"run", path, "--set", "run_dir=" + dir};
    args.insert(args.end(), extra.begin(), extra.end());
    for (pid_t pid : spawn_ranks(args, log, 2)) ASSERT_EQ(exit_status_of(pid), 0) << read_file(log);
  };
  run(d.dir + "/straight", {});
  run(d.dir + "/resumed", {"--set", "distill.train.steps=2"});
  run(d.dir + "/resumed", {"--stage", "distill"});
  EXPECT_NE(read_file(log).find("distill: resuming from"), std::string::npos) << read_file(log);
  EXPECT_NE(read_file(log).find("(step 2 of 4)"), std::string::npos) << read_file(log);
  const auto a = load_tensors(d.dir + "/straight/distill/model"), b = load_tensors(d.dir + "/resumed/distill/model");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(at::equal(t, b.at(name))) << name;
  EXPECT_EQ(losses(d.dir + "/straight/distill/metrics.jsonl"), losses(d.dir + "/resumed/distill/metrics.jsonl"));
}

// select, tune and report under torchrun: each rank scores its share of the layers (of the
// grid of a; of the windows, prompts and items); the selection and every layer's numbers, tune's
// curve and choice, and the report's numbers are those a single process makes from the same
// models.
TEST(Pipeline, TwoRanksSplitSelectTuneAndReport) {
  const RankTestLock serialized;
  const TinyData d = make_data();
  const std::string data = "  data: {tokens: " + d.tokens + ", seq_len: 32, batch_size: 4}\n";
  const std::string path = experiment_yaml(
      d, "teacher: " + test::fixture("qwen3-tiny") + "\nalign:\n" + data +
             "  train: {steps: 3, lr: 1.0e-3}\nselect:\n  criterion: halo\n  keep: 2\n"
             "  niah: {length: 512, samples: 2, depths: [0.5], filler: " +
             d.text + "}\n  commonsense: {text: " + d.text + ", tokens: 256}\ndistill:\n" + data +
             "  train: {steps: 2, lr: 1.0e-3}\ntune: {text: " + d.text +
             ", grid: [100, 1000, 10000], context_factors: [16], niah_samples: 1, ppl_tokens: 600}\nreport: {text: " +
             d.text + ", contexts: [64, 128], ppl_tokens: 600, ppl_tail: 16, filler: " + d.text +
             ", niah_lengths: [512, 768], niah_depths: [0.3, 0.7], niah_samples: 3, decode_tokens: 4, commonsense: "
             "{task: " +
             test::shared_dir() + "/data/piqa/valid.jsonl, labels: " + test::shared_dir() +
             "/data/piqa/valid-labels.lst, limit: 7}}\n");
  const std::string log = d.dir + "/split.log";
  ASSERT_EQ(exit_status_of(spawn_halo({"run", path, "--set", "run_dir=" + d.dir + "/one"}, log)), 0) << read_file(log);
  for (const char* file : {"align/DONE", "align/model/config.json", "align/model/model.safetensors", "distill/DONE",
                           "distill/model/config.json", "distill/model/model.safetensors"}) {
    create_directories(parent_directory(d.dir + "/two/" + file));
    copy_file_atomic(d.dir + "/one/" + file, d.dir + "/two/" + file);
  }
  for (const char* stage : {"select", "tune", "report"}) {
    for (pid_t pid : spawn_ranks({"run", path, "--set", "run_dir=" + d.dir + "/two", "--stage", stage}, log, 2)) {
      EXPECT_EQ(exit_status_of(pid), 0) << read_file(log);
    }
  }
  const json one = json::parse(read_file(d.dir + "/one/select/selection.json"));
  const json two = json::parse(read_file(d.dir + "/two/select/selection.json"));
  for (const char* key : {"attention_layers", "recall", "commonsense", "scores"}) {
    EXPECT_EQ(one[key], two[key]) << key;
  }
  EXPECT_EQ(one["recall"].size(), 4u);
  const json tune1 = json::parse(read_file(d.dir + "/one/tune/hype_scaling.json"));
  const json tune2 = json::parse(read_file(d.dir + "/two/tune/hype_scaling.json"));
  EXPECT_EQ(tune1["points"], tune2["points"]);
  EXPECT_EQ(tune1["best_a"], tune2["best_a"]);
  EXPECT_EQ(tune1["points"].size(), 3u);
  EXPECT_EQ(load_model_config(d.dir + "/two/tune/model").attn_logits_scaling_a,
            std::optional<double>(tune1["best_a"].get<double>()));
  // The report: each rank scored every other perplexity window, NIAH prompt and PIQA item.
  const json report1 = json::parse(read_file(d.dir + "/one/report/report.json"));
  const json report2 = json::parse(read_file(d.dir + "/two/report/report.json"));
  for (const char* model : {"teacher", "student"}) {
    const json& a = report1[model];
    const json& b = report2[model];
    for (const char* key : {"ppl", "ppl_tail", "ppl_tail_same_tokens"}) {
      ASSERT_EQ(a[key].size(), 2u) << model << " " << key;
      for (const auto& [context, value] : a[key].items()) {
        EXPECT_NEAR(value.get<double>(), b[key][context].get<double>(), 1e-9 * value.get<double>())
            << model << " " << key << " " << context;
      }
    }
    // The same tokens at the longest context are its own last-16 tokens; at 64 they score worse
    // or better, but not the same (other context).
    EXPECT_NEAR(a["ppl_tail_same_tokens"]["128"].get<double>(), a["ppl_tail"]["128"].get<double>(),
                1e-9 * a["ppl_tail"]["128"].get<double>())
        << model;
    EXPECT_NE(a["ppl_tail_same_tokens"]["64"], a["ppl_tail_same_tokens"]["128"]) << model;
    EXPECT_EQ(a["niah"], b["niah"]) << model;
    EXPECT_EQ(a["niah"].size(), 2u) << model;
    EXPECT_EQ(a["mc"], b["mc"]) << model;
    EXPECT_EQ(a["mc"]["items"], 7) << model;
  }
}

// A rank killed mid-stage stops the other within a bounded time with a one-line error; the
// checkpoint rank 0 wrote resumes on one rank, and that one's on two again.
TEST(Pipeline, AKilledRankStopsTheRunAndCheckpointsMoveBetweenWorldSizes) {
  const RankTestLock serialized;
  const TinyData d = make_data();
  const std::string path = experiment_yaml(
      d, "teacher: " + test::fixture("qwen3-tiny") + "\nalign:\n  data: {tokens: " + d.tokens +
             ", seq_len: 32, batch_size: 4}\n  train: {steps: 1000000, lr: 1.0e-3, checkpoint_every: 2}\n");
  const std::string metrics = d.dir + "/run/align/metrics.jsonl";
  auto wait_for_steps = [&](size_t steps) {
    for (int i = 0; i < 1200 && !(path_exists(metrics) && losses(metrics).size() >= steps); ++i) ::usleep(100000);
    return path_exists(metrics) ? losses(metrics).size() : 0;
  };
  const std::string log = d.dir + "/ranks.log";
  const std::vector<pid_t> ranks = spawn_ranks({"run", path}, log, 2);
  ASSERT_GE(wait_for_steps(5), 5u) << read_file(log);
  ::kill(ranks[1], SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  const int status = exit_status_of(ranks[0]);
  exit_status_of(ranks[1]);
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, std::chrono::seconds(60));
  EXPECT_EQ(status, 1) << read_file(log);
  const std::string text = read_file(log);
  const size_t error = text.find("halo run: error: rank 0:");
  ASSERT_NE(error, std::string::npos) << text;
  EXPECT_NE(text.find("run the same command again", error), std::string::npos) << text;
  const int64_t saved = list_checkpoints(d.dir + "/run/align/checkpoints").back().step;
  EXPECT_GE(saved, 2);

  // One rank resumes rank 0's checkpoint; SIGTERM leaves a newer one.
  const std::string log1 = d.dir + "/one.log";
  const pid_t one = spawn_halo({"run", path}, log1);
  ASSERT_GE(wait_for_steps(static_cast<size_t>(saved) + 3), static_cast<size_t>(saved) + 3) << read_file(log1);
  ::kill(one, SIGTERM);
  EXPECT_EQ(exit_status_of(one), 128 + SIGTERM) << read_file(log1);
  EXPECT_NE(read_file(log1).find(cat("resuming from ", d.dir, "/run/align/checkpoints/", checkpoint_name(saved))),
            std::string::npos)
      << read_file(log1);
  const int64_t saved1 = list_checkpoints(d.dir + "/run/align/checkpoints").back().step;
  EXPECT_GT(saved1, saved);

  // Two ranks resume that one and finish the stage.
  const std::string log2 = d.dir + "/two.log";
  for (pid_t pid : spawn_ranks({"run", path, "--set", cat("align.train.steps=", saved1 + 2)}, log2, 2)) {
    EXPECT_EQ(exit_status_of(pid), 0) << read_file(log2);
  }
  EXPECT_NE(read_file(log2).find(checkpoint_name(saved1)), std::string::npos) << read_file(log2);
  EXPECT_TRUE(path_exists(d.dir + "/run/align/DONE"));
  EXPECT_EQ(losses(metrics).size(), static_cast<size_t>(saved1 + 2));
}

// `halo run` stopped by SIGTERM mid-stage saves a checkpoint and exits 143 (SIGINT: 130), as a
// shell reports a signal; the same command resumes the stage from that checkpoint.
TEST(Pipeline, SigtermStopsHaloRunWithExit143AndTheRunResumes) {
  const TinyData d = make_data();
  const std::string path =
      experiment_yaml(d, "teacher: " + test::fixture("qwen3-tiny") + "\nalign:\n  data: {tokens: " + d.tokens +
                             ", seq_len: 32, batch_size: 4}\n  train: {steps: 1000000, lr: 1.0e-3}\n");
  const std::string run_dir = d.dir + "/run", log = d.dir + "/halo.log";
  const pid_t pid = spawn_halo({"run", path}, log);
  const std::string metrics = run_dir + "/align/metrics.jsonl";
  for (int i = 0; i < 1200 && !(path_exists(metrics) && read_file(metrics).size() > 200); ++i) ::usleep(100000);
  ASSERT_TRUE(path_exists(metrics)) << read_file(log);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM) << read_file(log);
  const auto checkpoints = list_directory(run_dir + "/align/checkpoints");
  ASSERT_EQ(checkpoints.size(), 1u) << read_file(log);
  EXPECT_FALSE(path_exists(run_dir + "/align/DONE"));
  // Two steps past the checkpoint, the stage finishes.
  const int64_t step = std::stoll(checkpoints[0].substr(5));
  const pid_t resumed = spawn_halo({"run", path, "--set", "align.train.steps=" + std::to_string(step + 2)}, log);
  ::waitpid(resumed, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(log);
  EXPECT_NE(read_file(log).find("resuming from"), std::string::npos) << read_file(log);
  EXPECT_TRUE(path_exists(run_dir + "/align/DONE"));
}

TEST(Pipeline, PretrainMakesTheTeacherOfLaterStages) {
  const TinyData d = make_data();
  const std::string path = experiment_yaml(
      d,
      "pretrain:\n  model: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 4, num_attention_heads: 2,"
      " num_key_value_heads: 1, head_dim: 16}\n"
      "  data: {tokens: " +
          d.tokens +
          ", seq_len: 32, batch_size: 4}\n"
          "  train: {steps: 20, lr: 1.0e-2, warmup_steps: 2}\n"
          "align:\n  data: {tokens: " +
          d.tokens + ", seq_len: 32, batch_size: 4}\n  train: {steps: 4, lr: 1.0e-3}\n");
  const Experiment x = load_experiment(path);
  ASSERT_EQ(run_experiment(x, "all"), 0);
  expect_loss_falls(x.run_dir + "/pretrain/metrics.jsonl");
  const ModelConfig teacher = load_model_config(x.run_dir + "/pretrain/model");
  EXPECT_EQ(teacher.vocab_size, 256);
  EXPECT_TRUE(path_exists(x.run_dir + "/pretrain/model/tokenizer.json"));
  EXPECT_EQ(load_model_config(x.run_dir + "/align/model").num_hidden_layers, 4);
}

void expect_experiment_error(const TinyData& d, const std::string& body, const std::string& needle) {
  try {
    load_experiment(experiment_yaml(d, body));
    ADD_FAILURE() << "no error for " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("experiment.yaml"), std::string::npos) << e.what();
  }
}

TEST(Experiment, BadFilesNameTheKey) {
  const TinyData d = make_data();
  const std::string teacher = "teacher: " + test::fixture("qwen3-tiny") + "\n";
  const std::string data = "  data: {tokens: " + d.tokens + ", seq_len: 32, batch_size: 4}\n";
  expect_experiment_error(d, teacher + "align:\n" + data + "  train: {steps: 3, lr: 1.0e-3, lerning_rate: 1}\n",
                          "align.train.lerning_rate");
  expect_experiment_error(d, teacher + "align:\n" + data + "  train: {lr: 1.0e-3}\n", "align.train.steps");
  expect_experiment_error(d, teacher + "align:\n  train: {steps: 3, lr: 1.0e-3}\n", "align.data");
  expect_experiment_error(d, teacher + "align:\n" + data + "  train: {steps: many, lr: 1.0e-3}\n", "align.train.steps");
  expect_experiment_error(d, teacher + "align:\n" + data + "  train: {steps: 3, lr: 1.0e-3, schedule: linear}\n",
                          "schedule");
  expect_experiment_error(d, teacher + "bogus: 1\n", "unknown key 'bogus'");
  expect_experiment_error(d, "align:\n" + data + "  train: {steps: 3, lr: 1.0e-3}\n", "teacher");
  expect_experiment_error(d, teacher + "align: [1, 2\n", "not valid YAML");
  expect_experiment_error(d, teacher + "select: {criterion: halo}\n", "select needs");
  expect_experiment_error(d, teacher + "select: {criterion: even, keep: -1}\n", "select.keep");
  expect_experiment_error(d, teacher + "report: {text: x.txt, decode_tokens: -1}\n", "report.decode_tokens");
  expect_experiment_error(d, teacher + "report: {text: x.txt, context_factors: [0]}\n", "report.context_factors");
  expect_experiment_error(d, teacher + "tune: {text: x.txt, grid: [500, 1]}\n", "tune.grid");
  expect_experiment_error(d, teacher + "tune: {text: x.txt, niah_tolerance: 2}\n", "tune.niah_tolerance");
  expect_experiment_error(d, teacher + "activation_checkpointing: true\n", "recompute_activations");
  const std::string pretrain =
      "tokenizer: " + d.tokenizer + "\npretrain:\n" + data +
      "  train: {steps: 3, lr: 1.0e-3}\n  model: {intermediate_size: 64, num_attention_heads: 2, ";
  expect_experiment_error(d, pretrain + "hidden_size: 32, num_hidden_layers: 1000000000000}\n", "num_hidden_layers");
  expect_experiment_error(d, pretrain + "num_hidden_layers: 2, hidden_size: 1000000000}\n", "hidden_size");
  expect_experiment_error(d, pretrain + "hidden_size: 32, num_hidden_layers: 2, rope_theta: 0}\n", "rope_theta");
  expect_experiment_error(d, pretrain + "hidden_size: 32, num_hidden_layers: 2}\n  init_std: -1\n",
                          "pretrain.init_std");
}

// Values a stage would trip over hours in, and files that are not there, fail before the first
// stage starts and on --dry-run (describe_plan), in one line naming the file and the key.
TEST(Experiment, InputsAreCheckedBeforeTheFirstStage) {
  const TinyData d = make_data();
  const std::string teacher = "teacher: " + test::fixture("qwen3-tiny") + "\n";
  const std::string data = "  data: {tokens: " + d.tokens + ", seq_len: 32, batch_size: 4}\n";
  const std::string train = "  train: {steps: 3, lr: 1.0e-3}\n";
  expect_experiment_error(d, teacher + "align:\n" + data + "  train: {steps: 3, lr: -0.1}\n", "align.train.lr");
  expect_experiment_error(d, teacher + "align:\n" + data + "  train: {steps: 3, lr: 1.0e-3, min_lr: 0.1}\n",
                          "align.train.min_lr");
  expect_experiment_error(d, teacher + "align:\n" + data + "  train: {steps: 3, lr: 1.0e-3, beta2: 1}\n",
                          "align.train.beta2");
  expect_experiment_error(
      d, teacher + "align:\n  data: {tokens: " + d.tokens + ", seq_len: 512, batch_size: 1000000000}\n" + train,
      "align.data.batch_size");
  expect_experiment_error(d, teacher + "align:\n" + data + train + "  loss_chunk: 0\n", "align.loss_chunk");
  expect_experiment_error(d, teacher + "select: {criterion: best}\n", "select.criterion");
  expect_experiment_error(d, teacher + "report: {text: x.txt, niah_depths: [1.5]}\n", "report.niah_depths");

  auto expect_plan_error = [&](const std::string& body, const std::vector<std::string>& needles,
                               const std::vector<std::string>& overrides = {}) {
    const Experiment x = load_experiment(experiment_yaml(d, body), overrides);
    for (auto check :
         {+[](const Experiment& e) { describe_plan(e); }, +[](const Experiment& e) { run_experiment(e, "all"); }}) {
      try {
        check(x);
        ADD_FAILURE() << "no error for " << needles.front();
      } catch (const Error& e) {
        const std::string what = e.what();
        for (const std::string& needle : needles) EXPECT_NE(what.find(needle), std::string::npos) << what;
        EXPECT_NE(what.find("experiment.yaml"), std::string::npos) << what;
        EXPECT_EQ(what.find('\n'), std::string::npos) << what;
        EXPECT_EQ(e.exit_code(), kExitBadInput) << what;
      }
    }
    EXPECT_FALSE(path_exists(d.dir + "/run/align")) << "a stage started";
  };
  expect_plan_error(teacher + "align:\n" + data + train, {"device", "tpu"}, {"device=tpu"});
  expect_plan_error(teacher + "align:\n  data: {tokens: " + d.dir + "/missing, seq_len: 32, batch_size: 4}\n" + train,
                    {"align.data.tokens", "missing"});
  expect_plan_error(teacher + "align:\n  data: {tokens: " + d.tokens + ", seq_len: 32, batch_size: 100000}\n" + train,
                    {"align.data.tokens", "fewer than batch size"});
  expect_plan_error("teacher: " + d.dir + "/no-teacher\nalign:\n" + data + train, {"teacher", "no-teacher"});
  expect_plan_error(teacher + "align:\n" + data + train + "report: {text: " + d.dir + "/absent.txt}\n",
                    {"report.text", "absent.txt"});
  expect_plan_error(teacher + "align:\n" + data + train + "select: {criterion: even, keep: 99}\n", {"select.keep"});
  expect_plan_error(teacher + "align:\n" + data + train + "tune: {text: " + d.dir + "}\n",
                    {"tune.text", "is a directory"});
  expect_plan_error(teacher + "align:\n" + data + train + "tune: {text: " + d.text + ", ppl_tail: 100000}\n",
                    {"tune.ppl_tail", "100000"});
}

TEST(Experiment, DataFromAnotherVocabularyIsRejected) {
  const TinyData d = make_data();
  // Tokens of the real Qwen3 tokenizer (vocabulary 151,669) cannot train the 1024-entry fixture.
  const std::string qwen_tokens = d.dir + "/qwen-tokens";
  auto qwen = load_tokenizer(test::shared_dir() + "/data/qwen3-tokenizer");
  TokenizeCorpusOptions options;
  options.inputs = {d.text};
  options.out_dir = qwen_tokens;
  options.tokenizer = fingerprint_tokenizer(test::shared_dir() + "/data/qwen3-tokenizer");
  tokenize_corpus(*qwen, options);
  const Experiment x = load_experiment(
      experiment_yaml(d, "teacher: " + test::fixture("qwen3-tiny") + "\nalign:\n  data: {tokens: " + qwen_tokens +
                             ", seq_len: 32, batch_size: 4}\n  train: {steps: 2, lr: 1.0e-3}\n"));
  try {
    run_experiment(x, "align");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary"), std::string::npos) << e.what();
  }
  // Another tokenizer of the same size (its file differs): refused by the manifest's sha256.
  const std::string other_dir = test::make_temp_dir();
  const std::string other = test::write_byte_tokenizer(other_dir);
  test::write_text(other_dir + "/tokenizer.json", read_file(other_dir + "/tokenizer.json") + "\n");
  const std::string other_tokens = d.dir + "/other-tokens";
  TokenizeCorpusOptions same_size;
  same_size.inputs = {d.text};
  same_size.out_dir = other_tokens;
  same_size.tokenizer = fingerprint_tokenizer(other);
  same_size.append_eos = false;
  tokenize_corpus(*load_tokenizer(other), same_size);
  const Experiment y = load_experiment(
      experiment_yaml(d, "teacher: " + test::fixture("qwen3-tiny") + "\nalign:\n  data: {tokens: " + other_tokens +
                             ", seq_len: 32, batch_size: 4}\n  train: {steps: 2, lr: 1.0e-3}\n"));
  try {
    run_experiment(y, "align");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not with the experiment's tokenizer"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace halo
