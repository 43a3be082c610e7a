// The Llama-family teachers (Llama: optional biases everywhere, no q/k norms; Qwen2: q/k/v
// biases) and RoPE scaling (linear, llama3, yarn): logits equal transformers' on the tiny random
// checkpoints of tests/data (scripts/make_family_fixtures.py), the cache path equals the full
// forward, and stage 0 turns each into a HypeNet as ARCHITECTURE.md says (lightning layers get
// q/k norms of gain 1, attention layers keep what the teacher has, biases carried over). With
// the real SmolLM2-135M GGUF present (scripts/fetch_teacher.sh smollm2, or $HALO_SMOLLM2_GGUF),
// its import gives transformers' logits (tests/data/smollm2_reference.json).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <string>

#include "halo/causal_lm.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/gguf_import.h"
#include "halo/hypenet_conversion.h"
#include "halo/inference_cache.h"
#include "halo/model_config.h"
#include "halo/model_directory.h"
#include "halo/tensor_io.h"
#include "test_support.h"

namespace halo {
namespace {

std::string family_fixture(const std::string& name) {
  return HALO_SOURCE_DIR "/tests/data/" + name;
}

double relative_max_error(const at::Tensor& got, const at::Tensor& want) {
  const at::Tensor g = got.to(at::kDouble).cpu(), w = want.to(at::kDouble).cpu();
  return (g - w).abs().max().item<double>() / w.abs().max().item<double>();
}

class Family : public ::testing::TestWithParam<const char*> {};

TEST_P(Family, LogitsMatchTransformers) {
  const std::string dir = family_fixture(GetParam());
  auto ref = load_tensors(dir + "/reference.safetensors");
  CausalLM model = load_causal_lm(dir, at::kFloat, test::device());
  c10::InferenceMode guard;
  EXPECT_LE(relative_max_error(model.forward(ref.at("input_ids")), ref.at("logits")), 1e-4);
  CausalLM exact = load_causal_lm(dir, at::kDouble, at::kCPU);
  EXPECT_LE(relative_max_error(exact.forward(ref.at("input_ids")), ref.at("logits")), 1e-4);
}

TEST_P(Family, CachedDecodingEqualsFullForward) {
  CausalLM model = load_causal_lm(family_fixture(GetParam()), at::kDouble, at::kCPU);
  c10::InferenceMode guard;
  at::Tensor ids = at::randint(0, model.config().vocab_size, {2, 19}, at::kLong);
  at::Tensor full = model.forward(ids);
  InferenceCache cache(model.config().num_hidden_layers);
  std::vector<at::Tensor> parts{model.forward(ids.narrow(1, 0, 8), &cache), model.forward(ids.narrow(1, 8, 5), &cache)};
  for (int64_t t = 13; t < 19; ++t) parts.push_back(model.forward(ids.narrow(1, t, 1), &cache));
  EXPECT_LE(relative_max_error(at::cat(parts, 1), full), 1e-12);
}

TEST_P(Family, HypeNetConversionKeepsTheTeachersLayersAndRoundTrips) {
  CausalLM teacher = load_causal_lm(family_fixture(GetParam()), at::kDouble, at::kCPU);
  const ModelConfig& tc = teacher.config();
  // Every layer attention with RoPE, no gate or scaling: the student computes the teacher.
  ModelConfig same = hypenet_config(tc, {0, 1});
  same.attn_use_rope = true;
  same.attn_use_output_gate = false;
  CausalLM copy = convert_to_hypenet(teacher, same, 3);
  c10::InferenceMode guard;
  at::Tensor ids = at::randint(0, tc.vocab_size, {1, 17}, at::kLong);
  EXPECT_LE(relative_max_error(copy.forward(ids), teacher.forward(ids)), 1e-12);

  CausalLM student = convert_to_hypenet(teacher, hypenet_config(tc, {1}), 3);
  const MixerWeights& lightning = student.layer(0).mixer;
  const MixerWeights& attention = student.layer(1).mixer;
  ASSERT_TRUE(lightning.q_norm.defined());
  EXPECT_EQ(lightning.q_norm.equal(at::ones_like(lightning.q_norm)), !teacher.layer(0).mixer.q_norm.defined());
  EXPECT_EQ(attention.q_norm.defined(), tc.attn_use_qk_norm);
  EXPECT_EQ(attention.q_bias.defined(), tc.attention_bias);
  EXPECT_EQ(lightning.k_bias.defined(), tc.attention_bias);
  if (tc.attention_bias) {  // K/V heads expanded to the query heads, biases with them
    EXPECT_EQ(lightning.k_bias.size(0), tc.num_attention_heads * tc.head_dim);
    EXPECT_TRUE(
        lightning.k_bias.narrow(0, 0, tc.head_dim).equal(teacher.layer(0).mixer.k_bias.narrow(0, 0, tc.head_dim)));
  }
  const std::string dir = test::make_temp_dir() + "/student";
  SaveOptions save;
  save.dtype = at::kDouble;
  save_model_directory(student, dir, save);
  const auto config = nlohmann::json::parse(read_file(dir + "/config.json"));
  EXPECT_EQ(config["model_type"], "hypenet");
  EXPECT_EQ(config["attn_use_qk_norm"], tc.attn_use_qk_norm);
  EXPECT_EQ(config["attention_bias"], tc.attention_bias);
  EXPECT_EQ(config["rope_scaling"].is_null(), tc.rope_scaling.type == "default");
  CausalLM loaded = load_causal_lm(dir, at::kDouble, at::kCPU);
  EXPECT_EQ(loaded.config().rope_scaling.type, tc.rope_scaling.type);
  EXPECT_LE(relative_max_error(loaded.forward(ids), student.forward(ids)), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Family,
                         ::testing::Values("llama-tiny", "llama-tiny-llama3", "llama-tiny-yarn", "qwen2-tiny"));

TEST(FamilyConfig, ReadsEachFamilysLayers) {
  const ModelConfig llama = load_model_config(family_fixture("llama-tiny-llama3"));
  EXPECT_EQ(llama.model_type, "llama");
  EXPECT_FALSE(llama.attn_use_qk_norm);
  EXPECT_TRUE(llama.attention_bias && llama.attention_output_bias && llama.mlp_bias);
  EXPECT_EQ(llama.rope_scaling.type, "llama3");
  EXPECT_EQ(llama.rope_scaling.original_max_position_embeddings, 16);
  const ModelConfig qwen2 = load_model_config(family_fixture("qwen2-tiny"));
  EXPECT_TRUE(qwen2.attention_bias);
  EXPECT_FALSE(qwen2.attention_output_bias || qwen2.mlp_bias || qwen2.attn_use_qk_norm);
  EXPECT_EQ(qwen2.rope_scaling.type, "linear");
}

TEST(FamilyConfig, RopeScalingFollowsTransformersFormulas) {
  ModelConfig c;
  c.rope_theta = 10000.0;
  c.max_position_embeddings = 64;
  const std::vector<double> plain = rope_inverse_frequencies(c, 8);
  ASSERT_EQ(plain.size(), 4u);
  EXPECT_DOUBLE_EQ(plain[1], std::pow(10000.0, -0.25));
  c.rope_scaling.type = "linear";
  c.rope_scaling.factor = 2.0;
  EXPECT_DOUBLE_EQ(rope_inverse_frequencies(c, 8)[1], plain[1] / 2);
  // llama3: wavelengths above original/low_freq_factor are divided by the factor, those below
  // original/high_freq_factor are kept, the ones between are blended.
  c.rope_scaling = {};
  c.rope_scaling.type = "llama3";
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.original_max_position_embeddings = 100;
  const std::vector<double> llama3 = rope_inverse_frequencies(c, 8);
  for (size_t i = 0; i < plain.size(); ++i) {
    const double wavelen = 2 * M_PI / plain[i];
    if (wavelen > 100) EXPECT_DOUBLE_EQ(llama3[i], plain[i] / 8) << i;
    if (wavelen < 25) EXPECT_DOUBLE_EQ(llama3[i], plain[i]) << i;
    if (wavelen >= 25 && wavelen <= 100) EXPECT_TRUE(llama3[i] < plain[i] && llama3[i] > plain[i] / 8) << i;
  }
  c.rope_scaling = {};
  c.rope_scaling.type = "yarn";
  c.rope_scaling.factor = 4.0;
  EXPECT_DOUBLE_EQ(rope_attention_factor(c), 0.1 * std::log(4.0) + 1.0);
  c.rope_scaling.attention_factor = 0.5;
  EXPECT_DOUBLE_EQ(rope_attention_factor(c), 0.5);
}

TEST(FamilyConfig, RejectsWhatItCannotRun) {
  const std::string base = read_file(family_fixture("llama-tiny") + "/config.json");
  auto with = [&](const std::string& key, const nlohmann::json& value) {
    auto j = nlohmann::json::parse(base);
    j[key] = value;
    return j.dump();
  };
  EXPECT_THROW(parse_model_config(with("rope_scaling", {{"rope_type", "longrope"}, {"factor", 2.0}}), "c.json"), Error);
  EXPECT_THROW(parse_model_config(with("rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}), "c.json"), Error);
  EXPECT_THROW(parse_model_config(with("model_type", "mistral3"), "c.json"), Error);
  EXPECT_THROW(parse_model_config(with("hidden_act", "gelu"), "c.json"), Error);
  // An empty rope_parameters beside a top-level rope_theta (the reference's HypeNet configs).
  auto j = nlohmann::json::parse(base);
  j["rope_parameters"] = nlohmann::json::object();
  EXPECT_DOUBLE_EQ(parse_model_config(j.dump(), "c.json").rope_theta, 100000.0);
}

std::string smollm2_gguf() {
  if (const char* env = std::getenv("HALO_SMOLLM2_GGUF")) return env;
  const std::string path = HALO_SOURCE_DIR "/runs/teachers/smollm2-135m.gguf";
  return is_regular_file(path) ? path : "";
}

TEST(SmolLM2, ImportedTeacherGivesTransformersLogits) {
  const std::string gguf = smollm2_gguf();
  if (gguf.empty())
    GTEST_SKIP() << "SmolLM2 GGUF not found: run scripts/fetch_teacher.sh smollm2 or set HALO_SMOLLM2_GGUF";
  const std::string dir = test::make_temp_dir() + "/smollm2";
  GgufImportOptions import;
  import.progress = false;
  import_gguf(gguf, dir, import);
  CausalLM model = load_causal_lm(dir, at::kFloat, at::kCPU);
  EXPECT_EQ(model.config().model_type, "llama");
  EXPECT_FALSE(model.config().attn_use_qk_norm);
  const auto ref = nlohmann::json::parse(read_file(HALO_SOURCE_DIR "/tests/data/smollm2_reference.json"));
  c10::InferenceMode guard;
  for (const auto& c : ref.at("cases")) {
    const std::vector<int64_t> ids = c.at("input_ids").get<std::vector<int64_t>>();
    const at::Tensor logits = model.forward(at::tensor(ids, at::kLong).unsqueeze(0)).squeeze(0);
    const double max_logit = c.at("max_logit").get<double>();
    for (const auto& p : c.at("positions")) {
      const int64_t position = p.at("position").get<int64_t>();
      std::vector<int64_t> token_ids = p.at("top5_ids").get<std::vector<int64_t>>();
      std::vector<double> want = p.at("top5_logits").get<std::vector<double>>();
      for (int64_t id : ref.at("fixed_ids").get<std::vector<int64_t>>()) token_ids.push_back(id);
      for (double v : p.at("fixed_logits").get<std::vector<double>>()) want.push_back(v);
      ASSERT_EQ(token_ids.size(), want.size());
      for (size_t i = 0; i < token_ids.size(); ++i) {
        EXPECT_NEAR(logits[position][token_ids[i]].item<double>(), want[i], 1e-4 * std::abs(max_logit))
            << c.at("prompt") << " position " << position << " token " << token_ids[i];
      }
    }
    EXPECT_EQ(logits[-1].argmax().item<int64_t>(), c.at("greedy_next_id").get<int64_t>()) << c.at("prompt");
  }
}

}  // namespace
}  // namespace halo
