// Byte-level BPE from a Hugging Face tokenizer.json, as Qwen3 (and GPT-2) use it.
//
// encode: added tokens are cut out of the raw text first (longest match at the leftmost
// position); every stretch between them is NFC-normalized (utf8proc; pure-ASCII runs are
// skipped since NFC leaves them alone), split by the pre-tokenizer's steps in order, each one
// cutting every piece of the step before (a Split regex or ByteLevel's own GPT-2 regex: PCRE2,
// UTF + UCP, JIT-compiled once, "Isolated": matches and the gaps between them are all pieces,
// shared with the trainer through pre_tokenizer.h; Digits: each numeric character, or each run
// of them, apart from the rest), and each final piece is merged by BPE. BPE
// works on raw bytes: the GPT-2 byte-to-unicode table is only used at load time, to map the
// vocabulary's byte-level strings ("Ġworld") to ids and bytes. Merges are keyed by the pair of
// ids and applied lowest rank first with a heap over a linked list of symbols. Pieces already
// seen are served from a sharded, mutex-guarded cache, so that encode() stays const and may
// run on several threads at once.
//
// decode: ids map to their bytes (added tokens to their content); ill-formed UTF-8 (ids cut
// inside a character) becomes U+FFFD, as Hugging Face's ByteLevel decoder does.
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>

#include "halo/error.h"
#include "halo/file_system.h"
#include "text/pre_tokenizer.h"
#include "text/tokenizer_backends.h"

