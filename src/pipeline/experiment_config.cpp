// Experiment YAML -> Experiment. A YamlSection reads one mapping: typed getters record each key
// they touch, required keys fail when absent, and finish() rejects every key nobody read, so a
// typo ("lerning_rate") is an error naming the file and the full key path, never ignored.
#include <yaml-cpp/yaml.h>

#include <set>
#include <sstream>
#include <utility>

#include "halo/error.h"
#include "halo/experiment.h"
#include "halo/file_system.h"
#include "pipeline/layer_selection.h"

namespace halo {
namespace {

// Tokens in one micro-batch (batch_size x seq_len): 16M tokens of activations fill any GPU many
// times over, so more is a typo (1e9), refused before the plan multiplies it into terabytes.
constexpr int64_t kMaxTokensPerBatch = int64_t{1} << 24;

class YamlSection {
 public:
  YamlSection(YAML::Node node, std::string file, std::string path)
      : node_(std::move(node)), file_(std::move(file)), path_(std::move(path)) {
    if (!node_.IsMap()) fail(file_, ": '", path_.empty() ? "(top level)" : path_, "' must be a mapping of keys");
  }

  bool has(const std::string& key) {
    used_.insert(key);
    return node_[key].IsDefined() && !node_[key].IsNull();
  }

  template <class T>
  T get(const std::string& key, const T& fallback) {
    return has(key) ? convert<T>(key) : fallback;
  }

  template <class T>
  T require(const std::string& key) {
    if (!has(key)) fail(file_, ": missing required key '", name(key), "'");
    return convert<T>(key);
  }

  YamlSection section(const std::string& key) {
    used_.insert(key);
    if (!node_[key].IsDefined() || node_[key].IsNull()) fail(file_, ": missing required section '", name(key), "'");
    return YamlSection(node_[key], file_, name(key));
  }

  void finish() const {
    for (const auto& entry : node_) {
      if (!entry.first.IsScalar()) {
        fail(file_, ": a key in '", path_.empty() ? "(top level)" : path_, "' is a list or a mapping (line ",
             entry.first.Mark().line + 1, "); keys are plain names");
      }
      const std::string key = entry.first.Scalar();
      if (key == "activation_checkpointing") {
        fail(file_, ": key '", name(key), "' is now called 'recompute_activations' (same meaning); rename it");
      }
      if (!used_.count(key)) {
        std::string allowed;
        for (const auto& k : used_) allowed += (allowed.empty() ? "" : ", ") + k;
        fail(file_, ": unknown key '", printable(name(key)), "' (allowed here: ", allowed, ")");
      }
    }
  }

