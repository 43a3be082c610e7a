// Tokenizers behind one interface: Hugging Face byte-level BPE (tokenizer.json, as Qwen3 uses)
// and SentencePiece (.model). No torch here.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace halo {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of the exact UTF-8 text (no BOS/EOS added).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Text of the ids; ids out of range fail with a clear error.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // Number of ids (base vocabulary plus added tokens): the largest id + 1.
  virtual int32_t vocab_size() const = 0;
  // The id of a token given by its string (e.g. "<|endoftext|>"), if any.
  virtual std::optional<int32_t> token_to_id(const std::string& token) const = 0;
  // End-of-sequence id from tokenizer_config.json's eos_token (or the backend's own), if known.
  virtual std::optional<int32_t> eos_id() const = 0;
};

// Loads from a directory (tokenizer.json, else tokenizer.model; tokenizer_config.json beside
// it is read when present) or from a file path (.json: BPE, .model: SentencePiece).
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir_or_file);

}  // namespace halo
