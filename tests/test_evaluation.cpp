// Evaluation machinery (the tiny fixture has random weights, so accuracies mean nothing here):
// selection scores against a hand-computed example, NIAH prompts (length, needle depth,
// determinism, "contains"), multiple-choice log-likelihoods against a float64 forward pass,
// task-file parsing, the PNG writer read back with zlib (test_support), and halo eval end to end.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "halo/causal_lm.h"
#include "halo/error.h"
#include "halo/evaluation.h"
#include "halo/file_system.h"
#include "halo/generation.h"
#include "halo/hype_scaling.h"
#include "halo/perplexity.h"
#include "halo/hypenet_conversion.h"
#include "halo/model_config.h"
#include "halo/model_directory.h"
#include "halo/png_image.h"
#include "halo/tokenizer.h"
#include "pipeline/layer_selection.h"
#include "test_support.h"

namespace halo {
namespace {

// ---- Selection ----

// Eight layers, k = floor(8 / 4) = 2; max R = 0.90, max C = 0.60. By hand:
//   layer  R     C     max R - R  max C - C  s
//   0      0.90  0.60  0          0          0 / 1e-10 = 0
//   1      0.80  0.55  0.10       0.05       2
//   2      0.90  0.50  0          0.10       0
//   3      0.50  0.60  0.40       0          4e9 -> clipped to 50
//   4      0.85  0.58  0.05       0.02       2.5
//   5      0.90  0.40  0          0.20       0
//   6      0.70  0.59  0.20       0.01       20
//   7      0.88  0.60  0.02       0          2e8 -> clipped to 50
const std::vector<double> kRecall = {0.90, 0.80, 0.90, 0.50, 0.85, 0.90, 0.70, 0.88};
const std::vector<double> kCommonsense = {0.60, 0.55, 0.50, 0.60, 0.58, 0.40, 0.59, 0.60};

TEST(Selection, HaloScoresMatchTheHandComputedExample) {
  const std::vector<double> expected = {0, 2, 0, 50, 2.5, 0, 20, 50};
  const std::vector<double> got = halo_selection_scores(kRecall, kCommonsense);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-6) << "layer " << i;

