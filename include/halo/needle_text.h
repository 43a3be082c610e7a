// The text of needle-in-a-haystack retrieval (RULER NIAH-single style), shared by the NIAH
// evaluation and by the synthetic retrieval documents that teach a small teacher the task:
// a header, filler sentences with "The special magic number for <key> is: <value>." hidden at
// some depth, then the question. Keys are "<adjective>-<noun>", values 7 digits, drawn from a
// SplitMix64 stream so that every platform produces the same text. The training documents may
// hide several needles (distinct keys) and ask for each, may repeat each needle verbatim later in
// the filler (recalls) or repeat the whole text once (copy targets at varied distances, for the
// in-context copying a small model must learn first), and may leave out filler sentences that
// hold digits; the NIAH prompts are always one needle in the filler as given. No torch here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace halo {

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

const std::string& needle_header();
std::string needle_sentence(const std::string& key, const std::string& value);  // leading space
std::string needle_question(const std::string& key);                            // ends with "is:"
std::string draw_needle_key(SplitMix64& rng);
std::string draw_needle_value(SplitMix64& rng);

// Lines of the text, cut after sentence-ending punctuation followed by a space; trimmed,
// empty pieces dropped.
std::vector<std::string> split_sentences(const std::string& text);

struct RetrievalDocumentOptions {
  int64_t count = 2000;     // documents
  int64_t min_chars = 200;  // filler characters per document: uniform in [min_chars, max_chars]
  int64_t max_chars = 2000;
  int64_t needles = 1;  // needles per document, 1 to 64, with distinct keys
  // Leave out filler sentences that hold an ASCII digit, so that the magic numbers are the only
  // digits of a document (digits in the filler are distractors for a small model that learns to
  // copy them).
  bool digit_free_filler = false;
  // Repeat each needle sentence verbatim this many times (0 to 16) at random sentence boundaries
  // at or after its own: every digit of a recall can be copied from the needle, from a distance
  // that varies (so no fixed offset solves it), as the answer after the question is copied.
  int64_t recalls = 0;
  // Write the text between the header and the questions twice (the copy after a newline): every
  // token of the copy can be predicted by copying from one document-dependent distance back.
  bool repeat_text = false;
  // Shuffle the filler's words across the document (needles intact): word salad that only
  // unigram statistics predict, so that with repeat_text only copying predicts the copy.
  bool scramble_words = false;
  uint64_t seed = 0;
};

// Training documents for retrieval: header, about `chars` characters of consecutive filler
// sentences (from a random start) with `needles` needles at random sentence boundaries (in the
// order drawn; several may share a boundary; a boundary's needles come before its recalls), the
// text again with repeat_text, then for each needle, in a random order, the question and its
// answer (" <value>."), all in the NIAH prompt's template. Deterministic by options.seed; with one
// needle, all the filler, no recalls and no repeat, the documents are the same as before these
// options existed.
std::vector<std::string> retrieval_documents(const std::vector<std::string>& filler_sentences,
                                             const RetrievalDocumentOptions& options);

}  // namespace halo