namespace halo {
namespace {

using nlohmann::json;

// The regex that a ByteLevel pre-tokenizer applies itself when use_regex is true (GPT-2's).
constexpr const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

constexpr size_t kCacheShards = 16;
constexpr size_t kCacheEntriesPerShard = 8192;  // beyond this, new pieces are not cached

// The raw bytes behind a byte-level token string; a token with a character outside the
// byte-level alphabet stands for its own UTF-8 bytes (as in Hugging Face's decoder).
// `byte_of_code_point[c]` is the byte that code point c stands for, or -1.
std::string byte_level_to_bytes(const std::string& token, const std::vector<int>& byte_of_code_point) {
  std::string bytes;
  const auto* data = reinterpret_cast<const utf8proc_uint8_t*>(token.data());
  const auto size = static_cast<utf8proc_ssize_t>(token.size());
  utf8proc_ssize_t pos = 0;
  while (pos < size) {
    utf8proc_int32_t code_point = -1;
    const utf8proc_ssize_t length = utf8proc_iterate(data + pos, size - pos, &code_point);
    if (length <= 0 || code_point >= static_cast<utf8proc_int32_t>(byte_of_code_point.size()) ||
        byte_of_code_point[code_point] < 0) {
      return token;
    }
    bytes.push_back(static_cast<char>(byte_of_code_point[code_point]));
    pos += length;
  }
  return bytes;
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

bool flag_set(const json& object, const char* key) {
  const auto found = object.find(key);
  return found != object.end() && found->is_boolean() && found->get<bool>();
}

std::string string_or_empty(const json& object, const char* key) {
  const auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

// Whether the character at `pos` (valid UTF-8) is numeric as Rust's char::is_numeric says,
// which is what Hugging Face's Digits pre-tokenizer asks: general category Nd, Nl or No.
// Sets `length` to the character's byte count.
bool numeric_at(std::string_view text, size_t pos, size_t& length) {
  const auto byte = static_cast<unsigned char>(text[pos]);
  if (byte < 0x80) {
    length = 1;
    return byte >= '0' && byte <= '9';
  }
  utf8proc_int32_t code_point = -1;
  const utf8proc_ssize_t got = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + pos),
                                                static_cast<utf8proc_ssize_t>(text.size() - pos), &code_point);
  length = got > 0 ? static_cast<size_t>(got) : 1;
  if (got <= 0) return false;
  const utf8proc_category_t category = utf8proc_category(code_point);
  return category == UTF8PROC_CATEGORY_ND || category == UTF8PROC_CATEGORY_NL || category == UTF8PROC_CATEGORY_NO;
}

// Hugging Face's Digits pre-tokenizer: numeric characters apart from the rest, each one on its
// own (`individual`) or a run of them as one piece; the text between them stays whole.
template <class OnPiece>
void split_digits(std::string_view text, bool individual, OnPiece&& on_piece) {
  size_t start = 0;  // where the current piece begins
  bool in_digits = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t length = 1;
    const bool numeric = numeric_at(text, pos, length);
    if (pos > start && (numeric != in_digits || (numeric && individual))) {
      on_piece(text.substr(start, pos - start));
      start = pos;
    }
    in_digits = numeric;
    pos += length;
  }
  if (start < text.size()) on_piece(text.substr(start));
}

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(const std::string& path, const TokenizerConfig& config);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(id_bytes_.size()); }
  std::optional<int32_t> token_to_id(const std::string& token) const override;
  std::optional<int32_t> eos_id() const override { return eos_id_; }

 private:
  struct AddedToken {
    std::string content;
    int32_t id;
  };
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  struct CacheShard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> ids_of_piece;
  };

  void read_model(const json& model);
  void read_added_tokens(const json& added_tokens);
  void read_normalizer(const json& normalizer);
  void read_pre_tokenizer(const json& pre_tokenizer);
  // `value` as a token id; else fails naming `field`, a callable that returns its name.
  template <class FieldName>
  int32_t read_id(const json& value, const FieldName& field) const;
  void set_token_bytes(int32_t id, std::string bytes);

  // One pre-tokenizer step: a regex split (regexes_[regex]) or, when regex < 0, Digits.
  struct PreStep {
    int regex;
    bool individual_digits;
  };

  // Appends the ids of text that holds no added token; `matches` holds one MatchData per regex.
  void encode_ordinary(std::string_view text, const std::vector<MatchData>& matches, std::vector<int32_t>& ids) const;
  // Splits `text` by pre_steps_[step] and hands each piece to the next step, the last to BPE.
  void pre_tokenize(size_t step, std::string_view text, const std::vector<MatchData>& matches,
                    std::vector<int32_t>& ids) const;
  // Appends the ids of one pre-tokenized piece, from the cache when possible.
  void encode_piece(std::string_view piece, std::vector<int32_t>& ids) const;
  // BPE proper: the ids that the merges make of the piece's bytes.
  std::vector<int32_t> merge_bytes(std::string_view piece) const;

  std::string path_;
  std::unordered_map<std::string, int32_t> vocab_;         // byte-level string -> id
  std::array<int32_t, 256> byte_ids_{};                    // id of each byte; -1: none
  std::unordered_map<uint64_t, Merge> merges_;             // pair_key(left, right) -> merge
  std::array<std::vector<AddedToken>, 256> added_tokens_;  // by first byte, longest first
  std::vector<std::optional<std::string>> id_bytes_;       // what each id decodes to
  bool nfc_ = false;
  std::vector<PreTokenizerRegex> regexes_;
  std::vector<PreStep> pre_steps_;
  std::optional<int32_t> eos_id_;
  mutable std::array<CacheShard, kCacheShards> cache_;
};

BpeTokenizer::BpeTokenizer(const std::string& path, const TokenizerConfig& config) : path_(path) {
  json root;
  try {
    root = json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON (", e.what(), "); re-download the tokenizer");
  }
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) {
    fail(path, ": no \"model\" object; expected a Hugging Face tokenizer.json");
  }
  // Sections are read in place: copying a json value recurses once per level of nesting, which
  // a hostile file makes deep enough to overflow the stack.
  static const json kNoAddedTokens = json::array(), kAbsent;
  const auto section = [&](const char* key, const json& fallback) -> const json& {
    const auto found = root.find(key);
    return found == root.end() ? fallback : *found;
  };
  read_model(root["model"]);
  read_added_tokens(section("added_tokens", kNoAddedTokens));
  read_normalizer(section("normalizer", kAbsent));
  read_pre_tokenizer(section("pre_tokenizer", kAbsent));
  if (config.eos_token) {
    eos_id_ = token_to_id(*config.eos_token);
    if (!eos_id_) {
      fail(config.path, ": eos_token \"", printable(*config.eos_token), "\" is not a token of ", path,
           "; fix eos_token");
    }
  }
}

