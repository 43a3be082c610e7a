// Runs an Experiment stage by stage. Every stage reads its inputs from earlier stages' model/
// directories (or the given teacher), trains through the one Trainer, and writes RUN/<stage>/
// model/ and then DONE (a JSON summary, wall time included). describe_plan() prints what would
// happen without loading any weights.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <iterator>
#include <numeric>
#include <optional>
#include <sstream>

#include "data/token_dataset.h"
#include "halo/causal_lm.h"
#include "halo/device.h"
#include "halo/error.h"
#include "halo/evaluation.h"
#include "halo/experiment.h"
#include "halo/file_system.h"
#include "halo/generation.h"
#include "halo/hype_scaling.h"
#include "halo/hypenet_conversion.h"
#include "halo/logging.h"
#include "halo/model_directory.h"
#include "halo/perplexity.h"
#include "halo/process_group.h"
#include "halo/progress.h"
#include "halo/safetensors.h"
#include "halo/token_corpus.h"
#include "halo/tokenizer.h"
#include "halo/trainer.h"
#include "halo/training_tasks.h"
#include "ops/lm_losses.h"
#include "pipeline/experiment_report.h"
#include "pipeline/layer_selection.h"

namespace halo {
namespace {

using nlohmann::json;
using clock_type = std::chrono::steady_clock;

const char* const kStages[] = {"pretrain", "align", "select", "distill", "finetune", "tune", "report"};

struct Runtime {
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;
};

Runtime runtime_of(const Experiment& x) {
  Runtime r;
  r.device = parse_device(x.device);
  // Under torchrun each rank takes the GPU of its local rank ("cuda" and "auto" alike).
  const ProcessGroup& world = ProcessGroup::world();
  if (r.device.is_cuda() && world.distributed() && !r.device.has_index()) {
    r.device = parse_device(cat("cuda:", world.local_rank()));
  }
  r.dtype = x.dtype == "auto" ? (r.device.is_cuda() ? c10::kBFloat16 : c10::kFloat)
                              : parse_compute_dtype(x.dtype, "float32", r.device);
  return r;
}

std::string stage_dir(const Experiment& x, const std::string& stage) {
  return join_path(x.run_dir, stage);
}
std::string model_dir(const Experiment& x, const std::string& stage) {
  return join_path(stage_dir(x, stage), "model");
}
bool stage_done(const Experiment& x, const std::string& stage) {
  return path_exists(join_path(stage_dir(x, stage), "DONE"));
}

std::string teacher_dir(const Experiment& x) {
  return x.teacher.empty() ? model_dir(x, "pretrain") : x.teacher;
}
// The directory whose tokenizer files model directories get (a tokenizer file's directory).
std::string tokenizer_source(const Experiment& x) {
  if (x.tokenizer.empty()) return teacher_dir(x);
  return is_regular_file(x.tokenizer) ? parent_directory(x.tokenizer) : x.tokenizer;
}

void require_done(const Experiment& x, const std::string& stage, const std::string& by) {
  if (!stage_done(x, stage)) {
    fail(x.path, ": stage '", by, "' needs stage '", stage, "' to have finished (", stage_dir(x, stage),
         "/DONE is missing); run `halo run ", x.path, "`");
  }
}

void mark_done(const Experiment& x, const std::string& stage, json summary, double seconds) {
  summary["stage"] = stage;
  summary["wall_seconds"] = seconds;
  write_file_atomic(join_path(stage_dir(x, stage), "DONE"), summary.dump(2) + "\n");
}

CausalLM load_model(const std::string& dir, const Runtime& rt) {
  return load_causal_lm(dir, rt.dtype, rt.device);
}

// A training stage's result: written by the main rank only (the others hold the same weights).
void save_stage_model(CausalLM& model, const std::string& dir, const SaveOptions& options) {
  model.set_requires_grad(false);
  if (ProcessGroup::world().is_main()) save_model_directory(model, dir, options);
}

SaveOptions save_options(const Experiment& x, const Runtime& rt) {
  SaveOptions s;
  s.dtype = rt.dtype;
  s.tokenizer_source = tokenizer_source(x);
  return s;
}

void check_compare_model(const Experiment& x, const std::string& name, const std::string& model) {
  if (!path_exists(join_path(model, "config.json"))) {
    fail(x.path, ": report.compare.", name, ": ", model, " has no config.json (run that experiment first)");
  }
}

// The stage's tokens must come from the experiment's tokenizer and fit the model's vocabulary.
void check_tokens(const Experiment& x, const TokenDataset& dataset, int64_t model_vocab) {
  const TokenCorpusManifest& manifest = dataset.manifest();
  const std::string dir = parent_directory(dataset.tokens_path());
  if (manifest.vocab_size > model_vocab) {
    fail(dir, ": tokenized with a vocabulary of ", manifest.vocab_size, " but the model has ", model_vocab,
         " entries; prepare the data with the model's tokenizer");
  }
  // Same size is not same tokenizer: the manifest records the file's hash.
  if (!manifest.tokenizer_sha256.empty()) {
    const TokenizerFingerprint ours = fingerprint_tokenizer(tokenizer_source(x));
    if (ours.sha256 != manifest.tokenizer_sha256) {
      fail(dir, ": tokenized with ", manifest.tokenizer_path, " (sha256 ", manifest.tokenizer_sha256.substr(0, 12),
           "...), not with the experiment's tokenizer ", ours.path, " (sha256 ", ours.sha256.substr(0, 12),
           "...); prepare the data again with `halo data prepare --tokenizer ", tokenizer_source(x), "`");
    }
  }
}

// Trains `task` on the stage's data; the signal that interrupted it, 0 when it finished.
int train(const Experiment& x, const std::string& stage, const TrainingStageConfig& config, TrainingTask& task,
           int64_t model_vocab) {
  TokenDataset dataset(config.data.tokens);
  check_tokens(x, dataset, model_vocab);
  TokenBatcherOptions data_options;
  data_options.batch_size = config.data.batch_size;
  data_options.seq_len = config.data.seq_len;
  data_options.seed = x.seed;
  data_options.rank = ProcessGroup::world().rank();
  data_options.world_size = ProcessGroup::world().size();
  TokenBatcher batcher(dataset, data_options);
  TrainerConfig trainer_config = config.train;
  trainer_config.run_dir = stage_dir(x, stage);
  trainer_config.label = stage;
  Trainer trainer(trainer_config, task, batcher);
  const TrainingResult result = trainer.run();
  return result.stop_signal;
}

int run_pretrain(const Experiment& x, const Runtime& rt) {
  auto tokenizer = load_tokenizer(x.tokenizer);
  ModelConfig config = x.pretrain.model;
  if (config.vocab_size == 0) config.vocab_size = tokenizer->vocab_size();
  if (tokenizer->eos_id()) config.eos_token_ids = {*tokenizer->eos_id()};
  config.dtype = scalar_type_name(rt.dtype);
  validate_model_config(config, x.path + " (pretrain.model)");
  CausalLM model(config);
  model.init_random(x.seed, x.pretrain.init_std);
  model.to(rt.device, rt.dtype);
  model.set_recompute_activations(x.pretrain.recompute_activations);
  LanguageModelingTask task(model, x.pretrain.loss_chunk);
  if (const int signal = train(x, "pretrain", x.pretrain, task, config.vocab_size)) return signal;
  save_stage_model(model, model_dir(x, "pretrain"), save_options(x, rt));
  return 0;
}

// The converted config with the experiment's position encoding.
ModelConfig student_config(const Experiment& x, const ModelConfig& teacher, const std::vector<int64_t>& attention_layers) {
  ModelConfig config = hypenet_config(teacher, attention_layers);
  config.lightning_use_rope = x.position_encoding != PositionEncoding::nope;
  config.attn_use_rope = x.position_encoding == PositionEncoding::rope;
  return config;
}

int run_align(const Experiment& x, const Runtime& rt) {
  CausalLM teacher = load_model(teacher_dir(x), rt);
  CausalLM student = convert_to_hypenet(teacher, student_config(x, teacher.config(), {}), x.seed);
  AlignmentTask task(teacher, student);
  if (const int signal = train(x, "align", x.align, task, teacher.config().vocab_size)) return signal;
  save_stage_model(student, model_dir(x, "align"), save_options(x, rt));
  return 0;
}

// The teacher with only `layer` replaced by its stage-1 lightning mixer (tensors shared).
CausalLM teacher_with_one_lightning_layer(CausalLM& teacher, CausalLM& stage1, int64_t layer) {
  ModelConfig config = stage1.config();
  config.mixer_types.assign(config.num_hidden_layers, MixerType::attention);
  config.mixer_types[layer] = MixerType::lightning;
  config.attn_use_rope = teacher.config().attn_use_rope;
  config.attn_use_output_gate = false;
  config.attn_logits_scaling_a.reset();
  config.attn_logits_scaling_const.reset();
  CausalLM hybrid(config);
  hybrid.embed_tokens() = teacher.embed_tokens();
  hybrid.final_norm() = teacher.final_norm();
  hybrid.lm_head() = teacher.lm_head();
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    hybrid.layer(i) = teacher.layer(i);
    if (i == layer) hybrid.layer(i).mixer = stage1.layer(i).mixer;
  }
  hybrid.to(teacher.device(), teacher.dtype());
  return hybrid;
}

struct LayerProbe {
  std::vector<NeedleSample> needles;
  std::vector<ChoiceItem> choices;
  std::vector<int32_t> heldout;
};

double recall_of(CausalLM& model, const Tokenizer& tokenizer, const LayerProbe& probe, const SelectConfig& c,
                 const std::vector<int64_t>& stop_ids) {
  NeedleOptions options;
  options.lengths = {c.niah_length};
  options.depths = c.niah_depths;
  options.samples = c.niah_samples;
  return evaluate_needle(model, tokenizer, probe.needles, options, stop_ids).accuracy();
}

double commonsense_of(CausalLM& model, const Tokenizer& tokenizer, const LayerProbe& probe, const SelectConfig& c) {
  if (!probe.choices.empty()) return evaluate_multiple_choice(model, tokenizer, probe.choices).acc_norm();
  return -perplexity(model, probe.heldout, c.niah_length, c.niah_length).mean_nll();
}

double kl_to_teacher(CausalLM& model, CausalLM& teacher, const LayerProbe& probe, int64_t length) {
  c10::InferenceMode guard;
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(probe.heldout.size()), length);
  at::Tensor ids =
      at::tensor(at::ArrayRef<int32_t>(probe.heldout.data(), n), at::kInt).to(at::kLong).to(model.device());
  at::Tensor s = model.forward_hidden(ids.unsqueeze(0)).squeeze(0);
  at::Tensor t = teacher.forward_hidden(ids.unsqueeze(0)).squeeze(0);
  return chunked_kl_divergence(s, model.lm_head_weight(), t, teacher.lm_head_weight()).item<double>();
}

