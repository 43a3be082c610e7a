// A HALO experiment: every hyperparameter of every stage in one YAML file, run stage by stage
// into one run directory (../shared/docs/METHOD.md §3):
//   pretrain (optional: a small Qwen3 teacher from scratch) -> align (stage 1) -> select ->
//   distill (stage 2) -> finetune (stage 3) -> tune (HyPE's a, hype_scaling.h) -> report.
// Each stage writes RUN/<stage>/ (model/ in Hugging Face format, checkpoints/, metrics.jsonl)
// and a DONE marker last; a stage with DONE is skipped, an interrupted one resumes from its
// newest checkpoint. Unknown or missing YAML keys are errors that name the key.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "halo/model_config.h"
#include "halo/trainer.h"

namespace halo {

struct DataConfig {
  std::string tokens;      // a directory made by `halo data prepare`
  int64_t seq_len = 512;   // T
  int64_t batch_size = 8;  // B per micro-batch
};

struct TrainingStageConfig {
  bool enabled = false;
  DataConfig data;
  TrainerConfig train;
  bool recompute_activations = false;
  int64_t loss_chunk = 1024;  // tokens per slice of the chunked lm-head losses
};

struct PretrainConfig : TrainingStageConfig {
  ModelConfig model;  // architecture (vocab_size from the tokenizer when 0)
  double init_std = 0.02;
};

struct SelectConfig {
  bool enabled = false;
  std::string criterion = "halo";         // halo | recall | kl | even
  int64_t keep = -1;                      // attention layers to keep; -1: floor(L/4)
  std::vector<int64_t> attention_layers;  // skip measuring: use these (criterion "given")
  int64_t niah_length = 512;
  int64_t niah_samples = 20;
  std::vector<double> niah_depths = {0.1, 0.3, 0.5, 0.7, 0.9};
  std::string filler;   // NIAH filler text file
  std::string mc_task;  // multiple-choice JSONL (PIQA format or generic); "" -> text loss
  std::string mc_labels;
  int64_t mc_limit = 200;
  std::string heldout_text;  // commonsense proxy when mc_task is empty: -loss on this text
  int64_t heldout_tokens = 4096;
};

struct DistillConfig : TrainingStageConfig {
  bool attn_output_gate = true;
};

struct TuneConfig {
  bool enabled = false;
  std::string text;    // held-out loss text: neither trained on nor reported
  std::string filler;  // NIAH filler (default: text)
  std::vector<double> grid = {50, 100, 200, 362, 500, 700, 1000, 2000, 5000};
  std::vector<int64_t> lengths_factors = {4, 8};  // context = factor x training length
  int64_t niah_samples = 20;
  double niah_tolerance = 0.05;
  int64_t ppl_tokens = 0;  // 0: the longest context + 1
  int64_t ppl_tail = 0;    // > 0: the loss of the last ppl_tail positions of each window only
};

struct ReportConfig {
  bool enabled = false;
  std::string text;                                   // perplexity text (held out)
  std::vector<int64_t> lengths_factors = {1, 4, 16};  // context = factor x training length
  std::vector<int64_t> contexts;                      // absolute contexts (replace the factors when given)
  int64_t ppl_tokens = 32768;
  int64_t ppl_tail = 0;  // also the perplexity of the last N positions of each window
  std::string filler;
  std::vector<int64_t> niah_lengths;  // absolute (default: the perplexity contexts)
  std::vector<double> niah_depths = {0.1, 0.3, 0.5, 0.7, 0.9};
  int64_t niah_samples = 10;  // prompts per (length, depth)
  std::string mc_task, mc_labels;  // multiple choice (e.g. PIQA); none when empty
  int64_t mc_limit = 0;
  int64_t decode_tokens = 64;
  std::vector<int64_t> decode_contexts;  // decode ms/token and memory at these contexts
  std::vector<std::pair<std::string, std::string>> compare;  // more models: column name -> directory
};

// Where the student's positions are encoded (METHOD.md's HyPE and its ablations): hype = RoPE in
// the lightning (RNN) layers, none in attention; rope = RoPE in both; nope = RoPE in neither.
enum class PositionEncoding { hype, rope, nope };

struct Experiment {
  std::string path;  // the YAML file
  std::string run_dir;
  std::string device = "auto";
  std::string dtype = "auto";  // training/inference dtype: auto = bfloat16 on CUDA, float32 on CPU
  uint64_t seed = 0;
  std::string teacher;    // teacher directory (Qwen3, Llama or Qwen2); empty when pretrain makes one
  std::string tokenizer;  // tokenizer directory/file (default: the teacher's directory)
  PositionEncoding position_encoding = PositionEncoding::hype;
  PretrainConfig pretrain;
  TrainingStageConfig align;
  SelectConfig select;
  DistillConfig distill;
  TrainingStageConfig finetune;
  TuneConfig tune;
  ReportConfig report;
};

// Parses and checks an experiment file; relative paths are relative to the working directory.
// Each override "KEY.PATH=VALUE" (`halo run --set`) replaces or adds that key before the file is
// read, VALUE parsed as YAML ("null" removes a section); a malformed one fails naming it.
Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides = {});

// The stages in order, with what each would do (token budget, parameters, memory estimate),
// after the same checks of every input as run_experiment.
// With world_size ranks (torchrun) token counts are global and memory is per rank.
std::string describe_plan(const Experiment& experiment, int world_size = 1);

// Runs one stage ("pretrain", "align", "select", "distill", "finetune", "tune", "report") or,
// with "all", every enabled stage in order, skipping finished ones. Every input the stages will
// read is checked before the first starts. Returns 0 when the stages finished, or the signal
// (SIGINT, SIGTERM) that interrupted one after its checkpoint was saved.
int run_experiment(const Experiment& x, const std::string& stage);

}  // namespace halo
