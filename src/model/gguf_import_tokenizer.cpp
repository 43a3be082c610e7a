// tokenizer.ggml.* of a GGUF file -> tokenizer.json, tokenizer_config.json and
// special_tokens_map.json as Hugging Face tokenizers / transformers write them.
//
// Only byte-level BPE ("gpt2") is imported: the vocabulary is the token list (ids = positions),
// the merges keep their order (rank), CONTROL (3) tokens become special added tokens and
// USER_DEFINED (4) ones plain added tokens, both matched in the raw text. tokenizer.ggml.pre
// picks the pre-tokenizer as llama.cpp's llama-vocab.cpp does, written in tokenizer.json's
// own vocabulary: llama.cpp applies a list of regexes one after the other, each cutting every
// piece into its matches and the gaps between them, which is a Sequence of Split (Isolated)
// steps; its GPT-2 regex is ByteLevel's own (use_regex true); "\p{N}" alone is Digits.
#include <nlohmann/json.hpp>

#include <map>
#include <set>

#include "halo/error.h"
#include "halo/gguf.h"
#include "model/gguf_import_internal.h"

namespace halo {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr int64_t kTokenControl = 3;
constexpr int64_t kTokenUserDefined = 4;

// The regexes of llama.cpp's pre-tokenizer table, in tokenizer.json spelling.
constexpr const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class PreKind {
  digits_byte_level,  // Digits(individual) then ByteLevel with GPT-2's regex (SmolLM, StarCoder)
  byte_level,         // ByteLevel with GPT-2's regex (GPT-2)
  llama3,             // Split(llama3 regex) then ByteLevel without regex
  qwen2,              // NFC, Split(qwen2 regex) then ByteLevel without regex
  default_bpe,        // llama.cpp's default list of four regexes, then ByteLevel without regex
};

struct PreEntry {
  const char* name;
  PreKind kind;
};

// tokenizer.ggml.pre values and llama.cpp's pre-tokenizer type for each (llama-vocab.cpp).
constexpr PreEntry kPreTable[] = {
    {"default", PreKind::default_bpe},
    {"smollm", PreKind::digits_byte_level},
    {"starcoder", PreKind::digits_byte_level},
    {"refact", PreKind::digits_byte_level},
    {"codeshell", PreKind::digits_byte_level},
    {"gpt-2", PreKind::byte_level},
    {"gpt2", PreKind::byte_level},
    {"phi-2", PreKind::byte_level},
    {"mpt", PreKind::byte_level},
    {"olmo", PreKind::byte_level},
    {"llama3", PreKind::llama3},
    {"llama-v3", PreKind::llama3},
    {"llama-bpe", PreKind::llama3},
    {"falcon3", PreKind::llama3},
    {"dbrx", PreKind::llama3},
    {"smaug-bpe", PreKind::llama3},
    {"qwen2", PreKind::qwen2},
    {"deepseek-r1-qwen", PreKind::qwen2},
};

const PreEntry* find_pre(const std::string& name) {
  for (const PreEntry& entry : kPreTable) {
    if (name == entry.name) return &entry;
  }
  return nullptr;
}

// Whether `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool valid_utf8(const std::string& text) {
  size_t i = 0;
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  while (i < text.size()) {
    const unsigned char lead = byte(i);
    size_t extra = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      extra = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      extra = 2;
      if (lead == 0xE0) low = 0xA0;
      if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      extra = 3;
      if (lead == 0xF0) low = 0x90;
      if (lead == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    for (size_t k = 1; k <= extra; ++k) {
      if (i + k >= text.size()) return false;
      const unsigned char lo = k == 1 ? low : 0x80, hi = k == 1 ? high : 0xBF;
      if (byte(i + k) < lo || byte(i + k) > hi) return false;
    }
    i += extra + 1;
  }
  return true;
}

ordered_json split_step(const char* regex) {
  ordered_json step;
  step["type"] = "Split";
  step["pattern"] = ordered_json{{"Regex", regex}};
  step["behavior"] = "Isolated";
  step["invert"] = false;
  return step;
}

ordered_json byte_level_step(bool use_regex) {
  ordered_json step;
  step["type"] = "ByteLevel";
  step["add_prefix_space"] = false;
  step["trim_offsets"] = use_regex;
  step["use_regex"] = use_regex;
  return step;
}

ordered_json pre_tokenizer_json(PreKind kind) {
  const auto sequence = [](std::vector<ordered_json> steps) {
    ordered_json json;
    json["type"] = "Sequence";
    json["pretokenizers"] = std::move(steps);
    return json;
  };
  switch (kind) {
    case PreKind::digits_byte_level: {
      ordered_json digits;
      digits["type"] = "Digits";
      digits["individual_digits"] = true;
      return sequence({digits, byte_level_step(true)});
    }
    case PreKind::byte_level:
      return byte_level_step(true);
    case PreKind::llama3:
      return sequence({split_step(kLlama3Regex), byte_level_step(false)});
    case PreKind::qwen2:
      return sequence({split_step(kQwen2Regex), byte_level_step(false)});
    case PreKind::default_bpe:
      return sequence({split_step(R"([\p{P}\$\+<=>\^~\|]+)"), split_step(kGpt2Regex), split_step(R"(\p{N}+)"),
                       split_step("[0-9][0-9][0-9]"), byte_level_step(false)});
  }
  return nullptr;
}

ordered_json added_token_json(int64_t id, const std::string& content, bool special) {
  ordered_json json;
  json["id"] = id;
  json["content"] = content;
  json["single_word"] = false;
  json["lstrip"] = false;
  json["rstrip"] = false;
  json["normalized"] = false;
  json["special"] = special;
  return json;
}

// tokenizer.json's TemplateProcessing for BOS and/or EOS around each sequence.
ordered_json template_processing(const GgufTokenizer& t) {
  const auto special = [&](int64_t id) {
    return ordered_json{{"SpecialToken", {{"id", t.tokens[static_cast<size_t>(id)]}, {"type_id", 0}}}};
  };
  const auto sequence = [](const char* name, int type_id) {
    return ordered_json{{"Sequence", {{"id", name}, {"type_id", type_id}}}};
  };
  ordered_json single = ordered_json::array(), pair = ordered_json::array();
  ordered_json special_tokens = ordered_json::object();
  const bool bos = t.add_bos && t.bos_id, eos = t.add_eos && t.eos_id;
  for (const int64_t id : {bos ? *t.bos_id : -1, eos ? *t.eos_id : -1}) {
    if (id < 0) continue;
    const std::string& token = t.tokens[static_cast<size_t>(id)];
    special_tokens[token] = ordered_json{{"id", token}, {"ids", {id}}, {"tokens", {token}}};
  }
  if (bos) single.push_back(special(*t.bos_id));
  single.push_back(sequence("A", 0));
  if (eos) single.push_back(special(*t.eos_id));
  pair = single;
  if (bos) pair.push_back(special(*t.bos_id));
  pair.push_back(sequence("B", 1));
  if (eos) pair.push_back(special(*t.eos_id));
  ordered_json json;
  json["type"] = "TemplateProcessing";
  json["single"] = std::move(single);
  json["pair"] = std::move(pair);
  json["special_tokens"] = std::move(special_tokens);
  return json;
}

// `json` dumped with two-space indentation, every line after the first indented by `indent`.
std::string nested(const ordered_json& json, const std::string& indent) {
  const std::string text = json.dump(2);
  std::string out;
  out.reserve(text.size() + 64);
  for (const char c : text) {
    out += c;
    if (c == '\n') out += indent;
  }
  return out;
}

std::string quoted(const std::string& text) {
  return ordered_json(text).dump();
}

std::string build_tokenizer_json(const GgufTokenizer& t, const PreEntry& pre) {
  ordered_json added = ordered_json::array();
  for (size_t id = 0; id < t.tokens.size(); ++id) {
    const int64_t type = t.token_types[id];
    if (type == kTokenControl || type == kTokenUserDefined) {
      added.push_back(added_token_json(static_cast<int64_t>(id), t.tokens[id], type == kTokenControl));
    }
  }
  ordered_json normalizer = nullptr;
  if (pre.kind == PreKind::qwen2) normalizer = ordered_json{{"type", "NFC"}};
  ordered_json post_processor;
  if ((t.add_bos && t.bos_id) || (t.add_eos && t.eos_id)) {
    post_processor = template_processing(t);
  } else {
    post_processor["type"] = "ByteLevel";
    post_processor["add_prefix_space"] = true;
    post_processor["trim_offsets"] = false;
    post_processor["use_regex"] = true;
  }
  ordered_json decoder;
  decoder["type"] = "ByteLevel";
  decoder["add_prefix_space"] = true;
  decoder["trim_offsets"] = true;
  decoder["use_regex"] = true;

  std::string out;
  out.reserve(t.tokens.size() * 24 + t.merges.size() * 24 + 4096);
  out += "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  out += "  \"added_tokens\": " + nested(added, "  ") + ",\n";
  out += "  \"normalizer\": " + nested(normalizer, "  ") + ",\n";
  out += "  \"pre_tokenizer\": " + nested(pre_tokenizer_json(pre.kind), "  ") + ",\n";
  out += "  \"post_processor\": " + nested(post_processor, "  ") + ",\n";
  out += "  \"decoder\": " + nested(decoder, "  ") + ",\n";
  out +=
      "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
      "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
      "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n"
      "    \"vocab\": {";
  for (size_t id = 0; id < t.tokens.size(); ++id) {
    out += id ? ",\n      " : "\n      ";
    out += quoted(t.tokens[id]);
    out += ": ";
    out += std::to_string(id);
  }
  out += "\n    },\n    \"merges\": [";
  for (size_t i = 0; i < t.merges.size(); ++i) {
    // llama.cpp splits a merge at the first space after its first character.
    const std::string& merge = t.merges[i];
    const size_t space = merge.find(' ', 1);
    out += i ? ",\n      [" : "\n      [";
    out += quoted(merge.substr(0, space));
    out += ", ";
    out += quoted(merge.substr(space + 1));
    out += "]";
  }
  out += "\n    ]\n  }\n}\n";
  return out;
}

std::optional<std::string> token_of(const GgufTokenizer& t, const std::optional<int64_t>& id) {
  if (!id) return std::nullopt;
  return t.tokens[static_cast<size_t>(*id)];
}

ordered_json string_or_null(const std::optional<std::string>& text) {
  return text ? ordered_json(*text) : ordered_json(nullptr);
}

}  // namespace

