// Needle-in-a-haystack text pieces and synthetic retrieval documents (see needle_text.h).
#include "halo/needle_text.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "halo/error.h"

namespace halo {
namespace {

// Keys are "<adjective>-<noun>": 32 x 32 combinations.
const char* const kAdjectives[] = {"amber",  "bold",   "brisk",  "calm",   "clever", "crimson", "dusty", "eager",
                                   "faint",  "fierce", "gentle", "golden", "hollow", "humble",  "icy",   "jolly",
                                   "lively", "lucky",  "mellow", "misty",  "noble",  "pale",    "proud", "quiet",
                                   "rapid",  "rusty",  "silent", "silver", "sturdy", "tender",  "vivid", "wild"};
const char* const kNouns[] = {"anchor",  "badger",  "beacon", "canyon", "cedar",   "comet",  "falcon", "forest",
                              "garden",  "glacier", "harbor", "island", "lantern", "meadow", "mirror", "orchid",
                              "otter",   "pepper",  "planet", "quarry", "river",   "saddle", "spruce", "summit",
                              "thistle", "tiger",   "tunnel", "valley", "walnut",  "willow", "wizard", "zephyr"};

}  // namespace

const std::string& needle_header() {
  static const std::string header =
      "Some special magic numbers are hidden within the following text. Make sure to memorize it. "
      "I will quiz you about the numbers afterwards.\n";
  return header;
}

std::string needle_sentence(const std::string& key, const std::string& value) {
  return " The special magic number for " + key + " is: " + value + ".";
}

std::string needle_question(const std::string& key) {
  return "\nWhat is the special magic number for " + key +
         " mentioned in the provided text? The special magic number for " + key + " is:";
}

std::string draw_needle_key(SplitMix64& rng) {
  const uint64_t words = sizeof(kAdjectives) / sizeof(kAdjectives[0]);
  const std::string adjective = kAdjectives[rng.below(words)];
  return adjective + "-" + kNouns[rng.below(words)];
}

std::string draw_needle_value(SplitMix64& rng) {
  return std::to_string(1000000 + rng.below(9000000));
}

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

std::vector<std::string> retrieval_documents(const std::vector<std::string>& filler_sentences,
                                             const RetrievalDocumentOptions& options) {
  if (options.count < 0) usage_fail("retrieval documents: the count must be >= 0, got ", options.count);
  if (options.min_chars < 1 || options.max_chars < options.min_chars) {
    usage_fail("retrieval documents: need 1 <= min chars <= max chars");
  }
  if (options.needles < 1 || options.needles > 64) {
    usage_fail("retrieval documents: needles per document must be 1 to 64, got ", options.needles);
  }
  if (options.recalls < 0 || options.recalls > 16) {
    usage_fail("retrieval documents: recalls per needle must be 0 to 16, got ", options.recalls);
  }
  std::vector<const std::string*> filler;
  filler.reserve(filler_sentences.size());
  for (const std::string& sentence : filler_sentences) {
    const bool digit = std::any_of(sentence.begin(), sentence.end(),
                                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
    if (!(options.digit_free_filler && digit)) filler.push_back(&sentence);
  }
  if (filler.empty()) {
    fail(options.digit_free_filler && !filler_sentences.empty()
             ? "retrieval documents: every sentence of the filler text holds a digit"
             : "retrieval documents: the filler text has no sentences");
  }
  const auto needles = static_cast<size_t>(options.needles);
  SplitMix64 rng(options.seed);
  std::vector<std::string> docs;
  docs.reserve(static_cast<size_t>(options.count));
  for (int64_t d = 0; d < options.count; ++d) {
    std::vector<std::string> keys, values;
    while (keys.size() < needles) {
      std::string key = draw_needle_key(rng), value = draw_needle_value(rng);
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
      keys.push_back(std::move(key));
      values.push_back(std::move(value));
    }
    const int64_t target =
        options.min_chars +
        static_cast<int64_t>(rng.below(static_cast<uint64_t>(options.max_chars - options.min_chars + 1)));
    std::vector<const std::string*> pieces;
    int64_t chars = 0;
    for (size_t i = rng.below(filler.size()); chars < target; i = (i + 1) % filler.size()) {
      pieces.push_back(filler[i]);
      chars += static_cast<int64_t>(filler[i]->size()) + 1;
    }
    // needle_at[j]: the sentence boundary needle j goes in front of (pieces.size(): the end).
    std::vector<size_t> needle_at(needles);
    for (size_t& at : needle_at) at = rng.below(pieces.size() + 1);
    // recall_at[j]: the boundaries (at or after needle j's) where needle j is repeated.
    std::vector<std::vector<size_t>> recall_at(needles);
    for (size_t j = 0; j < needles; ++j) {
      for (int64_t r = 0; r < options.recalls; ++r) {
        recall_at[j].push_back(needle_at[j] + rng.below(pieces.size() + 1 - needle_at[j]));
      }
    }
    // scramble_words: the pieces rebuilt from the shuffled words, drawn from a generator of the
    // document's own so that everything else is drawn as without it.
    std::vector<std::string> scrambled;
    if (options.scramble_words) {
      SplitMix64 word_rng(options.seed ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(d + 1)));
      std::vector<std::string> words;
      std::vector<size_t> counts;
      for (const std::string* piece : pieces) {
        const size_t before = words.size();
        std::istringstream in(*piece);
        for (std::string word; in >> word;) words.push_back(std::move(word));
        counts.push_back(words.size() - before);
      }
      for (size_t j = words.size(); j > 1; --j) std::swap(words[j - 1], words[word_rng.below(j)]);
      size_t w = 0;
      for (size_t count : counts) {
        std::string piece;
        for (size_t k = 0; k < count; ++k) piece += (k > 0 ? " " : "") + words[w++];
        scrambled.push_back(std::move(piece));
      }
      for (size_t i = 0; i < pieces.size(); ++i) pieces[i] = &scrambled[i];
    }
    std::string text;
    for (size_t i = 0; i <= pieces.size(); ++i) {
      for (size_t j = 0; j < needles; ++j) {
        if (needle_at[j] == i) text += needle_sentence(keys[j], values[j]);
      }
      for (size_t j = 0; j < needles; ++j) {
        for (size_t at : recall_at[j]) {
          if (at == i) text += needle_sentence(keys[j], values[j]);
        }
      }
      if (i < pieces.size()) text += (text.empty() ? "" : " ") + *pieces[i];
    }
    std::string doc = needle_header() + text;
    if (options.repeat_text) doc += "\n" + text;
    // The questions in a random order (Fisher-Yates; nothing drawn for one needle).
    std::vector<size_t> order(needles);
    for (size_t j = 0; j < needles; ++j) order[j] = j;
    for (size_t j = needles; j > 1; --j) std::swap(order[j - 1], order[rng.below(j)]);
    for (size_t j : order) doc += needle_question(keys[j]) + " " + values[j] + ".";
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace halo