int run_select(const Experiment& x, const Runtime& rt) {
  const SelectConfig& c = x.select;
  const std::string dir = stage_dir(x, "select");
  create_directories(dir);
  const ModelConfig teacher_config = load_model_config(teacher_dir(x));
  const int64_t layers = teacher_config.num_hidden_layers;
  LayerSelectionOptions options;
  options.keep = c.keep;
  LayerMeasurements m;
  m.layers = layers;
  ProcessGroup& world = ProcessGroup::world();
  if (!c.attention_layers.empty()) {
    json given = {{"criterion", "given"}, {"attention_layers", c.attention_layers}};
    if (world.is_main()) write_file_atomic(join_path(dir, "selection.json"), given.dump(2) + "\n");
    log::info(cat("select: attention layers given in ", x.path));
    return 0;
  }
  options.criterion = parse_selection_criterion(c.criterion);
  if (options.criterion != SelectionCriterion::even) {
    require_done(x, "align", "select");
    CausalLM teacher = load_model(teacher_dir(x), rt);
    CausalLM stage1 = load_model(model_dir(x, "align"), rt);
    auto tokenizer = load_tokenizer(tokenizer_source(x));
    LayerProbe probe;
    if (!c.filler.empty()) {
      NeedleOptions needle;
      needle.lengths = {c.niah_length};
      needle.depths = c.niah_depths;
      needle.samples = c.niah_samples;
      needle.seed = x.seed;
      probe.needles = build_needle_samples(*tokenizer, read_file(c.filler), needle);
    }
    if (!c.mc_task.empty()) probe.choices = load_multiple_choice(c.mc_task, c.mc_labels, c.mc_limit);
    if (!c.heldout_text.empty()) {
      probe.heldout =
          held_out_tokens(*tokenizer, read_file(c.heldout_text), c.heldout_tokens, teacher_config.vocab_size);
    }
    if (options.criterion == SelectionCriterion::kl && probe.heldout.empty()) {
      fail(x.path, ": criterion kl needs select.commonsense.text (held-out text to compare on)");
    }
    const std::vector<int64_t> stop_ids = stop_token_ids(teacher_dir(x), teacher_config, tokenizer.get());
    // Under torchrun rank r measures layers r, r + world size, ...; the sums give every rank
    // every layer's numbers (zeros elsewhere).
    at::Tensor kl = at::zeros({layers}, at::kDouble), recall = at::zeros({layers}, at::kDouble),
               commonsense = at::zeros({layers}, at::kDouble);
    ProgressBar bar("select", (layers - world.rank() + world.size() - 1) / world.size(), "layer");
    for (int64_t i = world.rank(); i < layers; i += world.size()) {
      CausalLM hybrid = teacher_with_one_lightning_layer(teacher, stage1, i);
      if (options.criterion == SelectionCriterion::kl) {
        kl[i] = kl_to_teacher(hybrid, teacher, probe, c.heldout_tokens);
      } else {
        recall[i] = recall_of(hybrid, *tokenizer, probe, c, stop_ids);
        if (options.criterion == SelectionCriterion::halo) commonsense[i] = commonsense_of(hybrid, *tokenizer, probe, c);
      }
      bar.set_postfix(cat("layer ", i, " R ", fixed(recall[i].item<double>(), 3)));
      bar.advance();
    }
    bar.finish();
    std::vector<at::Tensor> measured{kl, recall, commonsense};
    world.all_reduce_sum(measured);
    auto values = [](const at::Tensor& t) { return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel()); };
    if (options.criterion == SelectionCriterion::kl) {
      m.kl = values(measured[0]);
    } else {
      m.recall = values(measured[1]);
      if (options.criterion == SelectionCriterion::halo) m.commonsense = values(measured[2]);
    }
  }
  if (!world.is_main()) return 0;
  const LayerSelection selection = select_attention_layers(m, options);
  write_selection_report(dir, selection);
  std::string kept;
  for (int64_t l : selection.attention_layers) kept += (kept.empty() ? "" : ",") + std::to_string(l);
  log::info(cat("select: attention layers ", kept, " (", selection_criterion_name(options.criterion), ")"));
  return 0;
}