  LayerSelection s = select_attention_layers({8, kRecall, kCommonsense, {}}, {});
  EXPECT_EQ(s.options.keep, 2);
  EXPECT_EQ(s.attention_layers, (std::vector<int64_t>{3, 7}));
  LayerSelectionOptions three;
  three.keep = 3;
  EXPECT_EQ(select_attention_layers({8, kRecall, kCommonsense, {}}, three).attention_layers,
            (std::vector<int64_t>{3, 6, 7}));
  LayerSelectionOptions one;  // layers 3 and 7 tie at 50: the lower index wins
  one.keep = 1;
  EXPECT_EQ(select_attention_layers({8, kRecall, kCommonsense, {}}, one).attention_layers, (std::vector<int64_t>{3}));
}

TEST(Selection, FlatRecallFallsBackToTheCommonsenseDrop) {
  // No layer's recall differs (a teacher that cannot retrieve): every s_i is 0, and the layers
  // whose replacement costs the most commonsense stay attention.
  const std::vector<double> flat(8, 0.0);
  const std::vector<double> c = {0.50, 0.58, 0.41, 0.60, 0.55, 0.45, 0.59, 0.57};
  EXPECT_EQ(select_attention_layers({8, flat, c, {}}, {}).attention_layers, (std::vector<int64_t>{2, 5}));
}

TEST(Selection, ClipAndEps) {
  LayerSelectionOptions low_clip;
  low_clip.clip = 10;
  const auto clipped = select_attention_layers({8, kRecall, kCommonsense, {}}, low_clip).scores;
  EXPECT_DOUBLE_EQ(clipped[3], 10);
  EXPECT_DOUBLE_EQ(clipped[6], 10);
  EXPECT_NEAR(clipped[4], 2.5, 1e-6);
  // A recall drop of 1e-12 at no commonsense drop scores 1e-12 / eps = 0.01 with eps = 1e-10.
  const auto tiny = halo_selection_scores({1.0, 1.0 - 1e-12}, {0.5, 0.5});
  EXPECT_EQ(tiny[0], 0.0);
  EXPECT_NEAR(tiny[1], 0.01, 1e-5);
}

TEST(Selection, KeepDefaultsToAQuarterOfTheLayers) {
  std::vector<double> recall(11), commonsense(11, 0.5);
  for (int i = 0; i < 11; ++i) recall[i] = 0.1 * i;  // the lowest recall scores highest
  LayerSelection s = select_attention_layers({11, recall, commonsense, {}}, {});
  EXPECT_EQ(s.options.keep, 2);
  EXPECT_EQ(s.attention_layers, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(select_attention_layers({3, {1, 2, 3}, {1, 1, 1}, {}}, {}).attention_layers.size(), 0u);
}

TEST(Selection, AlternativeCriteria) {
  LayerSelectionOptions recall;
  recall.criterion = parse_selection_criterion("recall");
  LayerSelection r = select_attention_layers({8, kRecall, {}, {}}, recall);
  const std::vector<double> drops = {0, 0.10, 0, 0.40, 0.05, 0, 0.20, 0.02};
  for (size_t i = 0; i < drops.size(); ++i) EXPECT_NEAR(r.scores[i], drops[i], 1e-12) << i;
  EXPECT_EQ(r.attention_layers, (std::vector<int64_t>{3, 6}));

  LayerSelectionOptions kl;
  kl.criterion = parse_selection_criterion("kl");
  const std::vector<double> divergence = {0.1, 0.3, 0.05, 0.3, 0.2, 0.01, 0.02, 0.15};
  EXPECT_EQ(select_attention_layers({8, {}, {}, divergence}, kl).attention_layers, (std::vector<int64_t>{1, 3}));
  kl.keep = 1;  // 1 and 3 tie: the lower index wins
  EXPECT_EQ(select_attention_layers({8, {}, {}, divergence}, kl).attention_layers, (std::vector<int64_t>{1}));
  kl.keep = 3;
  EXPECT_EQ(select_attention_layers({8, {}, {}, divergence}, kl).attention_layers, (std::vector<int64_t>{1, 3, 4}));

  LayerSelectionOptions even;
  even.criterion = parse_selection_criterion("even");
  EXPECT_EQ(select_attention_layers({8, {}, {}, {}}, even).attention_layers, (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(evenly_spaced_layers(28, 7), (std::vector<int64_t>{2, 6, 10, 14, 18, 22, 26}));
  EXPECT_EQ(evenly_spaced_layers(36, 9), (std::vector<int64_t>{2, 6, 10, 14, 18, 22, 26, 30, 34}));
  EXPECT_EQ(evenly_spaced_layers(10, 3), (std::vector<int64_t>{1, 5, 8}));  // 10/6, 30/6, 50/6 floored
}

TEST(Selection, RejectsBadInputs) {
  EXPECT_THROW(parse_selection_criterion("best"), Error);
  EXPECT_THROW(select_attention_layers({8, kRecall, {}, {}}, {}), Error);  // halo needs C too
  std::vector<double> broken = kRecall;
  broken[2] = std::nan("");
  EXPECT_THROW(select_attention_layers({8, broken, kCommonsense, {}}, {}), Error);
  LayerSelectionOptions too_many;
  too_many.keep = 9;
  EXPECT_THROW(select_attention_layers({8, kRecall, kCommonsense, {}}, too_many), Error);
}

// ---- PNG ----

TEST(Png, EncodesAnImageThatZlibReadsBack) {
  RgbImage image(7, 5, {255, 255, 255});
  image.set(0, 0, {1, 2, 3});
  image.fill_rect(2, 1, 4, 3, {200, 10, 20});
  const test::ParsedPng p = test::parse_png(encode_png(image));
  EXPECT_EQ(p.width, 7u);
  EXPECT_EQ(p.height, 5u);
  EXPECT_EQ(p.bit_depth, 8);
  EXPECT_EQ(p.color_type, 2);
  EXPECT_EQ(p.chunk_types, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
  ASSERT_EQ(p.raw.size(), 5u * (1 + 7 * 3));
  for (int y = 0; y < 5; ++y) {
    EXPECT_EQ(p.raw[y * 22], 0) << "filter byte of row " << y;
    EXPECT_EQ(p.raw.substr(y * 22 + 1, 21),
              std::string(reinterpret_cast<const char*>(image.pixels().data()) + y * 21, 21));
  }
  EXPECT_EQ(uint8_t(p.raw[1]), 1);
  EXPECT_EQ(uint8_t(p.raw[1 * 22 + 1 + 2 * 3]), 200);  // (2, 1) inside the rectangle
}

TEST(Png, DrawsDigitsFromTheBitmapFont) {
  RgbImage image(20, 10, {0, 0, 0});
  image.draw_text(0, 0, "17", {255, 255, 255}, 2);
  auto lit = [&](int x, int y) { return image.at(x, y).r == 255; };
  // '1' is 010 / 110 / 010 / 010 / 111: column 1 lit in the top row, column 0 not.
  EXPECT_TRUE(lit(2, 0) && lit(3, 1));
  EXPECT_FALSE(lit(0, 0));
  EXPECT_TRUE(lit(0, 2));  // row 1 starts with a lit pixel
  // '7' starts 4 font pixels (8 image pixels) later: a full top row.
  EXPECT_TRUE(lit(8, 0) && lit(12, 0));
  EXPECT_EQ(RgbImage::text_width("17", 2), 14);
}

TEST(Selection, ReportWritesTableJsonAndChart) {
  const std::string dir = test::make_temp_dir() + "/report";
  write_selection_report(dir, select_attention_layers({8, kRecall, kCommonsense, {}}, {}));
  const std::string md = read_file(dir + "/selection.md");
  EXPECT_NE(md.find("| layer | R_i | C_i | s_i | chosen |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 3 | 0.5000 | 0.6000 | 50.0000 | yes |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 6 | 0.7000 | 0.5900 | 20.0000 |  |"), std::string::npos) << md;
  auto j = nlohmann::json::parse(read_file(dir + "/selection.json"));
  EXPECT_EQ(j["attention_layers"].get<std::vector<int64_t>>(), (std::vector<int64_t>{3, 7}));
  EXPECT_EQ(j["mixer_types"][3], "attn");
  EXPECT_EQ(j["mixer_types"][0], "lightning-attn");
  EXPECT_EQ(j["criterion"], "halo");
  const test::ParsedPng p = test::parse_png(read_file(dir + "/selection.png"));
  EXPECT_GT(p.width, 8u * 16);
  ASSERT_EQ(p.raw.size(), p.height * (1 + 3 * p.width));
  // Both bar colors appear: chosen (orange) and converted (blue).
  EXPECT_TRUE(p.has_color(230, 120, 30));
  EXPECT_TRUE(p.has_color(70, 110, 170));
}

// ---- Needle in a haystack ----

class Needle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tokenizer_ = load_tokenizer(test::shared_dir() + "/data/qwen3-tokenizer").release();
    filler_ = new std::string(read_file(test::shared_dir() + "/data/text/brown.txt"));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete filler_;
  }
  static Tokenizer* tokenizer_;
  static std::string* filler_;
};
Tokenizer* Needle::tokenizer_ = nullptr;
std::string* Needle::filler_ = nullptr;

NeedleOptions small_needle_options() {
  NeedleOptions o;
  o.lengths = {600, 1500};
  o.depths = {0.0, 0.5, 1.0};
  o.samples = 2;
  o.seed = 7;
  return o;
}

TEST_F(Needle, PromptsHitTheLengthWithTheNeedleAtItsDepth) {
  const auto samples = build_needle_samples(*tokenizer_, *filler_, small_needle_options());
  ASSERT_EQ(samples.size(), 2u * 3 * 2);
  for (const auto& s : samples) {
    SCOPED_TRACE(testing::Message() << "length " << s.length << " depth " << s.depth << " key " << s.key);
    EXPECT_EQ(static_cast<int64_t>(s.prompt.size()), s.length);
    EXPECT_EQ(s.value.size(), 7u);
    const std::vector<int32_t> needle(s.prompt.begin() + s.needle_begin,
                                      s.prompt.begin() + s.needle_begin + s.needle_tokens);
    EXPECT_EQ(tokenizer_->decode(needle), " The special magic number for " + s.key + " is: " + s.value + ".");
    // The needle sits at the sentence boundary nearest depth x haystack (sentences of brown.txt
    // are rarely over 60 tokens); depth 0 and 1 are the haystack's two ends.
    const double offset = static_cast<double>(s.needle_begin - s.haystack_begin);
    EXPECT_LE(std::abs(offset - s.depth * s.haystack_tokens), 30.0);
    if (s.depth == 0.0) EXPECT_EQ(s.needle_begin, s.haystack_begin);
    if (s.depth == 1.0) EXPECT_EQ(s.needle_begin, s.haystack_begin + s.haystack_tokens);
    const std::string text = tokenizer_->decode(s.prompt);
    EXPECT_EQ(text.rfind("Some special magic numbers are hidden", 0), 0u);
    const std::string question = "What is the special magic number for " + s.key +
                                 " mentioned in the provided text? The special magic number for " + s.key + " is:";
    EXPECT_EQ(text.substr(text.size() - question.size()), question);
    // Re-tokenizing the text gives nearly the same count (the pieces were tokenized apart).
    EXPECT_LE(std::abs(static_cast<double>(tokenizer_->encode(text).size()) - s.length), 4.0);
  }
}

TEST_F(Needle, SamplesAreDeterministicBySeed) {
  const auto a = build_needle_samples(*tokenizer_, *filler_, small_needle_options());
  const auto b = build_needle_samples(*tokenizer_, *filler_, small_needle_options());
  NeedleOptions other = small_needle_options();
  other.seed = 8;
  const auto c = build_needle_samples(*tokenizer_, *filler_, other);
  size_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt, b[i].prompt);
    EXPECT_EQ(a[i].key, b[i].key);
    EXPECT_EQ(a[i].value, b[i].value);
    differing += a[i].value != c[i].value;
  }
  EXPECT_GE(differing, a.size() - 1);
  // Samples differ from each other too (own key, value and filler start).
  EXPECT_NE(a[0].value, a[1].value);
  EXPECT_NE(a[0].prompt, a[1].prompt);
}

TEST_F(Needle, RejectsLengthsWithoutRoomAndBadDepths) {
  NeedleOptions o = small_needle_options();
  o.lengths = {40};
  try {
    build_needle_samples(*tokenizer_, *filler_, o);
    ADD_FAILURE() << "no error for a 40-token prompt";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), kExitUsage);
    EXPECT_NE(std::string(e.what()).find("40"), std::string::npos) << e.what();
  }
  o = small_needle_options();
  o.depths = {1.5};
  EXPECT_THROW(build_needle_samples(*tokenizer_, *filler_, o), Error);
  EXPECT_THROW(build_needle_samples(*tokenizer_, " \n\n ", small_needle_options()), Error);
}

