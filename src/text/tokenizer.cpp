// load_tokenizer picks the backend from the path (tokenizer.json: byte-level BPE; .model:
// SentencePiece) and reads eos_token from a tokenizer_config.json lying beside that file.
// Also the UTF-8 checks both backends share: input must be well-formed, and decoded bytes
// are made well-formed by U+FFFD substitution.
#include <nlohmann/json.hpp>

#include "halo/error.h"
#include "halo/file_system.h"
#include "text/tokenizer_backends.h"

namespace halo {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

TokenizerConfig read_tokenizer_config(const std::string& dir) {
  TokenizerConfig config;
  const std::string path = dir + "/tokenizer_config.json";
  if (!is_regular_file(path)) return config;
  config.path = path;
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": not valid JSON (", e.what(), "); fix or remove the file");
  }
  if (!json.is_object()) fail(path, ": expected a JSON object at the top level");
  const auto eos = json.find("eos_token");
  if (eos == json.end() || eos->is_null()) return config;
  if (eos->is_string()) {
    config.eos_token = eos->get<std::string>();
  } else if (eos->is_object() && eos->contains("content") && (*eos)["content"].is_string()) {
    config.eos_token = (*eos)["content"].get<std::string>();
  } else {
    fail(path, ": eos_token must be a string or an object with a string \"content\"");
  }
  return config;
}

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  if (ends_with(path, ".json")) return load_bpe_tokenizer(path, read_tokenizer_config(dir));
  if (ends_with(path, ".model")) {
    return load_sentencepiece_tokenizer(path, read_tokenizer_config(dir));
  }
  fail(path,
       ": unknown tokenizer file type; pass a tokenizer.json (BPE), a SentencePiece "
       ".model file, or a directory holding one");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir_or_file) {
  if (is_directory(dir_or_file)) {
    for (const char* name : {"/tokenizer.json", "/tokenizer.model"}) {
      if (is_regular_file(dir_or_file + name)) return load_tokenizer_file(dir_or_file + name);
    }
    fail(dir_or_file,
         ": no tokenizer.json or tokenizer.model in this directory; pass the model "
         "directory that holds the tokenizer, or the tokenizer file itself");
  }
  if (!is_regular_file(dir_or_file)) {
    fail(dir_or_file,
         ": no such tokenizer file or directory; pass a tokenizer.json, a "
         "SentencePiece .model file, or a directory holding one");
  }
  return load_tokenizer_file(dir_or_file);
}

Utf8Step utf8_step(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return {1, true};
  // Continuation bytes are 0x80..0xBF, except that the second byte is narrowed after some lead
  // bytes to rule out overlong forms, UTF-16 surrogates and code points above U+10FFFF.
  size_t continuations = 0;
  unsigned char second_low = 0x80, second_high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuations = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    continuations = 2;
    if (lead == 0xE0) second_low = 0xA0;
    if (lead == 0xED) second_high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    continuations = 3;
    if (lead == 0xF0) second_low = 0x90;
    if (lead == 0xF4) second_high = 0x8F;
  } else {
    return {1, false};
  }
  for (size_t k = 1; k <= continuations; ++k) {
    const unsigned char low = k == 1 ? second_low : 0x80, high = k == 1 ? second_high : 0xBF;
    if (pos + k >= text.size() || byte(pos + k) < low || byte(pos + k) > high) return {k, false};
  }
  return {continuations + 1, true};
}

size_t invalid_utf8_offset(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Utf8Step step = utf8_step(text, pos);
    if (!step.valid) return pos;
    pos += step.length;
  }
  return std::string_view::npos;
}

void check_utf8(std::string_view text) {
  const size_t bad = invalid_utf8_offset(text);
  if (bad != std::string_view::npos) {
    fail("text to tokenize is not valid UTF-8 at byte ", bad, " (of ", text.size(), "); convert it to UTF-8 first");
  }
}

std::string replace_invalid_utf8(std::string_view bytes) {
  std::string text;
  text.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const Utf8Step step = utf8_step(bytes, pos);
    if (step.valid) {
      text.append(bytes.substr(pos, step.length));
    } else {
      text.append("\xEF\xBF\xBD");  // U+FFFD REPLACEMENT CHARACTER
    }
    pos += step.length;
  }
  return text;
}

}  // namespace halo