template <class FieldName>
int32_t BpeTokenizer::read_id(const json& value, const FieldName& field) const {
  constexpr int64_t kMaxId = 1 << 24;
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() >= kMaxId) {
    fail(path_, ": ", field(), " must be a token id (an integer from 0 to ", kMaxId - 1, ")");
  }
  return static_cast<int32_t>(value.get<int64_t>());
}

void BpeTokenizer::set_token_bytes(int32_t id, std::string bytes) {
  if (static_cast<size_t>(id) >= id_bytes_.size()) id_bytes_.resize(static_cast<size_t>(id) + 1);
  id_bytes_[static_cast<size_t>(id)] = std::move(bytes);
}

void BpeTokenizer::read_model(const json& model) {
  const std::string type = string_or_empty(model, "type");
  if (type != "BPE") {
    fail(path_, ": model.type \"", printable(type), "\" is not supported; only byte-level \"BPE\" is");
  }
  for (const char* option : {"byte_fallback", "ignore_merges"}) {
    if (flag_set(model, option)) fail(path_, ": model.", option, " = true is not supported");
  }
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!string_or_empty(model, affix).empty()) {
      fail(path_, ": model.", affix, " is not supported (only empty or null)");
    }
  }

  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) {
    fail(path_, ": model.vocab must be an object mapping tokens to ids");
  }
  const std::array<char32_t, 256> code_points = byte_level_code_points();
  std::vector<int> byte_of_code_point(512, -1);
  for (int byte = 0; byte < 256; ++byte) byte_of_code_point[code_points[byte]] = byte;
  vocab_.reserve(vocab->size());
  for (auto entry = vocab->begin(); entry != vocab->end(); ++entry) {
    const int32_t id = read_id(entry.value(), [&] { return cat("model.vocab[\"", printable(entry.key()), "\"]"); });
    vocab_.emplace(entry.key(), id);
    set_token_bytes(id, byte_level_to_bytes(entry.key(), byte_of_code_point));
  }
  // A byte without a token (SmolLM2 lacks a few control characters) is dropped from the text
  // it occurs in, as Hugging Face tokenizers and llama.cpp do when there is no unk_token.
  for (int byte = 0; byte < 256; ++byte) {
    const auto found = vocab_.find(utf8_encode(code_points[byte]));
    byte_ids_[byte] = found == vocab_.end() ? -1 : found->second;
  }

  const auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) {
    fail(path_, ": model.merges must be an array of \"a b\" strings or [\"a\", \"b\"] pairs");
  }
  merges_.reserve(merges->size());
  std::string left_buffer, right_buffer, merged;
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const json& merge = (*merges)[rank];
    const std::string* left = &left_buffer;
    const std::string* right = &right_buffer;
    if (merge.is_string()) {
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        fail(path_, ": model.merges[", rank, "] \"", printable(text), "\" must be two tokens separated by one space");
      }
      left_buffer.assign(text, 0, space);
      right_buffer.assign(text, space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = &merge[0].get_ref<const std::string&>();
      right = &merge[1].get_ref<const std::string&>();
    } else {
      fail(path_, ": model.merges[", rank, "] must be \"a b\" or [\"a\", \"b\"]");
    }
    merged.assign(*left).append(*right);
    int32_t ids[3];
    const std::string* tokens[3] = {left, right, &merged};
    for (int k = 0; k < 3; ++k) {
      const auto found = vocab_.find(*tokens[k]);
      if (found == vocab_.end()) {
        fail(path_, ": model.merges[", rank, "] needs \"", printable(*tokens[k]), "\", which is not in model.vocab");
      }
      ids[k] = found->second;
    }
    // A repeated pair keeps its last rank, as Hugging Face tokenizers does.
    merges_.insert_or_assign(pair_key(ids[0], ids[1]), Merge{static_cast<int32_t>(rank), ids[2]});
  }
}

