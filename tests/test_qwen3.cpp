// The Qwen3 model against transformers: logits and every hidden state of the shared fixtures
// (float32 compute) within 1e-4 of the reference's max magnitude, greedy generation with the KV
// cache token for token, cache/prefill consistency, config parsing and weight-loading errors.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <fstream>

#include "halo/causal_lm.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/generation.h"
#include "halo/inference_cache.h"
#include "halo/model_config.h"
#include "halo/model_directory.h"
#include "halo/perplexity.h"
#include "halo/tensor_io.h"
#include "test_support.h"

namespace halo {
namespace {

double relative_max_error(const at::Tensor& got, const at::Tensor& want) {
  return (got.cpu().to(at::kDouble) - want.cpu().to(at::kDouble)).abs().max().item<double>() /
         want.abs().max().item<double>();
}

std::vector<int64_t> to_vector(const at::Tensor& t) {
  at::Tensor c = t.contiguous().to(at::kLong);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

class FixtureParity : public ::testing::TestWithParam<const char*> {};

TEST_P(FixtureParity, LogitsAndHiddenStatesMatchTransformers) {
  const std::string dir = test::fixture(GetParam());
  auto ref = load_tensors(dir + "/reference.safetensors");
  CausalLM model = load_causal_lm(dir, at::kFloat, test::device());
  c10::InferenceMode guard;
  std::vector<at::Tensor> hidden;
  at::Tensor logits = model.forward(ref.at("input_ids"), nullptr, &hidden);
  ASSERT_EQ(logits.sizes(), ref.at("logits").sizes());
  EXPECT_LE(relative_max_error(logits, ref.at("logits")), 1e-4);
  ASSERT_EQ(hidden.size(), 5u);
  for (size_t i = 0; i < hidden.size(); ++i) {
    const at::Tensor& want = ref.at("hidden_states." + std::to_string(i));
    ASSERT_EQ(hidden[i].sizes(), want.sizes()) << "hidden_states." << i;
    EXPECT_LE(relative_max_error(hidden[i], want), 1e-4) << "hidden_states." << i;
  }
}

TEST_P(FixtureParity, GreedyGenerationWithCacheReproducesTransformers) {
  const std::string dir = test::fixture(GetParam());
  auto ref = load_tensors(dir + "/reference.safetensors");
  CausalLM model = load_causal_lm(dir, at::kFloat, test::device());
  const std::vector<int64_t> prompt = to_vector(ref.at("generate_prompt"));
  const std::vector<int64_t> expected = to_vector(ref.at("generate_output"));
  for (int64_t chunk : {2048, 4}) {  // one-shot prefill and a prefill split into chunks
    GenerationOptions options;
    options.max_new_tokens = static_cast<int64_t>(expected.size() - prompt.size());
    options.prefill_chunk = chunk;
    std::vector<int64_t> got = prompt;
    GenerationStats stats;
    for (int64_t id : generate(model, prompt, options, {}, &stats)) got.push_back(id);
    EXPECT_EQ(got, expected) << "prefill chunk " << chunk;
    // The last token needs no forward call; the steady steps leave out the first.
    EXPECT_EQ(stats.new_tokens, options.max_new_tokens);
    EXPECT_EQ(stats.decode_steps, options.max_new_tokens - 1);
    EXPECT_EQ(stats.steady_steps, options.max_new_tokens - 2);
    EXPECT_GT(stats.steady_seconds, 0.0);
    EXPECT_LT(stats.steady_seconds, stats.decode_seconds);
    EXPECT_DOUBLE_EQ(stats.steps_per_second(), stats.steady_steps / stats.steady_seconds);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureParity, ::testing::Values("qwen3-tiny", "qwen3-tiny-bf16"));

TEST(CausalLM, CachedDecodingEqualsFullForward) {
  // float32 goes through the fused kernels (split-KV prefill with log-sum-exp merging, folded
  // GQA decode); float64 through the written-out math, which must agree to rounding.
  for (auto [dtype, tolerance] : {std::pair{at::kFloat, 1e-5}, std::pair{at::kDouble, 1e-12}}) {
    CausalLM model = load_causal_lm(test::fixture("qwen3-tiny"), dtype, test::device());
    c10::InferenceMode guard;
    at::Tensor ids = at::randint(0, model.config().vocab_size, {2, 23}, at::kLong).to(model.device());
    at::Tensor full = model.forward(ids);
    InferenceCache cache(model.config().num_hidden_layers);
    std::vector<at::Tensor> parts;
    parts.push_back(model.forward(ids.narrow(1, 0, 9), &cache));  // prefill
    parts.push_back(model.forward(ids.narrow(1, 9, 5), &cache));  // a chunk continuing the cache
    for (int64_t t = 14; t < 23; ++t) parts.push_back(model.forward(ids.narrow(1, t, 1), &cache));
    EXPECT_EQ(cache.length(), 23);
    EXPECT_LE(relative_max_error(at::cat(parts, 1), full), tolerance) << dtype;
  }
}

TEST(CausalLM, BFloat16ComputeStaysCloseToFloat32) {
  const std::string dir = test::fixture("qwen3-tiny-bf16");
  auto ref = load_tensors(dir + "/reference.safetensors");
  CausalLM model = load_causal_lm(dir, at::kBFloat16, test::device());
  c10::InferenceMode guard;
  const at::Tensor& want = ref.at("logits");
  auto close = [&](const at::Tensor& got) {
    at::Tensor g = got.to(at::kFloat).cpu();
    EXPECT_FALSE(g.isnan().any().item<bool>());
    EXPECT_LE((g - want).norm().item<double>() / want.norm().item<double>(), 1e-2);
  };
  close(model.forward(ref.at("input_ids")));
  // The cached path in bf16 (on CUDA: flash kernels with log-sum-exp merging, folded decode).
  InferenceCache cache(model.config().num_hidden_layers);
  at::Tensor ids = ref.at("input_ids");
  std::vector<at::Tensor> parts{model.forward(ids.narrow(1, 0, 20), &cache),
                                model.forward(ids.narrow(1, 20, 9), &cache)};
  for (int64_t t = 29; t < ids.size(1); ++t) parts.push_back(model.forward(ids.narrow(1, t, 1), &cache));
  close(at::cat(parts, 1));
}

TEST(CausalLM, ParameterCountMatchesTheArchitecture) {
  CausalLM model = load_causal_lm(test::fixture("qwen3-tiny"), at::kFloat, test::device());
  // embed 1024*64; per layer: 2 norms 64 each, q 128x64, k/v 64x64, o 64x128, q/k norm 32, mlp 3*160*64.
  const int64_t per_layer = 2 * 64 + 128 * 64 + 2 * 64 * 64 + 64 * 128 + 2 * 32 + 3 * 160 * 64;
  EXPECT_EQ(model.parameter_count(), 1024 * 64 + 4 * per_layer + 64);
}

TEST(Perplexity, StridedWindowsScoreEveryTokenOnceAndMatchOneWindow) {
  CausalLM model = load_causal_lm(test::fixture("qwen3-tiny"), at::kFloat, test::device());
  std::vector<int32_t> ids(50);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 37 + 11) % 1024);
  PerplexityResult whole = perplexity(model, ids, 64, 64);
  EXPECT_EQ(whole.tokens, 49);
  PerplexityResult strided = perplexity(model, ids, 20, 7);
  EXPECT_EQ(strided.tokens, 49);
  // Disjoint windows: the first token of each later window has no context in its window.
  PerplexityResult disjoint = perplexity(model, ids, 10, 10);
  EXPECT_EQ(disjoint.tokens, 45);
  // The first window of any split sees the same context as one window: equal loss for it.
  at::Tensor t = at::tensor(at::ArrayRef<int32_t>(ids), at::kInt).to(at::kLong).to(model.device());
  c10::InferenceMode guard;
  at::Tensor hidden = model.forward_hidden(t.unsqueeze(0)).squeeze(0);
  const double direct = summed_nll(model, hidden.narrow(0, 0, 49), t.narrow(0, 1, 49), 7);
  EXPECT_NEAR(whole.nll_sum, direct, 1e-6 * std::abs(direct));
  EXPECT_GT(disjoint.nll_sum, 0);
}

TEST(Perplexity, TailSumsTheLastPositionsOfFullWindowsOnly) {
  CausalLM model = load_causal_lm(test::fixture("qwen3-tiny"), at::kFloat, test::device());
  std::vector<int32_t> ids(50);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 29 + 5) % 1024);
  // Windows [0,16) [16,32) [32,48) are full, [48,50) is not: 3 x 4 tail tokens.
  PerplexityResult r = perplexity(model, ids, 16, 16, {}, 4);
  PerplexityResult plain = perplexity(model, ids, 16, 16);
  EXPECT_EQ(r.tokens, plain.tokens);
  EXPECT_NEAR(r.nll_sum, plain.nll_sum, 1e-6 * std::abs(plain.nll_sum));  // float32 sums, split differently
  ASSERT_EQ(r.tail_tokens, 12);
  at::Tensor t = at::tensor(at::ArrayRef<int32_t>(ids), at::kInt).to(at::kLong).to(model.device());
  c10::InferenceMode guard;
  double expected = 0;
  for (int64_t begin : {0, 16, 32}) {
    at::Tensor hidden = model.forward_hidden(t.narrow(0, begin, 16).unsqueeze(0)).squeeze(0);
    expected += summed_nll(model, hidden.narrow(0, 11, 4), t.narrow(0, begin + 12, 4));
  }
  EXPECT_NEAR(r.tail_nll_sum, expected, 1e-6 * std::abs(expected));
  EXPECT_NEAR(r.tail_perplexity(), std::exp(expected / 12), 1e-6 * std::exp(expected / 12));
  EXPECT_EQ(plain.tail_tokens, 0);
  EXPECT_EQ(plain.tail_perplexity(), 0.0);
}

