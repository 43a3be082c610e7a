// Trains a byte-level BPE vocabulary on text and writes it as a Hugging Face tokenizer.json that
// halo's tokenizer (load_tokenizer) and the Python `tokenizers` library both load. The tokenizer
// it describes pre-tokenizes exactly as Qwen3's does (NFC, Qwen3's Split regex, ByteLevel), so a
// small model trained with it is a Qwen3 in all but the vocabulary. Ids: the 256 single bytes in
// byte order, then the merged tokens in the order they were learnt, then the special tokens.
// No torch here.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "halo/document_reader.h"

namespace halo {

struct BpeTrainerOptions {
  // The whole vocabulary: 256 byte tokens + merged tokens + special tokens.
  int32_t vocab_size = 4096;
  // A pair seen fewer times than this in the text is never merged; training stops before.
  int64_t min_frequency = 2;
  // Added tokens, matched whole before pre-tokenization (and cut out of the training text);
  // non-empty, without whitespace. The first one is the end-of-sequence token.
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  // How input files are read as documents (document_reader.h), as halo data prepare reads them.
  // Pieces never span two documents.
  DocumentOptions documents;
  // Reads at most this many bytes of document text (0: all of it); a document cut by it ends at
  // the last whole UTF-8 character.
  int64_t max_bytes = 0;
  // Threads that pre-tokenize and count; the result does not depend on it.
  int threads = 1;
  // Text is handed to those threads in chunks of about this size; the result does not depend on
  // it either.
  int64_t chunk_bytes = 1 << 20;
};

struct BpeTrainingResult {
  // The bytes of each id below tokens.size(): the 256 single bytes, then each merged token.
  std::vector<std::string> tokens;
  // The merges in the order they were learnt, as the ids of their left and right tokens. Two
  // merges may make the same bytes ("a"+"bc", "ab"+"c"); the second then adds no token.
  std::vector<std::pair<int32_t, int32_t>> merges;
  // Ids tokens.size(), tokens.size() + 1, ... in order.
  std::vector<std::string> special_tokens;

  // What was read: files, text bytes (up to max_bytes), pre-tokenized pieces (special tokens
  // left out), their bytes after NFC, and the tokens that the merges make of them.
  int64_t files = 0, text_bytes = 0, pieces = 0, distinct_pieces = 0, piece_bytes = 0, piece_tokens = 0;

  int32_t vocab_size() const { return static_cast<int32_t>(tokens.size() + special_tokens.size()); }
};

// Trains on the documents of `inputs`: files, directories (their files recursively, sorted by
// path) or glob patterns (see expand_inputs), read as options.documents says, as halo data
// prepare reads them (DocumentReader; by default .jsonl and .json files are JSON Lines whose
// objects' "text" field is read, and every other file is one document). The text must be
// UTF-8. A whole-file document is read into memory whole (even past max_bytes), so reading
// holds about one file plus a few chunks per thread. Each step picks the most frequent pair of
// adjacent tokens inside a piece; ties go to the pair whose left token's bytes are
// lexicographically smallest, then the right token's. Training stops at options.vocab_size or
// when no pair is seen min_frequency times. Usage errors (exit code 2) for bad options; errors
// naming the file (and line) for unreadable input.
BpeTrainingResult train_bpe(const std::vector<std::string>& inputs, const BpeTrainerOptions& options);

// Writes DIR/tokenizer.json (normalizer NFC, Qwen3's Split + ByteLevel pre-tokenizer, ByteLevel
// decoder, merges as ["a", "b"] pairs, special tokens as added tokens) and
// DIR/tokenizer_config.json (eos_token: the first special token), creating DIR if needed.
void write_tokenizer_json(const std::string& dir, const BpeTrainingResult& result);

}  // namespace halo
