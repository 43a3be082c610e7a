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
#include "halo/tokenizer.h"

namespace halo {
namespace {

const char* const kHeader =
    "Some special magic numbers are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the numbers afterwards.\n";

// Keys are "<adjective>-<noun>": 32 x 32 combinations.
const char* const kAdjectives[] = {
    "amber",  "bold",   "brisk",  "calm",   "clever", "crimson", "dusty",  "eager",  "faint",  "fierce", "gentle",
    "golden", "hollow", "humble", "icy",    "jolly",  "lively",  "lucky",  "mellow", "misty",  "noble",  "pale",
    "proud",  "quiet",  "rapid",  "rusty",  "silent", "silver",  "sturdy", "tender", "vivid",  "wild"};
const char* const kNouns[] = {
    "anchor", "badger", "beacon", "canyon", "cedar",  "comet",   "falcon", "forest", "garden", "glacier", "harbor",
    "island", "lantern", "meadow", "mirror", "orchid", "otter",  "pepper", "planet", "quarry", "river",  "saddle",
    "spruce", "summit", "thistle", "tiger", "tunnel", "valley",  "walnut", "willow", "wizard", "zephyr"};

// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator with the same output everywhere.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (the modulo bias is below 2^-40 for the n used here).
  uint64_t below(uint64_t n) { return next() % n; }

 private:
  uint64_t state_;
};

// Lines of the filler, cut after sentence-ending punctuation followed by a space; trimmed,
// empty pieces dropped.
std::vector<std::string> split_sentences(const std::string& text) {
  std::vector<std::string> sentences;
  auto push = [&](size_t begin, size_t end) {
    while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
    while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
    if (end > begin) sentences.push_back(text.substr(begin, end - begin));
  };
  size_t begin = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      push(begin, i);
      begin = i + 1;
    } else if ((c == '.' || c == '?' || c == '!') && i + 1 < text.size() && text[i + 1] == ' ') {
      push(begin, i + 1);
      begin = i + 1;
    }
  }
  push(begin, text.size());
  return sentences;
}

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
  const uint64_t words = sizeof(kAdjectives) / sizeof(kAdjectives[0]);
  s.key = std::string(kAdjectives[rng.below(words)]) + "-" + kNouns[rng.below(words)];
  s.value = std::to_string(1000000 + rng.below(9000000));
  const size_t start = rng.below(filler.size());

  const std::vector<int32_t> needle = tokenizer.encode(" The special magic number for " + s.key + " is: " + s.value + ".");
  const std::vector<int32_t> question =
      tokenizer.encode("\nWhat is the special magic number for " + s.key +
                            " mentioned in the provided text? The special magic number for " + s.key + " is:");
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
  const std::vector<int32_t> header = tokenizer.encode(kHeader);
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
      const auto& out = outputs[i - begin];
      result.answers[i] = tokenizer.decode(std::vector<int32_t>(out.begin(), out.end()));
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