TEST(NeedleScore, ContainsTheValue) {
  EXPECT_TRUE(needle_answer_found(" 4821937.", "4821937"));
  EXPECT_TRUE(needle_answer_found("The number is 4821937 indeed", "4821937"));
  EXPECT_FALSE(needle_answer_found(" 482193", "4821937"));
  EXPECT_FALSE(needle_answer_found(" 482 1937", "4821937"));
  EXPECT_FALSE(needle_answer_found("", "4821937"));
}

TEST(NeedleRun, AnswersEveryPromptInBatches) {
  const std::string dir = test::make_temp_dir();
  auto tokenizer = load_tokenizer(test::write_byte_tokenizer(dir));
  CausalLM model = load_causal_lm(test::fixture("qwen3-tiny"), at::kFloat, test::device());
  NeedleOptions o;
  o.lengths = {400, 420};
  o.depths = {0.0, 1.0};
  o.samples = 1;
  o.max_new_tokens = 3;
  o.batch_tokens = 1260;  // three prompts of up to 420 tokens, then one
  const auto samples = build_needle_samples(*tokenizer, read_file(test::shared_dir() + "/data/text/brown.txt"), o);
  std::vector<int64_t> progress;
  const NeedleResult r =
      evaluate_needle(model, *tokenizer, samples, o, {}, [&](int64_t done) { progress.push_back(done); });
  EXPECT_EQ(progress, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(r.total, 4);
  ASSERT_EQ(r.cells.size(), 4u);
  EXPECT_EQ(r.cells[1].length, 400);
  EXPECT_EQ(r.cells[1].depth, 1.0);
  EXPECT_EQ(r.cells[3].length, 420);
  for (const auto& c : r.cells) EXPECT_EQ(c.total, 1);
  ASSERT_EQ(r.answers.size(), 4u);
  // The first batch mixes 400- and 420-token prompts (left padding): each answers as alone.
  GenerationOptions alone;
  alone.max_new_tokens = 3;
  for (size_t i : {0, 2}) {
    std::vector<int64_t> prompt(samples[i].prompt.begin(), samples[i].prompt.end());
    const auto ids = generate(model, prompt, alone);
    EXPECT_EQ(tokenizer->decode(std::vector<int32_t>(ids.begin(), ids.end())), r.answers[i]) << i;
  }
}

// ---- HyPE's a ----

TEST(HypeScaling, TheRuleTakesTheLowestLossAmongTheBestRecall) {
  const std::vector<HypeScalingPoint> points = {
      {100, 0.50, 3.0, {}, {}}, {200, 0.80, 3.2, {}, {}}, {500, 0.78, 3.1, {}, {}}, {1000, 0.60, 2.9, {}, {}}};
  EXPECT_EQ(choose_hype_scaling(points, 0.05), 500);
  EXPECT_EQ(choose_hype_scaling(points, 0.0), 200);
  EXPECT_EQ(choose_hype_scaling(points, 0.3), 1000);
  EXPECT_THROW(choose_hype_scaling({}, 0.05), Error);
}

TEST(HypeScaling, ScoresEveryValueAndRestoresTheModel) {
  const std::string dir = test::make_temp_dir();
  auto tokenizer = load_tokenizer(test::write_byte_tokenizer(dir));
  // A random HypeNet with the byte tokenizer's 256 ids (so that every answer decodes).
  ModelConfig config = hypenet_config(load_model_config(test::fixture("qwen3-tiny")), {1, 3});
  config.vocab_size = 256;
  CausalLM model(config);
  model.init_random(5);
  model.to(test::device(), at::kFloat);
  model.set_hype_scaling(362.0);
  const std::string brown = read_file(test::shared_dir() + "/data/text/brown.txt").substr(0, 20000);
  HypeScalingOptions o;
  o.grid = {2, 100, 1000};
  o.lengths = {400, 440};  // the byte tokenizer's needle template alone takes 320 tokens
  o.niah_samples = 2;
  const HypeScalingResult r = tune_hype_scaling(model, *tokenizer, brown, brown, {}, o);
  ASSERT_EQ(r.points.size(), 3u);
  EXPECT_EQ(*model.config().attn_logits_scaling_a, 362.0);
  EXPECT_EQ(r.best_a, choose_hype_scaling(r.points, o.niah_tolerance));
  for (const auto& p : r.points) {
    EXPECT_EQ(p.niah_by_length.size(), 2u);
    EXPECT_GT(p.mean_nll, 0);
  }
  EXPECT_NE(r.points[0].mean_nll, r.points[2].mean_nll);  // a changes the attention layers
  // With a tail, each length's loss is the perplexity tail of its windows at the point's a.
  HypeScalingOptions tail = o;
  tail.grid = {100};
  tail.ppl_tail = 64;
  const HypeScalingResult t = tune_hype_scaling(model, *tokenizer, brown, brown, {}, tail);
  const std::vector<int32_t> ids = tokenizer->encode(brown);
  const std::vector<int32_t> scored(ids.begin(), ids.begin() + 441);
  model.set_hype_scaling(100.0);
  for (size_t i = 0; i < o.lengths.size(); ++i) {
    const PerplexityResult p = perplexity(model, scored, o.lengths[i], o.lengths[i], {}, 64);
    ASSERT_GT(p.tail_tokens, 0);
    EXPECT_NEAR(t.points[0].nll_by_length[i], p.tail_nll_sum / p.tail_tokens, 1e-9) << o.lengths[i];
    EXPECT_NE(t.points[0].nll_by_length[i], r.points[1].nll_by_length[i]) << o.lengths[i];
  }
  model.set_hype_scaling(362.0);
  tail.ppl_tail = 400;  // not below the shortest length
  EXPECT_THROW(check_hype_scaling_options(tail), Error);
  write_hype_scaling_report(dir + "/tune", r, o);
  for (const char* f : {"hype_scaling.json", "hype_scaling.md", "hype_scaling.png"}) {
    EXPECT_TRUE(is_regular_file(dir + "/tune/" + f)) << f;
  }
  o.grid = {1.0};
  EXPECT_THROW(tune_hype_scaling(model, *tokenizer, brown, brown, {}, o), Error);
}

// ---- Multiple choice ----

// Summed log-likelihood of context + " " + choice's tokens past the context, in float64.
double reference_log_likelihood(CausalLM& model, const Tokenizer& tokenizer, const std::string& context,
                                const std::string& choice) {
  const auto ctx = tokenizer.encode(context);
  const auto whole = tokenizer.encode(context + " " + choice);
  std::vector<int64_t> ids(whole.begin(), whole.end());
  c10::InferenceMode guard;
  at::Tensor input = at::tensor(ids, at::kLong).unsqueeze(0).to(model.device());
  at::Tensor logp = at::log_softmax(model.forward(input).squeeze(0).to(at::kDouble), -1).cpu();
  double sum = 0;
  for (size_t p = ctx.size(); p < ids.size(); ++p) sum += logp[p - 1][ids[p]].item<double>();
  return sum;
}

TEST(MultipleChoice, ScoresMatchAFloat64ForwardPass) {
  const std::string dir = test::make_temp_dir();
  auto tokenizer = load_tokenizer(test::write_byte_tokenizer(dir));
  CausalLM model = load_causal_lm(test::fixture("qwen3-tiny"), at::kFloat, test::device());
  CausalLM reference = load_causal_lm(test::fixture("qwen3-tiny"), at::kDouble, test::device());
  const std::vector<ChoiceItem> items = {
      {"The cat sat on the", {"mat", "moon", "caf\xC3\xA9 table"}, 0},
      {"Water boils at", {"100 degrees", "the pub"}, 1},
      {"Pick one:", {"a", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, 1},
  };
  const MultipleChoiceResult r = evaluate_multiple_choice(model, *tokenizer, items);
  ASSERT_EQ(r.items.size(), items.size());
  int64_t correct = 0, correct_norm = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const ChoiceScores& s = r.items[i];
    ASSERT_EQ(s.log_likelihood.size(), items[i].choices.size());
    std::vector<double> want(items[i].choices.size()), normalized(items[i].choices.size());
    for (size_t c = 0; c < want.size(); ++c) {
      want[c] = reference_log_likelihood(reference, *tokenizer, items[i].context, items[i].choices[c]);
      EXPECT_NEAR(s.log_likelihood[c], want[c], 1e-3) << "item " << i << " choice " << c;
      normalized[c] = want[c] / s.characters[c];
    }
    const int64_t best = std::max_element(want.begin(), want.end()) - want.begin();
    const int64_t best_norm = std::max_element(normalized.begin(), normalized.end()) - normalized.begin();
    EXPECT_EQ(s.predicted, best) << "item " << i;
    EXPECT_EQ(s.predicted_norm, best_norm) << "item " << i;
    correct += best == items[i].label;
    correct_norm += best_norm == items[i].label;
  }
  EXPECT_EQ(r.correct, correct);
  EXPECT_EQ(r.correct_norm, correct_norm);
  // Lengths: characters of the choice (not bytes, not tokens); "café table" is 10 characters,
  // 11 bytes, 12 byte tokens with its leading space.
  EXPECT_EQ(r.items[0].characters, (std::vector<int64_t>{3, 4, 10}));
  EXPECT_EQ(r.items[0].tokens, (std::vector<int64_t>{4, 5, 12}));
  // One "a" against forty: the sum prefers the short choice, the per-character mean the long one.
  EXPECT_EQ(r.items[2].predicted, 0);
  EXPECT_EQ(r.items[2].predicted_norm, 1);

  // Batches of one item each give the same scores as one batch of all.
  const MultipleChoiceResult small = evaluate_multiple_choice(model, *tokenizer, items, 1);
  for (size_t i = 0; i < items.size(); ++i) {
    for (size_t c = 0; c < items[i].choices.size(); ++c) {
      EXPECT_NEAR(small.items[i].log_likelihood[c], r.items[i].log_likelihood[c], 1e-4);
    }
  }
}

const std::string kPiqa = "/data/piqa/valid.jsonl", kPiqaLabels = "/data/piqa/valid-labels.lst";

TEST(MultipleChoice, ReadsThePiqaFile) {
  const auto items = load_multiple_choice(test::shared_dir() + kPiqa, test::shared_dir() + kPiqaLabels, 5);
  ASSERT_EQ(items.size(), 5u);
  EXPECT_EQ(items[0].context, "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
  ASSERT_EQ(items[0].choices.size(), 2u);
  EXPECT_EQ(items[0].choices[0].rfind(
                "Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper", 0),
            0u);
  EXPECT_EQ(items[1].context, "Question: dresser\nAnswer:");
  EXPECT_EQ(items[1].choices[0], "replace drawer with bobby pin ");
  std::vector<int64_t> labels;
  for (const auto& item : items) labels.push_back(item.label);
  EXPECT_EQ(labels, (std::vector<int64_t>{0, 1, 1, 1, 0}));  // the first five lines of valid-labels.lst
  EXPECT_EQ(load_multiple_choice(test::shared_dir() + kPiqa, test::shared_dir() + kPiqaLabels).size(), 1838u);
}

// The message of the halo::Error that `f` throws ("" when none).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(MultipleChoice, BadFilesFailNamingFileAndLine) {
  const std::string dir = test::make_temp_dir();
  const std::string piqa_line = R"({"goal": "g", "sol1": "a", "sol2": "b"})";
  test::write_text(dir + "/labels.lst", "0\n1\n");
  test::write_text(dir + "/bad.jsonl", piqa_line + "\n\n" + R"({"goal": "g", "sol1": 3, "sol2": "b"})" + "\n");
  EXPECT_NE(error_of([&] { load_multiple_choice(dir + "/bad.jsonl", dir + "/labels.lst"); }).find("bad.jsonl:3"),
            std::string::npos);
  test::write_text(dir + "/broken.jsonl", piqa_line + "\n{\"goal\": \n");
  EXPECT_NE(error_of([&] { load_multiple_choice(dir + "/broken.jsonl", dir + "/labels.lst"); }).find("broken.jsonl:2"),
            std::string::npos);
  test::write_text(dir + "/one.jsonl", piqa_line + "\n");
  EXPECT_NE(error_of([&] { load_multiple_choice(dir + "/one.jsonl", dir + "/labels.lst"); }).find("labels.lst"),
            std::string::npos);
  test::write_text(dir + "/two.jsonl", piqa_line + "\n" + piqa_line + "\n");
  test::write_text(dir + "/word.lst", "0\nx\n");
  EXPECT_NE(error_of([&] { load_multiple_choice(dir + "/two.jsonl", dir + "/word.lst"); }).find("word.lst:2"),
            std::string::npos);
  try {
    load_multiple_choice(dir + "/two.jsonl", "");
    ADD_FAILURE() << "PIQA without labels";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), kExitUsage);
  }
  test::write_text(dir + "/generic.jsonl", R"({"context": "c", "choices": ["x", "y"], "label": 1})"
                                           "\n"
                                           R"({"context": "c", "choices": ["x", "y"], "label": 2})"
                                           "\n");
  EXPECT_NE(error_of([&] { load_multiple_choice(dir + "/generic.jsonl", ""); }).find("generic.jsonl:2"),
            std::string::npos);
  // --limit keeps the first items, but the whole file is checked.
  test::write_text(dir + "/generic.jsonl", R"({"context": "c", "choices": ["x", "y"], "label": 1})"
                                           "\n"
                                           R"({"context": "d", "choices": ["x", "y", "z"], "label": 2})"
                                           "\n");
  EXPECT_EQ(load_multiple_choice(dir + "/generic.jsonl", "").size(), 2u);
  const auto first = load_multiple_choice(dir + "/generic.jsonl", "", 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].context, "c");
  EXPECT_EQ(first[0].label, 1);
}