std::vector<int64_t> selected_layers(const Experiment& x) {
  const std::string path = join_path(stage_dir(x, "select"), "selection.json");
  json j = json::parse(read_file(path));
  if (!j.contains("attention_layers")) fail(path, ": no attention_layers");
  return j["attention_layers"].get<std::vector<int64_t>>();
}

int run_distill(const Experiment& x, const Runtime& rt) {
  require_done(x, "align", "distill");
  require_done(x, "select", "distill");
  CausalLM teacher = load_model(teacher_dir(x), rt);
  CausalLM stage1 = load_model(model_dir(x, "align"), rt);
  ModelConfig config = student_config(x, teacher.config(), selected_layers(x));
  if (stage1.config().lightning_use_rope != config.lightning_use_rope) {
    fail(x.path, ": position_encoding asks for ", config.lightning_use_rope ? "" : "no ",
         "RoPE in the RNN layers but stage 1 (", model_dir(x, "align"), ") was aligned ",
         stage1.config().lightning_use_rope ? "with" : "without",
         " it; delete that run's align/ and select/ directories to align again");
  }
  config.attn_use_output_gate = x.distill.attn_output_gate;
  CausalLM student = convert_to_hypenet(teacher, config, x.seed);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    if (config.mixer_types[i] != MixerType::lightning) continue;
    student.layer(i).mixer = cloned(stage1.layer(i).mixer);
  }
  student.set_recompute_activations(x.distill.recompute_activations);
  DistillationTask task(teacher, student, x.distill.loss_chunk);
  if (const int signal = train(x, "distill", x.distill, task, teacher.config().vocab_size)) return signal;
  save_stage_model(student, model_dir(x, "distill"), save_options(x, rt));
  return 0;
}

