// Stage-0 weight transfer. New tensors are drawn on the CPU from one seeded generator in a
// fixed order (layer by layer), so a conversion is reproducible bit for bit.
#include "halo/hypenet_conversion.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "halo/error.h"

namespace halo {

std::vector<int64_t> preset_attention_layers(const std::string& preset, const ModelConfig& teacher) {
  struct Preset {
    const char* name;
    const char* teacher;
    int64_t layers;
    std::vector<int64_t> attention;
  };
  static const std::vector<Preset> presets = {
      {"hypenet-2b", "Qwen3-1.7B", 28, {2, 3, 6, 8, 9, 21, 25}},
      {"hypenet-5b", "Qwen3-4B", 36, {0, 1, 7, 14, 15, 22, 24, 31, 33}},
      {"hypenet-9b", "Qwen3-8B", 36, {1, 2, 4, 6, 7, 10, 24, 33, 34}},
  };
  for (const auto& p : presets) {
    if (preset != p.name) continue;
    if (teacher.num_hidden_layers != p.layers) {
      usage_fail("--preset ", preset, " is for ", p.teacher, " (", p.layers, " layers) but the teacher has ",
                 teacher.num_hidden_layers, " layers; give --attn-layers instead");
    }
    return p.attention;
  }
  usage_fail("--preset ", preset, ": unknown preset; use hypenet-2b, hypenet-5b or hypenet-9b");
}

std::vector<int64_t> parse_layer_list(const std::string& text, int64_t num_layers) {
  std::vector<int64_t> layers;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) usage_fail("--attn-layers: '", item, "' is not a layer index");
    if (v < 0 || v >= num_layers) usage_fail("--attn-layers: layer ", v, " is outside 0..", num_layers - 1);
    if (std::find(layers.begin(), layers.end(), v) != layers.end())
      usage_fail("--attn-layers: layer ", v, " is listed twice");
    layers.push_back(v);
  }
  std::sort(layers.begin(), layers.end());
  return layers;
}

ModelConfig hypenet_config(const ModelConfig& teacher, const std::vector<int64_t>& attention_layers) {
  if (teacher.is_hypenet()) fail("the teacher is already a HypeNet; convert a Qwen3, Llama or Qwen2 model");
  ModelConfig c = teacher;
  c.model_type = "hypenet";
  c.mixer_types.assign(teacher.num_hidden_layers, MixerType::lightning);
  for (int64_t l : attention_layers) c.mixer_types.at(l) = MixerType::attention;
  c.attn_use_rope = false;
  c.attn_use_output_gate = true;
  c.attn_logits_scaling_a.reset();
  c.attn_logits_scaling_const.reset();
  c.expand_kv_proj = true;
  c.lightning_nh = teacher.num_attention_heads;
  c.lightning_nkv = teacher.num_attention_heads;
  c.lightning_head_dim = teacher.head_dim;
  c.max_position_embeddings = std::max<int64_t>(teacher.max_position_embeddings, 1048576);
  validate_model_config(c, "converted config");
  return c;
}

namespace {

// [kv*d, in] -> [kv*g*d, in] (or a bias [kv*d] -> [kv*g*d]): each KV head's rows repeated g
// times, in place of its group (g = 1 keeps GQA: lightning_nkv == the teacher's KV heads).
// Undefined stays undefined.
at::Tensor expand_kv(const at::Tensor& w, int64_t kv_heads, int64_t groups) {
  if (!w.defined()) return w;
  const int64_t d = w.size(0) / kv_heads;
  std::vector<int64_t> heads = w.sizes().vec(), expanded = w.sizes().vec();
  heads[0] = d;
  heads.insert(heads.begin(), kv_heads);
  expanded[0] = kv_heads * groups * d;
  return w.view(heads).repeat_interleave(groups, 0).reshape(expanded);
}

at::Tensor clone_or_undefined(const at::Tensor& t) {
  return t.defined() ? t.clone() : t;
}

// PyTorch's default nn.Linear init: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)).
at::Tensor default_linear_init(int64_t out, int64_t in, at::Generator& generator) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  return at::empty({out, in}, at::kFloat).uniform_(-bound, bound, generator);
}

}  // namespace