// ---- halo eval ----

TEST(EvalCli, RunsEveryTaskOnTheTinyFixture) {
  const std::string dir = test::make_temp_dir();
  const std::string tok = test::write_byte_tokenizer(dir);
  test::write_text(dir + "/mc.jsonl",
                   R"({"context": "The sky is", "choices": ["blue", "green"], "label": 0})"
                   "\n"
                   R"({"context": "Two plus two is", "choices": ["four", "five", "six"], "label": 0})"
                   "\n"
                   R"({"context": "Ice is", "choices": ["cold", "hot"], "label": 0})"
                   "\n");
  const std::string brown = test::shared_dir() + "/data/text/brown.txt";
  auto r = test::run_halo("eval --model " + test::fixture("qwen3-tiny") + " --tokenizer " + tok +
                          " --device cpu --tasks ppl,niah,mc --text " + brown +
                          " --max-tokens 300 --context 64 --stride 32 "
                          "--lengths 400,500 --depths 0,1 --samples 1 --max-new-tokens 4 --task-file " +
                          dir + "/mc.jsonl --limit 2 --json --out " + dir + "/out/eval.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"], test::fixture("qwen3-tiny"));
  const auto& ppl = j["tasks"]["ppl"];
  EXPECT_EQ(ppl["tokens"].get<int64_t>(), 299);
  EXPECT_NEAR(std::exp(ppl["loss"].get<double>()), ppl["perplexity"].get<double>(),
              1e-6 * ppl["perplexity"].get<double>());
  const auto& niah = j["tasks"]["niah"];
  EXPECT_EQ(niah["total"].get<int64_t>(), 4);
  EXPECT_EQ(niah["cells"].size(), 4u);
  EXPECT_TRUE(niah["lengths"].contains("400") && niah["lengths"].contains("500"));
  EXPECT_TRUE(niah["accuracy"].is_number());
  const auto& mc = j["tasks"]["mc"];
  EXPECT_EQ(mc["items"].get<int64_t>(), 2);
  EXPECT_TRUE(mc["acc"].is_number() && mc["acc_norm"].is_number());
  // Rows: 2 ppl + 4 cells + 2 lengths + 1 overall + 2 mc.
  ASSERT_EQ(j["rows"].size(), 11u);
  for (const auto& row : j["rows"]) {
    for (const char* key : {"task", "setting", "metric", "value"}) EXPECT_TRUE(row.contains(key)) << row.dump();
  }
  EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/out/eval.json")), j);

  auto table = test::run_halo("eval --model " + test::fixture("qwen3-tiny") + " --tokenizer " + tok +
                              " --device cpu --tasks mc --task-file " + dir + "/mc.jsonl");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out.rfind("task  setting", 0), 0u) << table.out;
  EXPECT_NE(table.out.find("mc.jsonl n=3  acc_norm"), std::string::npos) << table.out;
}

TEST(EvalCli, BadOptionsGiveOneErrorLine) {
  auto bad = test::run_halo("eval --model " + test::fixture("qwen3-tiny") + " --tasks ppl,recall");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  EXPECT_NE(bad.err.find("error: --tasks: unknown task 'recall'"), std::string::npos) << bad.err;
  auto no_file = test::run_halo("eval --model " + test::fixture("qwen3-tiny") + " --tasks mc");
  EXPECT_EQ(no_file.exit_code, 2);
  EXPECT_NE(no_file.err.find("--task-file"), std::string::npos) << no_file.err;
}

}  // namespace
}  // namespace halo