TEST(Perplexity, TailsAtFixedEndsScoreTheSameTokensAtEveryContext) {
  CausalLM model = load_causal_lm(test::fixture("qwen3-tiny"), at::kFloat, test::device());
  std::vector<int32_t> ids(50);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 29 + 5) % 1024);
  const std::vector<int64_t> ends = {16, 32, 48};
  // At the context whose disjoint windows end there, the tails are perplexity()'s.
  const PerplexityResult windows = perplexity(model, ids, 16, 16, {}, 4);
  const PerplexityResult same = tail_perplexity_at(model, ids, 16, 4, ends);
  ASSERT_EQ(same.tokens, 12);
  EXPECT_EQ(same.tail_tokens, 12);
  EXPECT_NEAR(same.nll_sum, windows.tail_nll_sum, 1e-9 * windows.tail_nll_sum);
  EXPECT_EQ(same.tail_nll_sum, same.nll_sum);
  // At context 8 the same 12 tokens, each window [end - 8, end).
  at::Tensor t = at::tensor(at::ArrayRef<int32_t>(ids), at::kInt).to(at::kLong).to(model.device());
  double expected = 0;
  {
    c10::InferenceMode guard;
    for (int64_t end : ends) {
      at::Tensor hidden = model.forward_hidden(t.narrow(0, end - 8, 8).unsqueeze(0)).squeeze(0);
      expected += summed_nll(model, hidden.narrow(0, 3, 4), t.narrow(0, end - 4, 4));
    }
  }
  const PerplexityResult shorter = tail_perplexity_at(model, ids, 8, 4, ends);
  EXPECT_EQ(shorter.tokens, 12);
  EXPECT_NEAR(shorter.nll_sum, expected, 1e-6 * expected);
  EXPECT_GT(std::abs(shorter.nll_sum - same.nll_sum), 1e-3);  // another context, other losses
  // Two shards split the ends and add up to the whole.
  const PerplexityResult first = tail_perplexity_at(model, ids, 8, 4, ends, 0, 2);
  const PerplexityResult second = tail_perplexity_at(model, ids, 8, 4, ends, 1, 2);
  EXPECT_EQ(first.tokens + second.tokens, 12);
  EXPECT_NEAR(first.nll_sum + second.nll_sum, expected, 1e-6 * expected);
  // Ends outside [context, length] and tails outside [1, context) are errors.
  EXPECT_NE(test::error_of([&] { tail_perplexity_at(model, ids, 16, 4, {8}); }).find("window end 8"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { tail_perplexity_at(model, ids, 16, 4, {51}); }).find("window end 51"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { tail_perplexity_at(model, ids, 16, 16, ends); }).find("tail"), std::string::npos);
}

