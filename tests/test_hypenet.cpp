// HypeNet invariants: an all-attention HypeNet with RoPE and no gate is the Qwen3 teacher;
// stage 0 transfers weights exactly as ../shared/docs/METHOD.md §3 says; convert -> save -> load is
// bit-identical; prefill-then-decode equals one forward for mixed models; left-padded batched
// generation equals generating each prompt alone; invalid configs give clear errors.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "halo/causal_lm.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/generation.h"
#include "halo/hypenet_conversion.h"
#include "halo/inference_cache.h"
#include "halo/model_directory.h"
#include "halo/safetensors.h"
#include "halo/tensor_io.h"
#include "model/mixers.h"
#include "ops/rope.h"
#include "test_support.h"

namespace halo {
namespace {

using nlohmann::json;

double relative_max_error(const at::Tensor& got, const at::Tensor& want) {
  return (got.cpu().to(at::kDouble) - want.cpu().to(at::kDouble)).abs().max().item<double>() /
         want.cpu().to(at::kDouble).abs().max().item<double>();
}

json fixture_config() {
  return json::parse(read_file(test::fixture("qwen3-tiny") + "/config.json"));
}

// A directory holding the fixture's weights under a HypeNet config.
std::string hypenet_dir(json config) {
  const std::string dir = test::make_temp_dir();
  copy_file_atomic(test::fixture("qwen3-tiny") + "/model.safetensors", dir + "/model.safetensors");
  write_file_atomic(dir + "/config.json", config.dump());
  return dir;
}

TEST(HypeNet, AllAttentionWithRopeAndNoGateIsTheTeacher) {
  json c = fixture_config();
  c["model_type"] = "hypenet";
  c["mixer_types"] = {"attn", "attn", "attn", "attn"};
  c["attn_use_rope"] = true;
  c["attn_use_output_gate"] = false;
  CausalLM model = load_causal_lm(hypenet_dir(c), at::kFloat, test::device());
  EXPECT_TRUE(model.config().is_hypenet());
  auto ref = load_tensors(test::fixture("qwen3-tiny") + "/reference.safetensors");
  c10::InferenceMode guard;
  EXPECT_LE(relative_max_error(model.forward(ref.at("input_ids")), ref.at("logits")), 1e-4);
}

CausalLM tiny_teacher(at::ScalarType dtype = at::kFloat) {
  return load_causal_lm(test::fixture("qwen3-tiny"), dtype, test::device());
}

TEST(Stage0, TransfersWeightsAsTheMethodSays) {
  CausalLM teacher = tiny_teacher();
  const ModelConfig sc = hypenet_config(teacher.config(), {1, 3});
  CausalLM student = convert_to_hypenet(teacher, sc, 7);
  ASSERT_EQ(sc.mixer_types[0], MixerType::lightning);
  ASSERT_EQ(sc.mixer_types[1], MixerType::attention);
  const MixerWeights& t = teacher.layer(0).mixer;
  const MixerWeights& s = student.layer(0).mixer;
  EXPECT_TRUE(at::equal(s.q_proj, t.q_proj));
  EXPECT_TRUE(at::equal(s.o_proj, t.o_proj));
  EXPECT_TRUE(at::equal(s.q_norm, t.q_norm));
  EXPECT_TRUE(at::equal(s.k_norm, t.k_norm));
  // 4 heads from 2 KV heads of 32 rows: new head i <- KV head floor(i / 2).
  for (int64_t head = 0; head < 4; ++head) {
    EXPECT_TRUE(at::equal(s.k_proj.narrow(0, head * 32, 32), t.k_proj.narrow(0, (head / 2) * 32, 32))) << head;
    EXPECT_TRUE(at::equal(s.v_proj.narrow(0, head * 32, 32), t.v_proj.narrow(0, (head / 2) * 32, 32))) << head;
  }
  EXPECT_TRUE(at::equal(s.o_norm, at::ones({128}, s.o_norm.options())));
  EXPECT_EQ(s.z_proj.sizes(), (std::vector<int64_t>{128, 64}));
  EXPECT_LE(s.z_proj.abs().max().item<double>(), 1.0 / 8.0);  // U(-1/sqrt(64), 1/sqrt(64))
  EXPECT_GT(s.z_proj.std().item<double>(), 0.05);
  // Kept attention layers: teacher weights plus an output gate ~ N(0, 0.02).
  EXPECT_TRUE(at::equal(student.layer(1).mixer.k_proj, teacher.layer(1).mixer.k_proj));
  EXPECT_NEAR(student.layer(1).mixer.o_gate.std().item<double>(), 0.02, 0.002);
  EXPECT_TRUE(at::equal(student.layer(2).mlp.down_proj, teacher.layer(2).mlp.down_proj));
  EXPECT_FALSE(sc.attn_use_rope);
  // Same seed, same weights; another seed, other weights.
  CausalLM again = convert_to_hypenet(teacher, sc, 7);
  EXPECT_TRUE(at::equal(again.layer(0).mixer.z_proj, s.z_proj));
  CausalLM other = convert_to_hypenet(teacher, sc, 8);
  EXPECT_FALSE(at::equal(other.layer(0).mixer.z_proj, s.z_proj));
}

TEST(Stage0, ConvertSaveLoadIsBitIdenticalAndForwardDeterministic) {
  CausalLM teacher = tiny_teacher();
  CausalLM student = convert_to_hypenet(teacher, hypenet_config(teacher.config(), {2}), 0);
  const std::string dir = test::make_temp_dir() + "/student";
  SaveOptions save;
  save.dtype = at::kFloat;
  save.max_shard_bytes = 300'000;  // forces shards
  save_model_directory(student, dir, save);
  EXPECT_TRUE(path_exists(dir + "/model.safetensors.index.json"));
  CausalLM loaded = load_causal_lm(dir, at::kFloat, test::device());
  auto a = student.named_parameters();
  auto b = loaded.named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(at::equal(a[i].second->cpu(), b[i].second->cpu())) << a[i].first;
  }
  const json config = json::parse(read_file(dir + "/config.json"));
  EXPECT_EQ(config["model_type"], "hypenet");
  EXPECT_EQ(config["architectures"][0], "HypeNetForCausalLM");
  EXPECT_EQ(config["mixer_types"], json({"lightning-attn", "lightning-attn", "attn", "lightning-attn"}));
  EXPECT_EQ(config["attn_use_rope"], false);
  EXPECT_EQ(config["lightning_nh"], 4);
  c10::InferenceMode guard;
  at::Tensor ids = at::randint(0, 1024, {2, 19}, at::kLong);
  EXPECT_TRUE(at::equal(loaded.forward(ids), loaded.forward(ids)));
  EXPECT_TRUE(at::equal(loaded.forward(ids), student.forward(ids)));
}

TEST(HypeNet, PrefillThenDecodeEqualsOneForward) {
  CausalLM teacher = tiny_teacher();
  ModelConfig sc = hypenet_config(teacher.config(), {0, 2});
  sc.attn_logits_scaling_a = 20.0;  // HyPE on, so positions must line up across calls
  CausalLM model = convert_to_hypenet(teacher, sc, 0);
  c10::InferenceMode guard;
  at::Tensor ids = at::randint(0, 1024, {2, 41}, at::kLong).to(model.device());
  for (int64_t chunk : {64, 8, 5}) {
    model.set_lightning_impl(LightningImpl::chunked, chunk);
    at::Tensor full = model.forward(ids);
    InferenceCache cache(4);
    std::vector<at::Tensor> parts{model.forward(ids.narrow(1, 0, 17), &cache),
                                  model.forward(ids.narrow(1, 17, 11), &cache)};
    for (int64_t t = 28; t < 41; ++t) parts.push_back(model.forward(ids.narrow(1, t, 1), &cache));
    EXPECT_LE(relative_max_error(at::cat(parts, 1), full), 1e-5) << "chunk " << chunk;
  }
  model.set_lightning_impl(LightningImpl::naive);
  at::Tensor naive = model.forward(ids);
  model.set_lightning_impl(LightningImpl::chunked, 16);
  EXPECT_LE(relative_max_error(model.forward(ids), naive), 1e-5);
}

TEST(HypeNet, LeftPaddedBatchEqualsEachPromptAlone) {
  CausalLM teacher = tiny_teacher(at::kDouble);
  ModelConfig sc = hypenet_config(teacher.config(), {1});
  sc.attn_logits_scaling_a = 50.0;
  CausalLM model = convert_to_hypenet(teacher, sc, 3);
  std::vector<std::vector<int64_t>> prompts = {{5, 9, 300, 17, 2, 44, 8, 1000, 3}, {77, 12}, {400, 401, 402, 403, 404}};
  GenerationOptions options;
  options.max_new_tokens = 12;
  options.prefill_chunk = 4;
  auto batched = generate_batch(model, prompts, options);
  for (size_t r = 0; r < prompts.size(); ++r) {
    EXPECT_EQ(batched[r], generate(model, prompts[r], options)) << "row " << r;
  }
  // Logits too, not only the argmax: padding must change nothing.
  c10::InferenceMode guard;
  InferenceCache cache(4);
  cache.set_left_padding(at::tensor(std::vector<int64_t>{0, 7}, at::kLong));
  at::Tensor batch =
      at::tensor(std::vector<int64_t>{5, 9, 300, 17, 2, 44, 8, 1000, 3, 0, 0, 0, 0, 0, 0, 0, 77, 12}, at::kLong)
          .view({2, 9});
  at::Tensor out = model.forward(batch, &cache);
  at::Tensor alone = model.forward(at::tensor(std::vector<int64_t>{77, 12}, at::kLong).view({1, 2}));
  EXPECT_LE(relative_max_error(out.narrow(0, 1, 1).narrow(1, 7, 2), alone), 1e-10);
}

void expect_config_error(json c, const std::string& needle) {
  const std::string dir = test::make_temp_dir();
  write_file_atomic(dir + "/config.json", c.dump());
  try {
    load_model_config(dir);
    ADD_FAILURE() << "no error for " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

// A HypeNet directory as the reference's own code saves it (HypeNetConfig.to_json_string of
// transformers 4.57: every key of configuration_hypenet.py, an empty rope_parameters beside
// rope_theta, dtype and torch_dtype) loads into the same model halo saved.
TEST(HypeNet, ReferenceShapedConfigLoadsTheSameModel) {
  CausalLM teacher = tiny_teacher();
  ModelConfig config = hypenet_config(teacher.config(), {1});
  config.attn_logits_scaling_a = 500.0;
  CausalLM student = convert_to_hypenet(teacher, config, 0);
  const std::string dir = test::make_temp_dir() + "/student";
  SaveOptions save;
  save.dtype = at::kFloat;
  save_model_directory(student, dir, save);
  const json ours = json::parse(read_file(dir + "/config.json"));
  json ref = {{"architectures", {"HypeNetForCausalLM"}},
              {"model_type", "hypenet"},
              {"vocab_size", ours["vocab_size"]},
              {"hidden_size", ours["hidden_size"]},
              {"intermediate_size", ours["intermediate_size"]},
              {"num_hidden_layers", ours["num_hidden_layers"]},
              {"num_attention_heads", ours["num_attention_heads"]},
              {"num_key_value_heads", ours["num_key_value_heads"]},
              {"head_dim", ours["head_dim"]},
              {"mixer_types", ours["mixer_types"]},
              {"hidden_act", "silu"},
              {"max_position_embeddings", 1048576},
              {"initializer_range", 0.02},
              {"rms_norm_eps", ours["rms_norm_eps"]},
              {"use_cache", true},
              {"tie_word_embeddings", ours["tie_word_embeddings"]},
              {"rope_theta", ours["rope_theta"]},
              {"rope_scaling", nullptr},
              {"rope_parameters", json::object()},
              {"attention_bias", false},
              {"use_sliding_window", false},
              {"sliding_window", 4096},
              {"max_window_layers", 28},
              {"attention_dropout", 0.0},
              {"gdn_use_short_conv", false},
              {"gdn_nh", 4},
              {"mamba2_n_groups", 1},
              {"lightning_use_qk_norm", true},
              {"lightning_use_output_gate", true},
              {"lightning_use_output_norm", true},
              {"lightning_use_rope", true},
              {"lightning_rope_scaling", nullptr},
              {"lightning_nh", ours["lightning_nh"]},
              {"lightning_nkv", ours["lightning_nkv"]},
              {"lightning_head_dim", ours["lightning_head_dim"]},
              {"lightning_scale", "1/sqrt(d)"},
              {"lightning_use_short_conv", false},
              {"lightning_conv_size", 4},
              {"kda_head_dim", 32},
              {"kda_use_conv", false},
              {"expand_kv_proj", true},
              {"loss_fn", "kl_div"},
              {"attn_use_rope", false},
              {"fused_ce_loss", true},
              {"shift_labels", true},
              {"attn_logits_scaling", "hype 500"},
              {"attn_use_output_gate", true},
              {"rand_init", false},
              {"bos_token_id", nullptr},
              {"eos_token_id", ours["eos_token_id"]},
              {"dtype", "float32"},
              {"torch_dtype", "float32"},
              {"transformers_version", "4.57.1"}};
  write_file_atomic(dir + "/config.json", ref.dump(2));
  CausalLM loaded = load_causal_lm(dir, at::kFloat, test::device());
  c10::InferenceMode guard;
  at::Tensor ids = at::randint(0, 1024, {1, 23}, at::kLong);
  EXPECT_TRUE(at::equal(loaded.forward(ids).cpu(), student.forward(ids).cpu()));
  // What halo writes has the reference's keys and the safetensors "format" metadata.
  EXPECT_EQ(ours["initializer_range"], 0.02);
  EXPECT_EQ(ours["attention_dropout"], 0.0);
  EXPECT_EQ(ours["lightning_conv_size"], 4);
  EXPECT_EQ(SafetensorsFile(dir + "/model.safetensors").metadata().at("format"), "pt");

  // Keys left out take configuration_hypenet.py's defaults.
  json sparse = ref;
  for (const char* key : {"mixer_types", "attn_use_rope", "attn_use_output_gate", "expand_kv_proj", "lightning_nkv",
                          "lightning_use_qk_norm", "lightning_use_output_norm", "lightning_use_output_gate"}) {
    sparse.erase(key);
  }
  const ModelConfig d = parse_model_config(sparse.dump(), "sparse/config.json");
  EXPECT_EQ(d.mixer_types, std::vector<MixerType>(4, MixerType::attention));
  EXPECT_TRUE(d.attn_use_rope);
  EXPECT_FALSE(d.attn_use_output_gate);
  EXPECT_FALSE(d.expand_kv_proj);
  EXPECT_EQ(d.lightning_nkv, d.num_key_value_heads);
  EXPECT_FALSE(d.lightning_use_qk_norm || d.lightning_use_output_norm || d.lightning_use_output_gate);
}

TEST(HypeNet, InvalidConfigsGiveClearErrors) {
  json c = fixture_config();
  c["model_type"] = "hypenet";
  c["mixer_types"] = {"attn", "lightning-attn", "lightning-attn", "lightning-attn"};
  json bad = c;
  bad["mixer_types"][2] = "mamba";
  expect_config_error(bad, "mamba");
  bad = c;
  bad["mixer_types"] = {"attn", "attn"};
  expect_config_error(bad, "mixer_types has 2 entries");
  bad = c;
  bad["lightning_nkv"] = 3;
  expect_config_error(bad, "lightning_nkv");
  bad = c;
  bad["attn_logits_scaling"] = "hyper 5";
  expect_config_error(bad, "attn_logits_scaling");
  bad = c;
  bad["lightning_scale"] = "1/d^2";
  expect_config_error(bad, "lightning_scale");
  bad = c;
  bad["lightning_use_short_conv"] = true;
  expect_config_error(bad, "short_conv");
  bad = c;
  bad["num_key_value_heads"] = 3;
  expect_config_error(bad, "num_key_value_heads");
  EXPECT_THROW(parse_layer_list("1,x", 4), Error);
  EXPECT_THROW(parse_layer_list("4", 4), Error);
  EXPECT_THROW(parse_layer_list("1,1", 4), Error);
  EXPECT_THROW(preset_attention_layers("hypenet-2b", load_model_config(test::fixture("qwen3-tiny"))), Error);
}

TEST(HypeNet, ScalingStringsParse) {
  ModelConfig c;
  parse_attn_logits_scaling("hype 500", c, "x");
  EXPECT_EQ(c.attn_logits_scaling_a.value(), 500.0);
  parse_attn_logits_scaling("hype", c, "x");
  EXPECT_EQ(c.attn_logits_scaling_a.value(), 362.0);
  EXPECT_THROW(parse_attn_logits_scaling("hype 1", c, "x"), Error);
}

}  // namespace
}  // namespace halo

namespace halo {
namespace {

// ../shared/docs/METHOD.md §2.3 written out token by token in float64: the lightning layer's wiring (norms,
// RoPE, GQA repeat, decay, one RMSNorm over heads, gate) checked against the model's mixer.
at::Tensor lightning_layer_by_the_book(const ModelConfig& c, const MixerWeights& w, const at::Tensor& x) {
  const int64_t t_len = x.size(1), nh = c.lightning_nh, nkv = c.lightning_nkv, d = c.lightning_head_dim;
  auto rms = [&](const at::Tensor& v, const at::Tensor& weight) {
    return weight * (v / at::sqrt(v.pow(2).mean(-1, true) + c.rms_norm_eps));
  };
  std::vector<double> slopes = alibi_slopes(nh);
  std::vector<at::Tensor> outputs;
  std::vector<at::Tensor> state(nh);
  for (int64_t h = 0; h < nh; ++h) state[h] = at::zeros({d, d}, x.options());
  for (int64_t t = 0; t < t_len; ++t) {
    at::Tensor xt = x[0][t];
    std::vector<at::Tensor> heads;
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t kvh = h / (nh / nkv);
      at::Tensor q = at::mv(w.q_proj.narrow(0, h * d, d), xt);
      at::Tensor k = at::mv(w.k_proj.narrow(0, kvh * d, d), xt);
      at::Tensor v = at::mv(w.v_proj.narrow(0, kvh * d, d), xt);
      if (c.lightning_use_qk_norm) {
        q = rms(q, w.q_norm);
        k = rms(k, w.k_norm);
      }
      if (c.lightning_use_rope) {
        for (at::Tensor* vec : {&q, &k}) {
          at::Tensor rotated = at::empty_like(*vec);
          for (int64_t i = 0; i < d / 2; ++i) {
            const double freq = t / std::pow(c.rope_theta, 2.0 * i / d);
            const double a = (*vec)[i].item<double>(), b = (*vec)[i + d / 2].item<double>();
            rotated[i] = a * std::cos(freq) - b * std::sin(freq);
            rotated[i + d / 2] = b * std::cos(freq) + a * std::sin(freq);
          }
          *vec = rotated;
        }
      }
      state[h] = std::exp(-slopes[h]) * state[h] + at::outer(k, v);
      heads.push_back(c.lightning_scale_value() * at::mv(state[h].t(), q));
    }
    at::Tensor o = at::cat(heads);
    if (c.lightning_use_output_norm) o = rms(o, w.o_norm);
    if (c.lightning_use_output_gate) o = o * at::sigmoid(at::mv(w.z_proj, xt));
    outputs.push_back(at::mv(w.o_proj, o));
  }
  return at::stack(outputs).unsqueeze(0);
}

class LightningOptions : public ::testing::TestWithParam<int> {};

TEST_P(LightningOptions, MixerMatchesTheMethodTokenByToken) {
  CausalLM teacher = load_causal_lm(test::fixture("qwen3-tiny"), at::kDouble, at::kCPU);
  ModelConfig c = hypenet_config(teacher.config(), {});
  switch (GetParam()) {
    case 1:  // GQA kept, no norms, no gate, 1/d scale
      c.expand_kv_proj = false;
      c.lightning_nkv = teacher.config().num_key_value_heads;
      c.lightning_use_qk_norm = c.lightning_use_output_norm = c.lightning_use_output_gate = false;
      c.lightning_scale = "1/d";
      break;
    case 2:  // no RoPE, scale 1
      c.lightning_use_rope = false;
      c.lightning_scale = "1";
      break;
    default:
      break;
  }
  CausalLM model = convert_to_hypenet(teacher, c, 5);
  for (auto& [name, tensor] : model.named_parameters()) *tensor = *tensor + 0.05 * at::randn_like(*tensor);
  at::Tensor x = at::randn({1, 6, 64}, at::kDouble);
  ForwardContext ctx;
  ctx.length = 6;
  at::Tensor pos = at::arange(6, at::kDouble).view({1, 1, 6});
  std::tie(ctx.light_cos, ctx.light_sin) = rope_tables(
      pos, rope_inverse_frequency_tensor(rope_inverse_frequencies(c, 32), at::kDouble, at::kCPU), 1.0, at::kDouble);
  at::Tensor got = lightning_mixer(c, model.layer(0).mixer, x, alibi_decays(4, at::kDouble), ctx, nullptr, 0);
  at::Tensor want = lightning_layer_by_the_book(c, model.layer(0).mixer, x);
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-10 * want.abs().max().item<double>());
  // The option set decides which tensors exist, and a save/load round trip keeps them.
  const std::string dir = test::make_temp_dir() + "/variant";
  SaveOptions save;
  save.dtype = at::kDouble;
  save_model_directory(model, dir, save);
  CausalLM loaded = load_causal_lm(dir, at::kDouble, at::kCPU);
  EXPECT_EQ(loaded.named_parameters().size(), model.named_parameters().size());
  c10::InferenceMode guard;
  at::Tensor ids = at::randint(0, 1024, {1, 9}, at::kLong);
  EXPECT_LE(relative_max_error(loaded.forward(ids), model.forward(ids)), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Variants, LightningOptions, ::testing::Values(0, 1, 2));

}  // namespace
}  // namespace halo