void BpeTokenizer::read_added_tokens(const json& added_tokens) {
  if (!added_tokens.is_array()) fail(path_, ": added_tokens must be an array");
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const json& entry = added_tokens[i];
    const std::string field = cat("added_tokens[", i, "]");
    if (!entry.is_object() || !entry.contains("id")) fail(path_, ": ", field, " has no id");
    const int32_t id = read_id(entry["id"], [&] { return field + ".id"; });
    const std::string content = string_or_empty(entry, "content");
    if (content.empty()) fail(path_, ": ", field, ".content must be a non-empty string");
    set_token_bytes(id, content);
    added_tokens_[static_cast<unsigned char>(content[0])].push_back(AddedToken{content, id});
  }
  for (auto& bucket : added_tokens_) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  }
}

void BpeTokenizer::read_normalizer(const json& normalizer) {
  if (normalizer.is_null()) return;
  const std::string type = normalizer.is_object() ? string_or_empty(normalizer, "type") : "";
  if (type != "NFC") {
    fail(path_, ": normalizer \"", printable(type), "\" is not supported; only NFC or null are");
  }
  nfc_ = true;
}

void BpeTokenizer::read_pre_tokenizer(const json& pre_tokenizer) {
  const std::string unsupported =
      cat(path_,
          ": pre_tokenizer is not supported; expected Split regex (Isolated) and Digits steps "
          "then ByteLevel, or ByteLevel alone");
  if (!pre_tokenizer.is_object()) fail(unsupported);
  std::vector<const json*> steps{&pre_tokenizer};
  if (string_or_empty(pre_tokenizer, "type") == "Sequence") {
    const auto list = pre_tokenizer.find("pretokenizers");
    if (list == pre_tokenizer.end() || !list->is_array()) fail(unsupported);
    steps.clear();
    for (const json& step : *list) steps.push_back(&step);
  }
  std::vector<std::string> regexes;
  bool byte_level = false;
  for (const json* step_pointer : steps) {
    const json& step = *step_pointer;
    const std::string type = step.is_object() ? string_or_empty(step, "type") : "";
    if (byte_level) fail(unsupported);  // ByteLevel comes last
    if (type == "Split") {
      const auto pattern = step.find("pattern");
      if (pattern == step.end() || !pattern->is_object() || string_or_empty(*pattern, "Regex").empty() ||
          string_or_empty(step, "behavior") != "Isolated" || flag_set(step, "invert")) {
        fail(path_,
             ": pre_tokenizer Split is supported only with a \"Regex\" pattern, "
             "behavior \"Isolated\" and invert false");
      }
      pre_steps_.push_back(PreStep{static_cast<int>(regexes.size()), false});
      regexes.push_back(string_or_empty(*pattern, "Regex"));
    } else if (type == "Digits") {
      pre_steps_.push_back(PreStep{-1, flag_set(step, "individual_digits")});
    } else if (type == "ByteLevel") {
      if (flag_set(step, "add_prefix_space")) {
        fail(path_, ": pre_tokenizer ByteLevel add_prefix_space = true is not supported");
      }
      // use_regex defaults to true: files written before the option existed relied on it.
      const auto use_regex = step.find("use_regex");
      if (use_regex == step.end() || (use_regex->is_boolean() && use_regex->get<bool>())) {
        pre_steps_.push_back(PreStep{static_cast<int>(regexes.size()), false});
        regexes.push_back(kGpt2Regex);
      }
      byte_level = true;
    } else {
      fail(unsupported);
    }
  }
  if (pre_steps_.empty() || !byte_level) fail(unsupported);

  regexes_.reserve(regexes.size());
  for (const std::string& regex : regexes) regexes_.emplace_back(regex, path_);
}

std::optional<int32_t> BpeTokenizer::token_to_id(const std::string& token) const {
  if (token.empty()) return std::nullopt;
  for (const AddedToken& added : added_tokens_[static_cast<unsigned char>(token[0])]) {
    if (added.content == token) return added.id;
  }
  const auto found = vocab_.find(token);
  if (found == vocab_.end()) return std::nullopt;
  return found->second;
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  check_utf8(text);
  std::vector<MatchData> matches;
  matches.reserve(regexes_.size());
  for (const PreTokenizerRegex& regex : regexes_) matches.push_back(regex.make_match_data());
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);
  size_t ordinary_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const AddedToken* added = nullptr;
    for (const AddedToken& token : added_tokens_[static_cast<unsigned char>(text[pos])]) {
      if (text.compare(pos, token.content.size(), token.content) == 0) {
        added = &token;
        break;
      }
    }
    if (!added) {
      ++pos;
      continue;
    }
    encode_ordinary(text.substr(ordinary_start, pos - ordinary_start), matches, ids);
    ids.push_back(added->id);
    pos += added->content.size();
    ordinary_start = pos;
  }
  encode_ordinary(text.substr(ordinary_start), matches, ids);
  return ids;
}