int run_finetune(const Experiment& x, const Runtime& rt) {
  require_done(x, "distill", "finetune");
  CausalLM model = load_model(model_dir(x, "distill"), rt);
  model.set_recompute_activations(x.finetune.recompute_activations);
  LanguageModelingTask task(model, x.finetune.loss_chunk);
  if (const int signal = train(x, "finetune", x.finetune, task, model.config().vocab_size)) return signal;
  save_stage_model(model, model_dir(x, "finetune"), save_options(x, rt));
  return 0;
}

// The student the pipeline ends with: the last stage that ran and wrote a model.
std::string final_student(const Experiment& x) {
  for (const char* stage : {"tune", "finetune", "distill"}) {
    if (stage_done(x, stage)) return model_dir(x, stage);
  }
  fail(x.path, ": this stage needs a finished distill (or finetune) stage");
}

int64_t training_length(const Experiment& x) {
  if (x.distill.enabled) return x.distill.data.seq_len;
  if (x.pretrain.enabled) return x.pretrain.data.seq_len;
  return 512;
}

// HyPE's a chosen on held-out data (hype_scaling.h); the student is written again with it.
int run_tune(const Experiment& x, const Runtime& rt) {
  const TuneConfig& t = x.tune;
  const std::string student_dir = final_student(x);
  CausalLM model = load_model(student_dir, rt);
  auto tokenizer = load_tokenizer(tokenizer_source(x));
  HypeScalingOptions options;
  options.grid = t.grid;
  for (int64_t factor : t.lengths_factors) options.lengths.push_back(factor * training_length(x));
  options.niah_samples = t.niah_samples;
  options.niah_tolerance = t.niah_tolerance;
  options.ppl_tokens = t.ppl_tokens;
  options.ppl_tail = t.ppl_tail;
  options.seed = x.seed + 2;
  check_hype_scaling_options(options);
  // Under torchrun rank r scores the grid's values r, r + world size, ...; the sums of their
  // rows (zeros elsewhere) give every point on every rank.
  ProcessGroup& world = ProcessGroup::world();
  HypeScalingOptions share = options;
  share.grid.clear();
  for (size_t i = static_cast<size_t>(world.rank()); i < options.grid.size(); i += static_cast<size_t>(world.size())) {
    share.grid.push_back(options.grid[i]);
  }
  HypeScalingResult mine;
  if (!share.grid.empty()) {
    mine = tune_hype_scaling(model, *tokenizer, read_file(t.text), read_file(t.filler),
                             stop_token_ids(student_dir, model.config(), tokenizer.get()), share);
  }
  const auto lengths = static_cast<int64_t>(options.lengths.size());
  at::Tensor rows = at::zeros({static_cast<int64_t>(options.grid.size()), 2 * lengths}, at::kDouble);
  for (size_t k = 0; k < mine.points.size(); ++k) {
    const int64_t row = world.rank() + static_cast<int64_t>(k) * world.size();
    for (int64_t l = 0; l < lengths; ++l) {
      rows[row][l] = mine.points[k].niah_by_length[l];
      rows[row][lengths + l] = mine.points[k].nll_by_length[l];
    }
  }
  std::vector<at::Tensor> gathered{rows};
  world.all_reduce_sum(gathered);
  HypeScalingResult result;
  result.lengths = options.lengths;
  for (size_t i = 0; i < options.grid.size(); ++i) {
    HypeScalingPoint p;
    p.a = options.grid[i];
    for (int64_t l = 0; l < lengths; ++l) {
      p.niah_by_length.push_back(rows[static_cast<int64_t>(i)][l].item<double>());
      p.nll_by_length.push_back(rows[static_cast<int64_t>(i)][lengths + l].item<double>());
    }
    p.niah = std::accumulate(p.niah_by_length.begin(), p.niah_by_length.end(), 0.0) / lengths;
    p.mean_nll = std::accumulate(p.nll_by_length.begin(), p.nll_by_length.end(), 0.0) / lengths;
    result.points.push_back(std::move(p));
  }
  result.best_a = choose_hype_scaling(result.points, options.niah_tolerance);
  if (world.distributed()) log::info(cat("tune: HyPE a = ", result.best_a, " over the whole grid"));
  if (!world.is_main()) return 0;
  write_hype_scaling_report(stage_dir(x, "tune"), result, options);
  model.set_hype_scaling(result.best_a);
  save_model_directory(model, model_dir(x, "tune"), save_options(x, rt));
  return 0;
}

