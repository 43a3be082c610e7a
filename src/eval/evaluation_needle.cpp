// Needle in a haystack, RULER NIAH-single style. Prompts are assembled from token ids: the
// header, the question and the needle are tokenized alone and every filler sentence is
// tokenized with one leading space, so a prompt hits its length exactly and the needle's token
// position is known. Each (length, depth, sample) draws its key, value and starting sentence
// from its own SplitMix64 stream, so a sample does not change when others are added.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <utility>

#include "halo/causal_lm.h"
#include "halo/error.h"
#include "halo/evaluation.h"
#include "halo/generation.h"
#include "halo/needle_text.h"
#include "halo/tokenizer.h"

namespace halo {
namespace {

// Filler sentences, each tokenized (with its leading space) the first time a prompt needs it.
class Filler {
 public:
  Filler(const Tokenizer& tokenizer, std::vector<std::string> sentences)
      : tokenizer_(tokenizer), sentences_(std::move(sentences)), ids_(sentences_.size()) {}

  size_t size() const { return sentences_.size(); }
  const std::vector<int32_t>& ids(size_t i) {
    if (ids_[i].empty()) ids_[i] = tokenizer_.encode(" " + sentences_[i]);
    return ids_[i];
  }

 private:
  const Tokenizer& tokenizer_;
  std::vector<std::string> sentences_;
  std::vector<std::vector<int32_t>> ids_;
};

// The generator seed of one (length, depth index, sample index) under the user's seed.
uint64_t sample_seed(uint64_t seed, int64_t length, size_t depth_index, int64_t sample) {
  SplitMix64 mix(seed);
  return mix.next() ^ (static_cast<uint64_t>(length) * 0xD6E8FEB86659FD93ull) ^
         ((depth_index + 1) * 0xA0761D6478BD642Full) ^ ((static_cast<uint64_t>(sample) + 1) * 0xE7037ED1A0B428DBull);
}

NeedleSample build_sample(const Tokenizer& tokenizer, Filler& filler, const std::vector<int32_t>& header,
                          int64_t length, double depth, SplitMix64& rng) {
  NeedleSample s;
  s.length = length;
  s.depth = depth;
  s.key = draw_needle_key(rng);
  s.value = draw_needle_value(rng);
  const size_t start = rng.below(filler.size());

  const std::vector<int32_t> needle = tokenizer.encode(needle_sentence(s.key, s.value));
  const std::vector<int32_t> question = tokenizer.encode(needle_question(s.key));
  const int64_t fixed_tokens = static_cast<int64_t>(header.size() + needle.size() + question.size());
  const int64_t budget = length - fixed_tokens;
  if (budget <= 0) {
    usage_fail("NIAH length ", length, " leaves no room for filler: the prompt template alone takes ", fixed_tokens,
               " tokens");
  }

  // Consecutive sentences up to the budget; boundaries[j] = tokens before sentence j.
  std::vector<int32_t> haystack;
  std::vector<int64_t> boundaries;
  for (size_t i = start; static_cast<int64_t>(haystack.size()) < budget; i = (i + 1) % filler.size()) {
    boundaries.push_back(static_cast<int64_t>(haystack.size()));
    const std::vector<int32_t>& ids = filler.ids(i);
    const size_t take = std::min<size_t>(ids.size(), budget - haystack.size());
    haystack.insert(haystack.end(), ids.begin(), ids.begin() + take);
  }
  boundaries.push_back(budget);
  const double target = depth * static_cast<double>(budget);
  int64_t cut = boundaries.front();
  for (int64_t b : boundaries) {
    if (std::abs(static_cast<double>(b) - target) < std::abs(static_cast<double>(cut) - target)) cut = b;
  }

  s.prompt = header;
  s.haystack_begin = static_cast<int64_t>(header.size());
  s.haystack_tokens = budget;
  s.prompt.insert(s.prompt.end(), haystack.begin(), haystack.begin() + cut);
  s.needle_begin = static_cast<int64_t>(s.prompt.size());
  s.needle_tokens = static_cast<int64_t>(needle.size());
  s.prompt.insert(s.prompt.end(), needle.begin(), needle.end());
  s.prompt.insert(s.prompt.end(), haystack.begin() + cut, haystack.end());
  s.prompt.insert(s.prompt.end(), question.begin(), question.end());
  return s;
}

}  // namespace

std::vector<NeedleSample> build_needle_samples(const Tokenizer& tokenizer, const std::string& filler_text,
                                               const NeedleOptions& options) {
  if (options.samples < 1) usage_fail("NIAH samples must be >= 1, got ", options.samples);
  if (options.lengths.empty() || options.depths.empty()) usage_fail("NIAH needs at least one length and one depth");
  for (double d : options.depths) {
    if (!(d >= 0.0 && d <= 1.0)) usage_fail("NIAH depth ", d, " is outside [0, 1]");
  }
  Filler filler(tokenizer, split_sentences(filler_text));
  if (filler.size() == 0) fail("the NIAH filler text is empty: give a file of real text");
  const std::vector<int32_t> header = tokenizer.encode(needle_header());
  std::vector<NeedleSample> samples;
  for (size_t li = 0; li < options.lengths.size(); ++li) {
    for (size_t di = 0; di < options.depths.size(); ++di) {
      for (int64_t k = 0; k < options.samples; ++k) {
        SplitMix64 rng(sample_seed(options.seed, options.lengths[li], di, k));
        samples.push_back(build_sample(tokenizer, filler, header, options.lengths[li], options.depths[di], rng));
      }
    }
  }
  return samples;
}

bool needle_answer_found(const std::string& output, const std::string& value) {
  return !value.empty() && output.find(value) != std::string::npos;
}

double NeedleResult::length_accuracy(int64_t length) const {
  int64_t right = 0, all = 0;
  for (const auto& c : cells) {
    if (c.length != length) continue;
    right += c.correct;
    all += c.total;
  }
  return all > 0 ? static_cast<double>(right) / all : 0.0;
}

NeedleResult evaluate_needle(CausalLM& model, const Tokenizer& tokenizer, const std::vector<NeedleSample>& samples,
                             const NeedleOptions& options, const std::vector<int64_t>& stop_ids,
                             const std::function<void(int64_t)>& on_progress) {
  if (options.max_new_tokens < 1) usage_fail("NIAH max new tokens must be >= 1");
  if (options.batch_tokens < 1) usage_fail("NIAH batch tokens must be >= 1");
  GenerationOptions generation;
  generation.max_new_tokens = options.max_new_tokens;
  generation.stop_ids = stop_ids;
  NeedleResult result;
  result.answers.resize(samples.size());
  std::map<std::pair<int64_t, double>, size_t> cell_of;
  for (const auto& s : samples) {
    check_token_range(s.prompt, model.config().vocab_size);
    auto [it, added] = cell_of.try_emplace({s.length, s.depth}, result.cells.size());
    if (added) result.cells.push_back({s.length, s.depth, 0, 0});
  }
  for (size_t begin = 0; begin < samples.size();) {
    // Consecutive samples while the padded batch stays within the token budget.
    size_t end = begin + 1;
    size_t longest = samples[begin].prompt.size();
    while (end < samples.size()) {
      const size_t widest = std::max(longest, samples[end].prompt.size());
      if (static_cast<int64_t>((end - begin + 1) * widest) > options.batch_tokens) break;
      longest = widest;
      ++end;
    }
    std::vector<std::vector<int64_t>> prompts;
    for (size_t i = begin; i < end; ++i) prompts.emplace_back(samples[i].prompt.begin(), samples[i].prompt.end());
    const auto outputs = generate_batch(model, prompts, generation);
    for (size_t i = begin; i < end; ++i) {
      // An id past the tokenizer's vocabulary (a padded embedding row: Qwen3 has 151,936 rows for
      // 151,669 tokens) has no text; a model that produces one has answered, wrongly, up to it.
      std::vector<int32_t> answer;
      for (int64_t id : outputs[i - begin]) {
        if (id >= tokenizer.vocab_size()) break;
        answer.push_back(static_cast<int32_t>(id));
      }
      result.answers[i] = tokenizer.decode(answer);
      const bool right = needle_answer_found(result.answers[i], samples[i].value);
      NeedleCell& cell = result.cells[cell_of.at({samples[i].length, samples[i].depth})];
      cell.correct += right;
      cell.total += 1;
      result.correct += right;
      result.total += 1;
    }
    if (on_progress) on_progress(static_cast<int64_t>(end));
    begin = end;
  }
  return result;
}

}  // namespace halo