std::string supported_gguf_pre_tokenizers() {
  std::string names;
  for (const PreEntry& entry : kPreTable) names += (names.empty() ? "" : ", ") + std::string(entry.name);
  return names;
}

GgufTokenizer read_gguf_tokenizer(const GgufFile& file) {
  const std::string& path = file.path();
  GgufTokenizer t;
  const std::optional<std::string> model = file.optional_string("tokenizer.ggml.model");
  if (!model) {
    fail(path,
         ": no tokenizer (key tokenizer.ggml.model is missing); halo imports only GGUF files that carry their "
         "tokenizer");
  }
  if (*model != "gpt2") {
    const char* kind = *model == "llama" ? " (SentencePiece)" : *model == "bert" ? " (WordPiece)" : "";
    fail(path, ": tokenizer model '", *model, "'", kind, " is not supported; only BPE ('gpt2')");
  }
  t.model = *model;
  t.pre = file.optional_string("tokenizer.ggml.pre").value_or("default");
  if (!find_pre(t.pre)) {
    fail(path, ": tokenizer.ggml.pre '", t.pre, "' is not supported; supported: ", supported_gguf_pre_tokenizers());
  }
  t.tokens = file.string_array("tokenizer.ggml.tokens");
  if (t.tokens.empty()) fail(path, ": tokenizer.ggml.tokens is empty");
  if (file.find("tokenizer.ggml.token_type")) {
    t.token_types = file.int_array("tokenizer.ggml.token_type");
    if (t.token_types.size() != t.tokens.size()) {
      fail(path, ": tokenizer.ggml.token_type has ", t.token_types.size(), " entries for ", t.tokens.size(),
           " tokens in tokenizer.ggml.tokens");
    }
  } else {
    t.token_types.assign(t.tokens.size(), 1);
  }
  if (!file.find("tokenizer.ggml.merges")) {
    fail(path, ": tokenizer.ggml.merges is missing; a BPE ('gpt2') tokenizer needs its merges");
  }
  t.merges = file.string_array("tokenizer.ggml.merges");

  std::map<std::string, size_t> seen;
  for (size_t id = 0; id < t.tokens.size(); ++id) {
    const std::string& token = t.tokens[id];
    if (token.empty()) fail(path, ": tokenizer.ggml.tokens[", id, "] is empty");
    if (!valid_utf8(token)) fail(path, ": tokenizer.ggml.tokens[", id, "] is not valid UTF-8");
    const auto [where, inserted] = seen.emplace(token, id);
    if (!inserted) {
      fail(path, ": tokenizer.ggml.tokens[", id, "] repeats token ", quoted(token), " (also id ", where->second,
           "); a tokenizer.json vocabulary needs distinct tokens");
    }
  }
  for (size_t i = 0; i < t.merges.size(); ++i) {
    const std::string& merge = t.merges[i];
    const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string::npos;
    if (space == std::string::npos || space + 1 >= merge.size() || !valid_utf8(merge)) {
      fail(path, ": tokenizer.ggml.merges[", i, "] ", quoted(valid_utf8(merge) ? merge : "?"),
           " is not two tokens separated by a space");
    }
  }

  const auto id_key = [&](const char* key) -> std::optional<int64_t> {
    const std::optional<int64_t> id = file.optional_int(key);
    if (id && (*id < 0 || *id >= static_cast<int64_t>(t.tokens.size()))) {
      // llama.cpp writes -1 (as uint32 0xFFFFFFFF) for "none" in some files.
      if (*id == 0xFFFFFFFFLL || *id == -1) return std::nullopt;
      fail(path, ": ", key, " = ", *id, " is not a token id (", t.tokens.size(), " tokens)");
    }
    return id;
  };
  t.bos_id = id_key("tokenizer.ggml.bos_token_id");
  t.eos_id = id_key("tokenizer.ggml.eos_token_id");
  t.unk_id = id_key("tokenizer.ggml.unknown_token_id");
  t.pad_id = id_key("tokenizer.ggml.padding_token_id");
  t.add_bos = file.optional_bool("tokenizer.ggml.add_bos_token").value_or(false);
  t.add_eos = file.optional_bool("tokenizer.ggml.add_eos_token").value_or(false);
  if (t.add_bos && !t.bos_id) {
    fail(path, ": tokenizer.ggml.add_bos_token is true but tokenizer.ggml.bos_token_id is missing");
  }
  if (t.add_eos && !t.eos_id) {
    fail(path, ": tokenizer.ggml.add_eos_token is true but tokenizer.ggml.eos_token_id is missing");
  }
  t.chat_template = file.optional_string("tokenizer.chat_template");
  return t;
}