void BpeTokenizer::encode_ordinary(std::string_view text, const std::vector<MatchData>& matches,
                                   std::vector<int32_t>& ids) const {
  if (text.empty()) return;
  std::string nfc_storage;
  const std::string_view normalized = nfc_ ? nfc(text, nfc_storage) : text;
  pre_tokenize(0, normalized, matches, ids);
}

void BpeTokenizer::pre_tokenize(size_t step, std::string_view text, const std::vector<MatchData>& matches,
                                std::vector<int32_t>& ids) const {
  if (step == pre_steps_.size()) {
    encode_piece(text, ids);
    return;
  }
  const auto next = [&](std::string_view piece) { pre_tokenize(step + 1, piece, matches, ids); };
  const PreStep& pre_step = pre_steps_[step];
  if (pre_step.regex >= 0) {
    regexes_[pre_step.regex].split(text, matches[pre_step.regex].get(), next);
  } else {
    split_digits(text, pre_step.individual_digits, next);
  }
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.size() == 1) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(piece[0])];
    if (id >= 0) ids.push_back(id);
    return;
  }
  CacheShard& shard = cache_[std::hash<std::string_view>{}(piece) % kCacheShards];
  std::string key(piece);
  {
    const std::lock_guard<std::mutex> lock(shard.mutex);
    const auto found = shard.ids_of_piece.find(key);
    if (found != shard.ids_of_piece.end()) {
      ids.insert(ids.end(), found->second.begin(), found->second.end());
      return;
    }
  }
  std::vector<int32_t> piece_ids = merge_bytes(piece);
  ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  const std::lock_guard<std::mutex> lock(shard.mutex);
  if (shard.ids_of_piece.size() < kCacheEntriesPerShard) {
    shard.ids_of_piece.emplace(std::move(key), std::move(piece_ids));
  }
}

std::vector<int32_t> BpeTokenizer::merge_bytes(std::string_view piece) const {
  // Symbols form a linked list over indices; a merge keeps the left symbol and unlinks the
  // right one (id -1). A candidate is stale once either symbol changed, which shows in the ids.
  struct Symbol {
    int32_t id, prev, next;
  };
  struct Candidate {
    int32_t rank, left, right, left_id, right_id, merged_id;
  };
  const auto later = [](const Candidate& a, const Candidate& b) {  // lowest rank, then leftmost
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  for (const char byte : piece) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(byte)];
    if (id < 0) continue;  // a byte without a token is dropped
    const auto index = static_cast<int32_t>(symbols.size());
    if (index > 0) symbols.back().next = index;
    symbols.push_back(Symbol{id, index - 1, -1});
  }
  if (symbols.empty()) return {};
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
  const auto consider = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    const int32_t right = symbols[left].next;
    const auto found = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (found == merges_.end()) return;
    queue.push(
        Candidate{found->second.rank, left, right, symbols[left].id, symbols[right].id, found->second.merged_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.id != top.left_id || left.next != top.right || right.id != top.right_id) continue;
    left.id = top.merged_id;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.id = -1;
    consider(left.prev);
    consider(top.left);
  }
  std::vector<int32_t> ids;
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  for (const int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= id_bytes_.size() || !id_bytes_[id]) {
      fail("token id ", id, " is not in the vocabulary of ", path_, " (", id_bytes_.size(), " ids)");
    }
    bytes += *id_bytes_[id];
  }
  return replace_invalid_utf8(bytes);
}

}  // namespace

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& json_path, const TokenizerConfig& config) {
  return std::make_unique<BpeTokenizer>(json_path, config);
}

}  // namespace halo