  std::string name(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  // "FILE (SECTION)", for checks that name a key of the section themselves.
  std::string where() const { return file_ + " (" + path_ + ")"; }

  // A mapping of names to strings, in the file's order.
  std::vector<std::pair<std::string, std::string>> string_pairs(const std::string& key) {
    std::vector<std::pair<std::string, std::string>> pairs;
    if (!has(key)) return pairs;
    if (!node_[key].IsMap()) invalid(key, "must be a mapping of names to directories");
    for (const auto& entry : node_[key]) {
      try {
        pairs.emplace_back(entry.first.as<std::string>(), entry.second.as<std::string>());
      } catch (const YAML::Exception&) {
        invalid(key, "must be a mapping of names to directories");
      }
    }
    return pairs;
  }

  [[noreturn]] void invalid(const std::string& key, const std::string& why) const {
    fail(file_, ": key '", name(key), "' ", why);
  }

 private:
  template <class T>
  T convert(const std::string& key) {
    try {
      return node_[key].as<T>();
    } catch (const YAML::Exception&) {
      fail(file_, ": key '", name(key), "' has the wrong type (line ", node_[key].Mark().line + 1, ")");
    }
  }

  YAML::Node node_;
  std::string file_, path_;
  std::set<std::string> used_;
};

DataConfig read_data(YamlSection s) {
  DataConfig d;
  d.tokens = s.require<std::string>("tokens");
  d.seq_len = s.require<int64_t>("seq_len");
  d.batch_size = s.require<int64_t>("batch_size");
  if (d.seq_len < 1) s.invalid("seq_len", "must be positive");
  if (d.batch_size < 1) s.invalid("batch_size", "must be positive");
  if (d.seq_len > kMaxTokensPerBatch) s.invalid("seq_len", cat("must be at most ", kMaxTokensPerBatch, " tokens"));
  if (d.batch_size > kMaxTokensPerBatch / d.seq_len) {
    s.invalid("batch_size", cat("x seq_len = ", d.batch_size, " x ", d.seq_len, " tokens a micro-batch; at most ",
                                kMaxTokensPerBatch, " fit any GPU (use train.grad_accum for larger batches)"));
  }
  s.finish();
  return d;
}

TrainerConfig read_train(YamlSection s, uint64_t seed) {
  TrainerConfig t;
  t.steps = s.require<int64_t>("steps");
  t.lr = s.require<double>("lr");
  t.min_lr = s.get<double>("min_lr", t.min_lr);
  t.schedule = s.get<std::string>("schedule", t.schedule);
  t.warmup_steps = s.get<int64_t>("warmup_steps", t.warmup_steps);
  t.wsd_decay_fraction = s.get<double>("wsd_decay_fraction", t.wsd_decay_fraction);
  t.grad_accum = s.get<int64_t>("grad_accum", t.grad_accum);
  t.beta1 = s.get<double>("beta1", t.beta1);
  t.beta2 = s.get<double>("beta2", t.beta2);
  t.eps = s.get<double>("eps", t.eps);
  t.weight_decay = s.get<double>("weight_decay", t.weight_decay);
  t.grad_clip = s.get<double>("grad_clip", t.grad_clip);
  t.fp32_master = s.get<bool>("fp32_master", t.fp32_master);
  t.nan_policy = s.get<std::string>("nan_policy", t.nan_policy);
  t.max_skipped_fraction = s.get<double>("max_skipped_fraction", t.max_skipped_fraction);
  t.checkpoint_every = s.get<int64_t>("checkpoint_every", t.checkpoint_every);
  t.keep_checkpoints = s.get<int64_t>("keep_checkpoints", t.keep_checkpoints);
  t.resume_fallback = s.get<bool>("resume_fallback", t.resume_fallback);
  t.zero = s.get<int64_t>("zero", t.zero);
  t.seed = seed;
  s.finish();
  if (const auto problem = trainer_config_problem(t)) s.invalid(problem->key, problem->reason);
  return t;
}

void read_training_stage(YamlSection& s, TrainingStageConfig& stage, uint64_t seed) {
  stage.enabled = true;
  stage.data = read_data(s.section("data"));
  stage.train = read_train(s.section("train"), seed);
  stage.recompute_activations = s.get<bool>("recompute_activations", stage.recompute_activations);
  stage.loss_chunk = s.get<int64_t>("loss_chunk", stage.loss_chunk);
  if (stage.loss_chunk < 1) s.invalid("loss_chunk", "must be >= 1 (tokens per slice of the lm-head loss)");
}

ModelConfig read_architecture(YamlSection s) {
  ModelConfig m;
  m.vocab_size = s.get<int64_t>("vocab_size", 0);
  m.hidden_size = s.require<int64_t>("hidden_size");
  m.intermediate_size = s.require<int64_t>("intermediate_size");
  m.num_hidden_layers = s.require<int64_t>("num_hidden_layers");
  m.num_attention_heads = s.require<int64_t>("num_attention_heads");
  m.num_key_value_heads = s.get<int64_t>("num_key_value_heads", m.num_attention_heads);
  m.head_dim = s.get<int64_t>("head_dim", m.num_attention_heads > 0 ? m.hidden_size / m.num_attention_heads : 0);
  m.rope_theta = s.get<double>("rope_theta", 10000.0);
  m.max_position_embeddings = s.get<int64_t>("max_position_embeddings", 32768);
  m.tie_word_embeddings = s.get<bool>("tie_word_embeddings", true);
  m.rms_norm_eps = s.get<double>("rms_norm_eps", 1e-6);
  s.finish();
  ModelConfig checked = m;
  if (checked.vocab_size == 0) checked.vocab_size = 1;  // from the tokenizer, later
  check_model_dimensions(checked, s.where());
  m.mixer_types.assign(m.num_hidden_layers, MixerType::attention);
  checked.mixer_types = m.mixer_types;
  validate_model_config(checked, s.where());
  return m;
}

// Applies one "KEY.PATH=VALUE" to the document, making the mappings on the way.
void apply_override(YAML::Node& root, const std::string& path, const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    usage_fail("--set '", text, "': expected KEY=VALUE, e.g. --set distill.train.steps=200");
  }
  std::vector<std::string> keys;
  std::stringstream parts(text.substr(0, eq));
  for (std::string key; std::getline(parts, key, '.');) {
    if (key.empty()) usage_fail("--set '", text, "': empty key in '", text.substr(0, eq), "'");
    keys.push_back(key);
  }
  YAML::Node value;
  try {
    value = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    usage_fail("--set '", text, "': the value is not valid YAML (", e.msg, ")");
  }
  YAML::Node node = root;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    if (node[keys[i]].IsDefined() && !node[keys[i]].IsNull() && !node[keys[i]].IsMap()) {
      usage_fail("--set '", text, "': '", keys[i], "' in ", path, " is not a mapping");
    }
    if (!node[keys[i]].IsDefined() || node[keys[i]].IsNull()) node[keys[i]] = YAML::Node(YAML::NodeType::Map);
    node.reset(node[keys[i]]);
  }
  node[keys.back()] = value;
}

PositionEncoding parse_position_encoding(YamlSection& s) {
  const std::string name = s.get<std::string>("position_encoding", "hype");
  if (name == "hype") return PositionEncoding::hype;
  if (name == "rope") return PositionEncoding::rope;
  if (name == "nope") return PositionEncoding::nope;
  s.invalid("position_encoding", "must be hype (RoPE in the RNN layers only), rope (everywhere) or nope (nowhere), not '" +
                                     name + "'");
}

}  // namespace

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail(path, ": cannot read the experiment file");
  } catch (const YAML::Exception& e) {
    fail(path, ": not valid YAML (line ", e.mark.line + 1, ": ", e.msg, ")");
  }
  if (!root.IsMap()) fail(path, ": the experiment must be a mapping of keys (run_dir, teacher, stages)");
  for (const std::string& o : overrides) apply_override(root, path, o);
  Experiment x;
  x.path = path;
  YamlSection top(root, path, "");
  x.run_dir = top.require<std::string>("run_dir");
  x.device = top.get<std::string>("device", x.device);
  x.dtype = top.get<std::string>("dtype", x.dtype);
  x.seed = top.get<uint64_t>("seed", x.seed);
  x.teacher = top.get<std::string>("teacher", "");
  x.tokenizer = top.get<std::string>("tokenizer", "");
  x.position_encoding = parse_position_encoding(top);
  if (top.has("pretrain")) {
    YamlSection s = top.section("pretrain");
    read_training_stage(s, x.pretrain, x.seed);
    x.pretrain.model = read_architecture(s.section("model"));
    x.pretrain.init_std = s.get<double>("init_std", x.pretrain.init_std);
    if (!(x.pretrain.init_std > 0 && x.pretrain.init_std < 10)) s.invalid("init_std", "must be in (0, 10)");
    s.finish();
  }
  if (top.has("align")) {
    YamlSection s = top.section("align");
    read_training_stage(s, x.align, x.seed);
    s.finish();
  }
  if (top.has("select")) {
    YamlSection s = top.section("select");
    SelectConfig& c = x.select;
    c.enabled = true;
    c.criterion = s.get<std::string>("criterion", c.criterion);
    try {
      parse_selection_criterion(c.criterion);
    } catch (const Error& e) {
      s.invalid("criterion", e.what());
    }
    if (s.has("keep")) {
      c.keep = s.get<int64_t>("keep", c.keep);
      if (c.keep < 1) s.invalid("keep", "must be >= 1 (leave it out for a quarter of the layers)");
    }
    c.attention_layers = s.get<std::vector<int64_t>>("attention_layers", {});
    if (s.has("niah")) {
      YamlSection n = s.section("niah");
      c.niah_length = n.get<int64_t>("length", c.niah_length);
      c.niah_samples = n.get<int64_t>("samples", c.niah_samples);
      c.niah_depths = n.get<std::vector<double>>("depths", c.niah_depths);
      c.filler = n.require<std::string>("filler");
      n.finish();
      if (c.niah_length < 16 || c.niah_length > kMaxTokensPerBatch) n.invalid("length", "must be 16 to 16M tokens");
      if (c.niah_samples < 1 || c.niah_samples > 10000) n.invalid("samples", "must be 1 to 10000");
      if (c.niah_depths.empty()) n.invalid("depths", "must list at least one depth");
      for (double d : c.niah_depths) {
        if (!(d >= 0 && d <= 1)) n.invalid("depths", "depths must be in [0, 1]");
      }
    }
    if (s.has("commonsense")) {
      YamlSection m = s.section("commonsense");
      c.mc_task = m.get<std::string>("task", "");
      c.mc_labels = m.get<std::string>("labels", "");
      c.mc_limit = m.get<int64_t>("limit", c.mc_limit);
      c.heldout_text = m.get<std::string>("text", "");
      c.heldout_tokens = m.get<int64_t>("tokens", c.heldout_tokens);
      m.finish();
      if (c.mc_limit < 0) m.invalid("limit", "must be >= 0 (0: every item)");
      if (c.heldout_tokens < 16 || c.heldout_tokens > kMaxTokensPerBatch) m.invalid("tokens", "must be 16 to 16M");
      if (c.mc_task.empty() == c.heldout_text.empty()) {
        fail(path,
             ": select.commonsense needs exactly one of 'task' (multiple-choice JSONL) or 'text' (held-out loss)");
      }
    }
    if (c.attention_layers.empty() && c.criterion != "even" &&
        (c.filler.empty() || (c.mc_task.empty() && c.heldout_text.empty()))) {
      fail(path, ": select needs 'niah' and 'commonsense' sections (or attention_layers, or criterion: even)");
    }
    s.finish();
  }
  if (top.has("distill")) {
    YamlSection s = top.section("distill");
    read_training_stage(s, x.distill, x.seed);
    x.distill.attn_output_gate = s.get<bool>("attn_output_gate", true);
    s.finish();
  }
  if (top.has("finetune")) {
    YamlSection s = top.section("finetune");
    read_training_stage(s, x.finetune, x.seed);
    s.finish();
  }
  if (top.has("tune")) {
    YamlSection s = top.section("tune");
    TuneConfig& t = x.tune;
    t.enabled = true;
    t.text = s.require<std::string>("text");
    t.filler = s.get<std::string>("filler", t.text);
    t.grid = s.get<std::vector<double>>("grid", t.grid);
    t.lengths_factors = s.get<std::vector<int64_t>>("context_factors", t.lengths_factors);
    t.niah_samples = s.get<int64_t>("niah_samples", t.niah_samples);
    t.niah_tolerance = s.get<double>("niah_tolerance", t.niah_tolerance);
    t.ppl_tokens = s.get<int64_t>("ppl_tokens", t.ppl_tokens);
    t.ppl_tail = s.get<int64_t>("ppl_tail", t.ppl_tail);
    s.finish();
    if (t.grid.empty()) s.invalid("grid", "must list at least one value of a");
    for (double a : t.grid) {
      if (!(a > 1)) s.invalid("grid", "values of a must be > 1");
    }
    if (t.lengths_factors.empty()) s.invalid("context_factors", "must list at least one factor");
    for (int64_t f : t.lengths_factors) {
      if (f < 1) s.invalid("context_factors", "factors must be >= 1");
    }
    if (t.niah_samples < 1 || t.niah_samples > 10000) s.invalid("niah_samples", "must be 1 to 10000");
    if (!(t.niah_tolerance >= 0 && t.niah_tolerance <= 1)) s.invalid("niah_tolerance", "must be in [0, 1]");
    if (t.ppl_tokens < 0) s.invalid("ppl_tokens", "must be >= 0");
    if (t.ppl_tail < 0) s.invalid("ppl_tail", "must be >= 0 (0: score whole windows)");
  }
  if (top.has("report")) {
    YamlSection s = top.section("report");
    ReportConfig& r = x.report;
    r.enabled = true;
    r.text = s.require<std::string>("text");
    r.lengths_factors = s.get<std::vector<int64_t>>("context_factors", r.lengths_factors);
    r.contexts = s.get<std::vector<int64_t>>("contexts", {});
    r.ppl_tokens = s.get<int64_t>("ppl_tokens", r.ppl_tokens);
    r.ppl_tail = s.get<int64_t>("ppl_tail", r.ppl_tail);
    r.filler = s.get<std::string>("filler", r.text);
    r.niah_lengths = s.get<std::vector<int64_t>>("niah_lengths", {});
    r.niah_depths = s.get<std::vector<double>>("niah_depths", r.niah_depths);
    r.niah_samples = s.get<int64_t>("niah_samples", r.niah_samples);
    if (s.has("commonsense")) {
      YamlSection m = s.section("commonsense");
      r.mc_task = m.require<std::string>("task");
      r.mc_labels = m.get<std::string>("labels", "");
      r.mc_limit = m.get<int64_t>("limit", r.mc_limit);
      m.finish();
      if (r.mc_limit < 0) m.invalid("limit", "must be >= 0 (0: every item)");
    }
    r.decode_tokens = s.get<int64_t>("decode_tokens", r.decode_tokens);
    r.decode_contexts = s.get<std::vector<int64_t>>("decode_contexts", {});
    r.compare = s.string_pairs("compare");
    s.finish();
    for (int64_t f : r.lengths_factors) {
      if (f < 1) s.invalid("context_factors", "factors must be >= 1");
    }
    for (const auto& [key, list] : {std::pair<const char*, const std::vector<int64_t>*>{"contexts", &r.contexts},
                                    {"niah_lengths", &r.niah_lengths},
                                    {"decode_contexts", &r.decode_contexts}}) {
      for (int64_t n : *list) {
        if (n < 2 || n > (int64_t{1} << 24)) s.invalid(key, "values must be 2 to 16M tokens");
      }
    }
    for (double d : r.niah_depths) {
      if (!(d >= 0 && d <= 1)) s.invalid("niah_depths", "depths must be in [0, 1]");
    }
    if (r.niah_depths.empty()) s.invalid("niah_depths", "must list at least one depth");
    if (r.ppl_tokens < 1) s.invalid("ppl_tokens", "must be >= 1");
    if (r.ppl_tail < 0) s.invalid("ppl_tail", "must be >= 0");
    if (r.niah_samples < 1 || r.niah_samples > 10000) s.invalid("niah_samples", "must be 1 to 10000");
    if (r.decode_tokens < 1) s.invalid("decode_tokens", "must be >= 1");
    for (const auto& [name, dir] : r.compare) {
      if (name == "teacher" || name == "student") s.invalid("compare", "names 'teacher' and 'student' are taken");
    }
  }
  top.finish();
  if (x.teacher.empty() && !x.pretrain.enabled)
    fail(path, ": give 'teacher' (a Qwen3, Llama or Qwen2 directory) or a 'pretrain' stage");
  if (!x.teacher.empty() && x.pretrain.enabled) fail(path, ": give either 'teacher' or a 'pretrain' stage, not both");
  if (x.pretrain.enabled && x.tokenizer.empty()) fail(path, ": a 'pretrain' stage needs 'tokenizer'");
  return x;
}

}  // namespace halo