int run_report(const Experiment& x, const Runtime& rt) {
  const std::string dir = stage_dir(x, "report");
  std::vector<ReportModel> models = {{"teacher", teacher_dir(x)}, {"student", final_student(x)}};
  for (const auto& [name, model] : x.report.compare) {
    check_compare_model(x, name, model);
    models.push_back({name, model});
  }
  ReportSetting setting;
  setting.title = cat("HALO run report: `", x.path, "` (run directory `", x.run_dir, "`)");
  setting.tokenizer_dir = tokenizer_source(x);
  setting.training_length = training_length(x);
  setting.device = rt.device;
  setting.dtype = rt.dtype;
  setting.out_dir = dir;
  for (const char* stage : kStages) {
    const std::string done = join_path(stage_dir(x, stage), "DONE");
    if (path_exists(done)) setting.stage_seconds.emplace_back(stage, json::parse(read_file(done)).value("wall_seconds", 0.0));
  }
  write_experiment_report(x.report, models, setting);
  return 0;
}

bool enabled(const Experiment& x, const std::string& stage) {
  if (stage == "pretrain") return x.pretrain.enabled;
  if (stage == "align") return x.align.enabled;
  if (stage == "select") return x.select.enabled;
  if (stage == "distill") return x.distill.enabled;
  if (stage == "finetune") return x.finetune.enabled;
  if (stage == "tune") return x.tune.enabled;
  return x.report.enabled;
}

