// NFC, the pre-tokenizer regex and the byte-level alphabet shared by the BPE tokenizer and its
// trainer (see pre_tokenizer.h). NFC goes through utf8proc one non-ASCII run at a time.
#include "text/pre_tokenizer.h"

#include <utf8proc.h>

#include <cstdlib>

#include "halo/error.h"
#include "text/tokenizer_backends.h"

namespace halo {
namespace {

// `regex` with \s and \S spelled as the Unicode White_Space property, which is what \s means
// to Oniguruma and Rust's regex crate; PCRE2's \s also takes U+180E MONGOLIAN VOWEL SEPARATOR,
// which would split text differently.
std::string with_unicode_white_space(const std::string& regex) {
  std::string rewritten;
  rewritten.reserve(regex.size() + 64);
  for (size_t i = 0; i < regex.size(); ++i) {
    if (regex[i] != '\\' || i + 1 == regex.size()) {
      rewritten += regex[i];
    } else {
      const char escaped = regex[++i];
      if (escaped == 's') {
        rewritten += "\\p{White_Space}";
      } else if (escaped == 'S') {
        rewritten += "\\P{White_Space}";
      } else {
        rewritten += '\\';
        rewritten += escaped;
      }
    }
  }
  return rewritten;
}

std::string pcre2_message(int error_code) {
  PCRE2_UCHAR message[256];
  pcre2_get_error_message(error_code, message, sizeof(message));
  return reinterpret_cast<const char*>(message);
}

}  // namespace

std::array<char32_t, 256> byte_level_code_points() {
  std::array<char32_t, 256> code_points{};
  char32_t next_free = 256;
  for (int byte = 0; byte < 256; ++byte) {
    const bool printable =
        (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
    code_points[byte] = printable ? static_cast<char32_t>(byte) : next_free++;
  }
  return code_points;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  static const std::array<char32_t, 256> code_points = byte_level_code_points();
  std::string spelled;
  spelled.reserve(bytes.size() * 2);
  for (const char byte : bytes) spelled += utf8_encode(code_points[static_cast<unsigned char>(byte)]);
  return spelled;
}

std::string utf8_encode(char32_t code_point) {
  utf8proc_uint8_t buffer[4];
  const auto length = utf8proc_encode_char(static_cast<utf8proc_int32_t>(code_point), buffer);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(length));
}

// A boundary before an ASCII character is safe to cut at (it is a starter that is never the
// second half of a composition), so only each non-ASCII run plus the character before it goes
// through utf8proc.
std::string_view nfc(std::string_view text, std::string& storage) {
  const auto is_ascii = [](char c) { return static_cast<unsigned char>(c) < 0x80; };
  size_t first_non_ascii = 0;
  while (first_non_ascii < text.size() && is_ascii(text[first_non_ascii])) ++first_non_ascii;
  if (first_non_ascii == text.size()) return text;
  storage.clear();
  storage.reserve(text.size() + text.size() / 8);
  size_t copied = 0;
  size_t run = first_non_ascii;
  while (run < text.size()) {
    const size_t start = run > copied ? run - 1 : run;  // the ASCII character a mark may join
    size_t end = run;
    while (end < text.size() && !is_ascii(text[end])) ++end;
    storage.append(text.substr(copied, start - copied));
    utf8proc_uint8_t* normalized = nullptr;
    const utf8proc_ssize_t length = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + start),
                                                 static_cast<utf8proc_ssize_t>(end - start), &normalized,
                                                 static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (length < 0) fail("NFC normalization failed: ", utf8proc_errmsg(length));
    storage.append(reinterpret_cast<const char*>(normalized), static_cast<size_t>(length));
    std::free(normalized);
    copied = end;
    run = end;
    while (run < text.size() && is_ascii(text[run])) ++run;
  }
  storage.append(text.substr(copied));
  return storage;
}

PreTokenizerRegex::PreTokenizerRegex(const std::string& regex, std::string origin) : origin_(std::move(origin)) {
  const std::string pattern = with_unicode_white_space(regex);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  code_.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                            &error_code, &error_offset, nullptr));
  if (!code_) {
    fail(origin_, ": pre_tokenizer regex ", printable(pattern), " does not compile at offset ", error_offset, " (",
         pcre2_message(error_code), ")");
  }
  // Without JIT support PCRE2 falls back to its interpreter: slower, same matches.
  pcre2_jit_compile(code_.get(), PCRE2_JIT_COMPLETE);
}

MatchData PreTokenizerRegex::make_match_data() const {
  MatchData match(pcre2_match_data_create_from_pattern(code_.get(), nullptr));
  if (!match) throw std::bad_alloc();
  return match;
}

void PreTokenizerRegex::match_failed(int error_code) const {
  fail(origin_, ": pre_tokenizer regex failed on the text (", pcre2_message(error_code), ")");
}

}  // namespace halo
