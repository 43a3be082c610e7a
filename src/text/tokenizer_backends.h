// Private glue between load_tokenizer (tokenizer.cpp) and the two backends: their loader
// functions, what tokenizer_config.json tells them, the UTF-8 checks they share, and how text
// from their files appears in errors.
#pragma once
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "halo/tokenizer.h"

namespace halo {

// What tokenizer_config.json says that a backend needs; empty when there is no such file.
struct TokenizerConfig {
  std::string path;                      // the file it came from, for error messages
  std::optional<std::string> eos_token;  // "eos_token", as a string or as {"content": ...}
};

// Hugging Face byte-level BPE from a tokenizer.json (bpe_tokenizer.cpp).
std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& json_path, const TokenizerConfig& config);

// SentencePiece from a .model file (sentencepiece_tokenizer.cpp).
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path, const TokenizerConfig& config);

// One step through UTF-8 text: the sequence starting at byte `pos` is `length` bytes long and
// valid, or it is invalid and `length` is its maximal ill-formed subpart (at least 1 byte).
struct Utf8Step {
  size_t length;
  bool valid;
};
Utf8Step utf8_step(std::string_view text, size_t pos);

// The byte offset of the first ill-formed UTF-8 sequence, or std::string_view::npos.
size_t invalid_utf8_offset(std::string_view text);

// Fails with "... not valid UTF-8 at byte N" unless `text` is well-formed UTF-8.
void check_utf8(std::string_view text);

// `bytes` with every ill-formed sequence replaced by U+FFFD (as decoders of byte-level tokens do).
std::string replace_invalid_utf8(std::string_view bytes);

}  // namespace halo