int run_stage(const Experiment& x, const std::string& stage, const Runtime& rt) {
  if (stage == "pretrain") return run_pretrain(x, rt);
  if (stage == "align") return run_align(x, rt);
  if (stage == "select") return run_select(x, rt);
  if (stage == "distill") return run_distill(x, rt);
  if (stage == "finetune") return run_finetune(x, rt);
  if (stage == "tune") return run_tune(x, rt);
  return run_report(x, rt);
}

// The training settings of a training stage; nullptr for the others.
const TrainingStageConfig* training_stage(const Experiment& x, const std::string& stage) {
  if (stage == "pretrain") return &x.pretrain;
  if (stage == "align") return &x.align;
  if (stage == "distill") return &x.distill;
  if (stage == "finetune") return &x.finetune;
  return nullptr;
}

int64_t tokens_of(const TrainingStageConfig& s) {
  return s.train.steps * s.train.grad_accum * s.data.batch_size * s.data.seq_len;
}

// " (0.21 epochs of 23.69 M)" when the token directory is there to count.
std::string epochs_of(const TrainingStageConfig& s, int world_size) {
  const std::string manifest = join_path(s.data.tokens, "manifest.json");
  if (!path_exists(manifest)) return "";
  const int64_t corpus = json::parse(read_file(manifest)).value("tokens", int64_t{0});
  if (corpus <= 0) return "";
  return cat(" (", fixed(static_cast<double>(tokens_of(s)) * world_size / corpus, 2), " epochs of ",
             fixed(corpus / 1e6, 2), " M)");
}

const char* position_encoding_name(PositionEncoding p) {
  return p == PositionEncoding::hype ? "hype" : p == PositionEncoding::rope ? "rope" : "nope";
}


// Runs `check`; a failure names the experiment file and the key it concerns. A bad value in the
// file is bad input (exit 1) whatever the check would call it.
template <class Check>
void check_key(const Experiment& x, const std::string& key, Check&& check) {
  try {
    check();
  } catch (const Error& e) {
    fail(x.path, ": ", key, ": ", e.what());
  }
}

void check_text_file(const Experiment& x, const std::string& key, const std::string& path) {
  if (!path.empty()) check_key(x, key, [&] { require_regular_file(path); });
}