// config.json variants -------------------------------------------------------------------

const char* kConfig4x = R"({"model_type": "qwen3", "vocab_size": 1024, "hidden_size": 64,
  "intermediate_size": 160, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
  "head_dim": 32, "max_position_embeddings": 2048, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "rope_scaling": null, "torch_dtype": "bfloat16", "tie_word_embeddings": true, "eos_token_id": 7})";

TEST(ModelConfig, Transformers4xAnd5xStylesAgree) {
  ModelConfig v4 = parse_model_config(kConfig4x, "v4/config.json");
  ModelConfig v5 = load_model_config(test::fixture("qwen3-tiny"));
  EXPECT_EQ(v4.rope_theta, v5.rope_theta);
  EXPECT_EQ(v4.head_dim, 32);
  EXPECT_EQ(v5.head_dim, 32);
  EXPECT_EQ(v4.num_key_value_heads, v5.num_key_value_heads);
  EXPECT_EQ(v4.dtype, "bfloat16");
  EXPECT_EQ(v5.dtype, "float32");
  EXPECT_EQ(v4.eos_token_ids, std::vector<int64_t>{7});
  EXPECT_TRUE(v4.tie_word_embeddings);
  EXPECT_EQ(v5.mixer_types.size(), 4u);
}

void expect_config_error(std::string json, const std::string& needle) {
  try {
    parse_model_config(json, "bad/config.json");
    ADD_FAILURE() << "no error for: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad/config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  s.replace(s.find(from), from.size(), to);
  return s;
}

TEST(ModelConfig, BadConfigsNameTheKey) {
  expect_config_error("{not json", "not valid JSON");
  expect_config_error(replace(kConfig4x, R"("vocab_size": 1024,)", ""), "vocab_size");
  expect_config_error(replace(kConfig4x, R"("num_key_value_heads": 2)", R"("num_key_value_heads": 3)"),
                      "num_key_value_heads");
  expect_config_error(
      replace(kConfig4x, R"("rope_scaling": null)", R"("rope_scaling": {"rope_type": "longrope", "factor": 4})"),
      "longrope");
  expect_config_error(replace(kConfig4x, R"("torch_dtype": "bfloat16")", R"("torch_dtype": "int8")"), "torch_dtype");
  expect_config_error(replace(kConfig4x, R"("hidden_size": 64)", R"("hidden_size": "64")"), "hidden_size");
  expect_config_error(replace(kConfig4x, R"("qwen3")", R"("gpt_neox")"), "model_type");
}

// Weight loading errors -------------------------------------------------------------------

std::string copy_fixture_with_config(const std::string& config_text) {
  const std::string dir = test::make_temp_dir();
  copy_file_atomic(test::fixture("qwen3-tiny") + "/model.safetensors", dir + "/model.safetensors");
  test::write_text(dir + "/config.json", config_text);
  return dir;
}

TEST(LoadCausalLM, ShapeMismatchNamesTheTensor) {
  const std::string dir =
      copy_fixture_with_config(replace(kConfig4x, R"("intermediate_size": 160)", R"("intermediate_size": 128)"));
  try {
    load_causal_lm(dir, at::kFloat, test::device());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mlp.gate_proj.weight"), std::string::npos) << e.what();
  }
}

TEST(LoadCausalLM, MissingAndUnexpectedTensorsAreListed) {
  const std::string more_layers =
      copy_fixture_with_config(replace(kConfig4x, R"("num_hidden_layers": 4)", R"("num_hidden_layers": 5)"));
  try {
    load_causal_lm(more_layers, at::kFloat, test::device());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensors model.layers.4."), std::string::npos) << e.what();
  }
  const std::string fewer_layers =
      copy_fixture_with_config(replace(kConfig4x, R"("num_hidden_layers": 4)", R"("num_hidden_layers": 3)"));
  try {
    load_causal_lm(fewer_layers, at::kFloat, test::device());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unexpected tensors model.layers.3."), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace halo
