// Private glue between the two halves of the GGUF importer: gguf_import.cpp (config, weights,
// the directory) and gguf_import_tokenizer.cpp (tokenizer.ggml.* -> the tokenizer files).
// No torch here.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace halo {

class GgufFile;

// The tokenizer.ggml.* metadata of a GGUF file, read and checked.
struct GgufTokenizer {
  std::string model;  // tokenizer.ggml.model: always "gpt2" once read
  std::string pre;    // tokenizer.ggml.pre, "default" when absent
  std::vector<std::string> tokens;
  std::vector<int64_t> token_types;  // one per token (1 NORMAL when the key is absent)
  std::vector<std::string> merges;   // "a b"
  std::optional<int64_t> bos_id, eos_id, unk_id, pad_id;
  bool add_bos = false, add_eos = false;
  std::optional<std::string> chat_template;
};

// Reads the tokenizer metadata; fails naming the file and key unless it is a byte-level BPE
// ("gpt2") tokenizer with a pre-tokenizer halo knows, consistent ids and valid UTF-8 tokens.
GgufTokenizer read_gguf_tokenizer(const GgufFile& file);

struct GgufTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
  std::string special_tokens_map_json;
};

// The Hugging Face tokenizer files for `tokenizer`; `model_max_length` is the context length.
GgufTokenizerFiles gguf_tokenizer_files(const GgufTokenizer& tokenizer, int64_t model_max_length);

// The tokenizer.ggml.pre names halo maps to a pre-tokenizer, comma-separated (for messages).
std::string supported_gguf_pre_tokenizers();

}  // namespace halo