// Everything the stages about to run will read, checked before the first one starts, so a
// typo fails now and not hours into the run: device and dtype, the teacher (config and weight
// headers) or the tokenizer, each training stage's tokens (tokenizer, vocabulary, enough for a
// batch), the texts and tasks of select, tune and report, the models report compares.
// A plan may be made away from the GPU that will run it: then only the device's name is checked.
void check_inputs(const Experiment& x, const std::string& stage, bool plan_only = false) {
  auto runs = [&](const char* s) { return enabled(x, s) && (stage == s || (stage == "all" && !stage_done(x, s))); };
  const bool cuda_name = x.device == "cuda" || (x.device.rfind("cuda:", 0) == 0 && x.device.size() > 5 &&
                                                x.device.find_first_not_of("0123456789", 5) == std::string::npos);
  if (plan_only && cuda_name) {
    check_key(x, "dtype", [&] { parse_compute_dtype(x.dtype, "bfloat16", c10::Device(c10::kCPU)); });
  } else {
    check_key(x, "device/dtype", [&] { runtime_of(x); });
  }
  int64_t vocab = 0, layers = 0;
  if (x.pretrain.enabled) {
    check_key(x, "tokenizer", [&] { vocab = load_tokenizer(x.tokenizer)->vocab_size(); });
    if (x.pretrain.model.vocab_size > 0) vocab = x.pretrain.model.vocab_size;
    layers = x.pretrain.model.num_hidden_layers;
  } else {
    check_key(x, "teacher", [&] {
      const ModelConfig teacher = load_model_config(x.teacher);
      WeightFiles weights(x.teacher);
      vocab = teacher.vocab_size;
      layers = teacher.num_hidden_layers;
    });
    if (!x.tokenizer.empty()) check_key(x, "tokenizer", [&] { load_tokenizer(x.tokenizer); });
  }
  for (const char* name : {"pretrain", "align", "distill", "finetune"}) {
    if (!runs(name)) continue;
    const TrainingStageConfig& s = *training_stage(x, name);
    check_key(x, cat(name, ".data.tokens"), [&] {
      TokenDataset dataset(s.data.tokens);
      check_tokens(x, dataset, vocab);
      TokenBatcherOptions options;
      options.batch_size = s.data.batch_size;
      options.seq_len = s.data.seq_len;
      TokenBatcher batcher(dataset, options);
    });
  }
  if (runs("select")) {
    const SelectConfig& c = x.select;
    if (c.keep > layers) fail(x.path, ": select.keep is ", c.keep, " but the teacher has ", layers, " layers");
    for (int64_t l : c.attention_layers) {
      if (l < 0 || l >= layers) fail(x.path, ": select.attention_layers: layer ", l, " is outside 0..", layers - 1);
    }
    check_text_file(x, "select.niah.filler", c.filler);
    check_text_file(x, "select.commonsense.task", c.mc_task);
    check_text_file(x, "select.commonsense.labels", c.mc_labels);
    check_text_file(x, "select.commonsense.text", c.heldout_text);
  }
  if (runs("tune")) {
    const TuneConfig& t = x.tune;
    check_text_file(x, "tune.text", t.text);
    check_text_file(x, "tune.filler", t.filler);
    const int64_t shortest = *std::min_element(t.lengths_factors.begin(), t.lengths_factors.end()) * training_length(x);
    if (t.ppl_tail >= shortest) {
      fail(x.path, ": tune.ppl_tail is ", t.ppl_tail, " but the shortest tuned length is ", shortest,
           " (tune.context_factors x the training length); give fewer positions, or 0 for whole windows");
    }
  }
  if (runs("report")) {
    const ReportConfig& r = x.report;
    check_text_file(x, "report.text", r.text);
    check_text_file(x, "report.filler", r.filler);
    check_text_file(x, "report.commonsense.task", r.mc_task);
    check_text_file(x, "report.commonsense.labels", r.mc_labels);
    for (const auto& [name, model] : r.compare) {
      // Models this run makes itself (RUN/distill/model, ...) are checked when the report runs.
      if (model.rfind(join_path(x.run_dir, ""), 0) != 0) check_compare_model(x, name, model);
    }
  }
}
}  // namespace

std::string describe_plan(const Experiment& x, int world_size) {
  check_inputs(x, "all", true);
  std::ostringstream out;
  out << "experiment " << x.path << " -> " << x.run_dir << " (device " << x.device << ", dtype " << x.dtype << ", seed "
      << x.seed << ", student position encoding " << position_encoding_name(x.position_encoding) << ")\n";
  if (world_size > 1) {
    out << world_size << " ranks (torchrun): batches are per rank, token counts global, memory per rank (each "
        << "holds every model, the teacher whole; the optimizer state is split over the ranks where train.zero is 1 "
        << "or 2, the gradients too where it is 2; when a rank does not fit: train.zero 2, recompute_activations, "
        << "a smaller batch_size with grad_accum)\n";
  }
  int64_t params = 0;
  ModelConfig teacher;
  if (x.pretrain.enabled) {
    teacher = x.pretrain.model;
    if (teacher.vocab_size == 0) teacher.vocab_size = load_tokenizer(x.tokenizer)->vocab_size();
  } else {
    teacher = load_model_config(x.teacher);
  }
  for (const ParameterSpec& spec : parameter_specs(teacher)) {
    int64_t n = 1;
    for (int64_t d : spec.shape) n *= d;
    params += n;
  }
  out << "teacher: " << teacher.num_hidden_layers << " layers, hidden " << teacher.hidden_size << ", vocab "
      << teacher.vocab_size << ", " << fixed(params / 1e6, 1) << " M parameters\n";
  const double bytes_per_param = x.dtype == "float32" || (x.dtype == "auto" && x.device == "cpu") ? 4 : 2;
  for (const char* stage : kStages) {
    if (!enabled(x, stage)) continue;
    out << "  " << stage << (stage_done(x, stage) ? " [done, skipped]" : "");
    const TrainingStageConfig* s = training_stage(x, stage);
    if (s != nullptr) {
      const double models = std::string(stage) == "pretrain" || std::string(stage) == "finetune" ? 1 : 2;
      // weights of every model held + float32 AdamW moments (and master copies), a share of them
      // under ZeRO-1/2, + gradients of what trains (upper bound; a share under ZeRO-2)
      const double optimizer_bytes = (8.0 + (s->train.fp32_master && bytes_per_param < 4 ? 4 : 0)) /
                                     (s->train.zero >= 1 ? world_size : 1);
      const double gradient_bytes = bytes_per_param / (s->train.zero == 2 ? world_size : 1);
      const double memory = params * (models * bytes_per_param + optimizer_bytes + gradient_bytes) +
                            static_cast<double>(s->data.batch_size) * s->data.seq_len * teacher.hidden_size *
                                teacher.num_hidden_layers * 16 * (s->recompute_activations ? 0.1 : 1.0);
      out << ": " << s->train.steps << " steps x " << s->train.grad_accum << " x [" << s->data.batch_size << ", "
          << s->data.seq_len << "]" << (world_size > 1 ? cat(" x ", world_size, " ranks") : "") << " = "
          << fixed(static_cast<double>(tokens_of(*s)) * world_size / 1e6, 2) << " M tokens from " << s->data.tokens
          << epochs_of(*s, world_size) << ", lr " << s->train.lr << " (" << s->train.schedule << "), ~" << fixed(memory / 1e9, 2)
          << " GB";
    }
    out << "\n";
  }
  return out.str();
}