MixerWeights lightning_from_attention(const ModelConfig& teacher, const ModelConfig& student, const MixerWeights& a,
                                      at::Generator& generator) {
  if (student.lightning_nh != teacher.num_attention_heads || student.lightning_head_dim != teacher.head_dim) {
    fail("stage 0 needs lightning_nh == num_attention_heads and lightning_head_dim == head_dim");
  }
  const int64_t groups = student.lightning_nkv / teacher.num_key_value_heads;
  if (groups < 1 || student.lightning_nkv % teacher.num_key_value_heads != 0) {
    fail("stage 0 needs lightning_nkv to be a multiple of the teacher's num_key_value_heads");
  }
  const int64_t inner = teacher.num_attention_heads * teacher.head_dim;
  MixerWeights m;
  m.q_proj = a.q_proj.clone();
  m.k_proj = expand_kv(a.k_proj, teacher.num_key_value_heads, groups);
  m.v_proj = expand_kv(a.v_proj, teacher.num_key_value_heads, groups);
  m.o_proj = a.o_proj.clone();
  m.q_bias = clone_or_undefined(a.q_bias);
  m.k_bias = expand_kv(a.k_bias, teacher.num_key_value_heads, groups);
  m.v_bias = expand_kv(a.v_bias, teacher.num_key_value_heads, groups);
  m.o_bias = clone_or_undefined(a.o_bias);
  // HypeNet normalizes q and k; a teacher without q/k norms (Llama, Qwen2) gives gains of 1.
  m.q_norm = a.q_norm.defined() ? a.q_norm.clone() : at::ones({teacher.head_dim}, a.q_proj.options());
  m.k_norm = a.k_norm.defined() ? a.k_norm.clone() : at::ones({teacher.head_dim}, a.q_proj.options());
  m.z_proj = default_linear_init(inner, teacher.hidden_size, generator).to(a.q_proj.options());
  m.o_norm = at::ones({inner}, a.q_proj.options());
  return m;
}

CausalLM convert_to_hypenet(CausalLM& teacher, const ModelConfig& student_config, uint64_t seed) {
  const ModelConfig& tc = teacher.config();
  CausalLM student(student_config);
  at::Generator generator = at::detail::createCPUGenerator(seed);
  student.embed_tokens() = teacher.embed_tokens().clone();
  student.final_norm() = teacher.final_norm().clone();
  if (!tc.tie_word_embeddings) student.lm_head() = teacher.lm_head().clone();
  for (int64_t i = 0; i < tc.num_hidden_layers; ++i) {
    const LayerWeights& t = teacher.layer(i);
    LayerWeights& s = student.layer(i);
    s.input_layernorm = t.input_layernorm.clone();
    s.post_attention_layernorm = t.post_attention_layernorm.clone();
    s.mlp = {t.mlp.gate_proj.clone(),           t.mlp.up_proj.clone(),
             t.mlp.down_proj.clone(),           clone_or_undefined(t.mlp.gate_bias),
             clone_or_undefined(t.mlp.up_bias), clone_or_undefined(t.mlp.down_bias)};
    if (student_config.mixer_types[i] == MixerType::attention) {
      s.mixer = cloned(t.mixer);  // attention layers keep what the teacher's have (q/k norms, biases)
      if (student_config.attn_use_output_gate) {
        s.mixer.o_gate = at::empty({tc.num_attention_heads * tc.head_dim, tc.hidden_size}, at::kFloat)
                             .normal_(0.0, 0.02, generator)
                             .to(t.mixer.q_proj.options());
      }
    } else {
      s.mixer = lightning_from_attention(tc, student_config, t.mixer, generator);
    }
  }
  student.to(teacher.device(), teacher.dtype());
  return student;
}

}  // namespace halo
