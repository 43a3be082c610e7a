// What the byte-level BPE tokenizer (bpe_tokenizer.cpp) and its trainer (bpe_trainer.cpp) must
// do alike, so that a trained vocabulary fits the text it will encode: NFC normalization, the
// pre-tokenizer regex that cuts text into pieces ("Isolated": matches and the gaps between them
// are all pieces), and GPT-2's byte-to-unicode table that spells bytes in tokenizer.json.
// Internal to the library; no torch here.
#pragma once
#include <pcre2.h>

#include <array>
#include <memory>
#include <string>
#include <string_view>

#include "text/tokenizer_backends.h"

namespace halo {

// Qwen3's Split regex (../shared/docs/METHOD.md §1), which trained tokenizers use too.
inline constexpr const char* kQwen3PreTokenizerRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GPT-2's table: the code point that stands for each byte in byte-level token strings.
// Printable bytes stand for themselves; the others take code points 256, 257, ... in order.
std::array<char32_t, 256> byte_level_code_points();

// The byte-level spelling of raw bytes: " world" -> "Ġworld".
std::string bytes_to_byte_level(std::string_view bytes);

// The UTF-8 bytes of one code point.
std::string utf8_encode(char32_t code_point);

// NFC of `text`. Returns `text` itself when it is all ASCII, else the normal form in `storage`.
std::string_view nfc(std::string_view text, std::string& storage);

struct RegexFree {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataFree {
  void operator()(pcre2_match_data* match) const { pcre2_match_data_free(match); }
};
using MatchData = std::unique_ptr<pcre2_match_data, MatchDataFree>;

// A compiled pre-tokenizer regex (PCRE2, UTF + UCP, JIT when available). \s and \S are read as
// the Unicode White_Space property, as Oniguruma and Rust's regex crate (the engines behind
// tokenizer.json) read them. Const and safe to share between threads; each thread brings its
// own MatchData. `origin` (a file) starts every error message.
class PreTokenizerRegex {
 public:
  PreTokenizerRegex(const std::string& regex, std::string origin);

  MatchData make_match_data() const;

  // Calls on_piece(std::string_view) for each piece of `text` (valid UTF-8), in order.
  template <class OnPiece>
  void split(std::string_view text, pcre2_match_data* match, OnPiece&& on_piece) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t gap_start = 0;  // where the text not yet covered by a piece begins
    size_t search_from = 0;
    while (search_from < text.size()) {
      const int matched =
          pcre2_match(code_.get(), subject, text.size(), search_from, PCRE2_NO_UTF_CHECK, match, nullptr);
      if (matched == PCRE2_ERROR_NOMATCH) break;
      if (matched < 0) match_failed(matched);
      const PCRE2_SIZE* bounds = pcre2_get_ovector_pointer(match);
      const size_t start = bounds[0], end = bounds[1];
      if (end == start) {  // an empty match makes no piece; look again one character on
        search_from = start + utf8_step(text, start).length;
        continue;
      }
      if (start > gap_start) on_piece(text.substr(gap_start, start - gap_start));
      on_piece(text.substr(start, end - start));
      gap_start = search_from = end;
    }
    if (gap_start < text.size()) on_piece(text.substr(gap_start));
  }

 private:
  [[noreturn]] void match_failed(int error_code) const;

  std::string origin_;
  std::unique_ptr<pcre2_code, RegexFree> code_;
};

}  // namespace halo