// RUN/.lock held (flock) while a run works in the directory; the kernel drops it when the
// process ends, however it ends, so a crash never leaves a stale lock behind.
class RunDirectoryLock {
 public:
  explicit RunDirectoryLock(const std::string& run_dir) : path_(join_path(run_dir, ".lock")) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(path_, ": cannot open the run directory's lock file (", std::strerror(errno), ")");
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char holder[32] = {0};
      const ssize_t n = ::pread(fd_, holder, sizeof(holder) - 1, 0);
      ::close(fd_);
      fail(run_dir, ": another halo run (pid ", n > 0 ? std::string(holder, static_cast<size_t>(n)) : "?",
           ") is working in this run directory; wait for it to end or give another run_dir");
    }
    const std::string pid = std::to_string(::getpid());
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
      log::warn(cat(path_, ": could not record the pid (", std::strerror(errno), ")"));
    }
  }
  ~RunDirectoryLock() { ::close(fd_); }
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

int run_experiment(const Experiment& x, const std::string& stage) {
  bool known = stage == "all";
  for (const char* s : kStages) known |= stage == s;
  if (!known)
    usage_fail("unknown stage '", stage, "' (pretrain, align, select, distill, finetune, tune, report or all)");
  check_inputs(x, stage);
  const Runtime rt = runtime_of(x);
  // Under torchrun every rank trains (data parallel) and scores its share of select's layers,
  // tune's grid and report's windows, prompts and items; the main rank alone holds the lock,
  // writes models and DONE, and the others wait at the barrier that ends each stage.
  ProcessGroup& world = ProcessGroup::world();
  create_directories(x.run_dir);
  std::optional<RunDirectoryLock> lock;
  if (world.is_main()) lock.emplace(x.run_dir);
  // The main rank's view of which stages are done, taken before any stage runs, is every rank's
  // (a max over ranks that the others enter with zeros; it also holds them until the lock is
  // taken). A rank that looked for DONE on its own could find one the main rank wrote after a
  // stage without collectives, skip that stage's closing barrier and fall out of step with the
  // others (seen once as a hang in a 2-rank test).
  std::vector<double> done_before;
  for (const char* s : kStages) done_before.push_back(world.is_main() && stage_done(x, s) ? 1.0 : 0.0);
  done_before = world.max(done_before);
  for (size_t i = 0; i < std::size(kStages); ++i) {
    const char* s = kStages[i];
    if (stage != "all" && stage != s) continue;
    if (!enabled(x, s)) {
      if (stage != "all") fail(x.path, ": the experiment has no '", s, "' section");
      continue;
    }
    if (done_before[i] != 0 && stage == "all") {
      log::info(cat(s, ": done earlier, skipped (", stage_dir(x, s), "/DONE)"));
      continue;
    }
    log::info(cat("== stage ", s));
    auto start = clock_type::now();
    create_directories(stage_dir(x, s));
    const TrainingStageConfig* training = training_stage(x, s);
    // Every stage runs on every rank (each trains on or scores its share).
    if (const int signal = run_stage(x, s, rt)) {
      log::warn(cat(s, ": interrupted; run the same command again to resume"));
      return signal;
    }
    if (world.is_main()) {
      json summary = json::object();
      if (training != nullptr) summary["tokens"] = tokens_of(*training) * world.size();
      mark_done(x, s, summary, std::chrono::duration<double>(clock_type::now() - start).count());
    }
    world.barrier();
  }
  return 0;
}

}  // namespace halo