GgufTokenizerFiles gguf_tokenizer_files(const GgufTokenizer& t, int64_t model_max_length) {
  const PreEntry* pre = find_pre(t.pre);
  if (!pre) fail("tokenizer.ggml.pre '", t.pre, "' is not supported");
  GgufTokenizerFiles files;
  files.tokenizer_json = build_tokenizer_json(t, *pre);

  const std::optional<std::string> bos = token_of(t, t.bos_id), eos = token_of(t, t.eos_id),
                                   unk = token_of(t, t.unk_id), pad = token_of(t, t.pad_id);
  ordered_json config;
  config["add_bos_token"] = t.add_bos;
  config["add_eos_token"] = t.add_eos;
  config["add_prefix_space"] = false;
  ordered_json decoder = ordered_json::object();
  for (size_t id = 0; id < t.tokens.size(); ++id) {
    const int64_t type = t.token_types[id];
    if (type != kTokenControl && type != kTokenUserDefined) continue;
    ordered_json entry;
    entry["content"] = t.tokens[id];
    entry["lstrip"] = false;
    entry["normalized"] = false;
    entry["rstrip"] = false;
    entry["single_word"] = false;
    entry["special"] = type == kTokenControl;
    decoder[std::to_string(id)] = std::move(entry);
  }
  config["added_tokens_decoder"] = std::move(decoder);
  config["bos_token"] = string_or_null(bos);
  config["chat_template"] = string_or_null(t.chat_template);
  config["clean_up_tokenization_spaces"] = false;
  config["eos_token"] = string_or_null(eos);
  config["model_max_length"] = model_max_length;
  config["pad_token"] = string_or_null(pad);
  config["tokenizer_class"] = "GPT2Tokenizer";
  config["unk_token"] = string_or_null(unk);
  config["vocab_size"] = static_cast<int64_t>(t.tokens.size());
  if (!t.chat_template) config.erase("chat_template");
  files.tokenizer_config_json = config.dump(2) + "\n";

  ordered_json special = ordered_json::object();
  const auto add_special = [&](const char* key, const std::optional<std::string>& token) {
    if (!token) return;
    special[key] = ordered_json{
        {"content", *token}, {"lstrip", false}, {"normalized", false}, {"rstrip", false}, {"single_word", false}};
  };
  add_special("bos_token", bos);
  add_special("eos_token", eos);
  add_special("pad_token", pad);
  add_special("unk_token", unk);
  files.special_tokens_map_json = special.dump(2) + "\n";
  return files;
}

}  // namespace halo
