// Bad-input fuzzing of halo's parsers: safetensors (its 8-byte header length and JSON header in
// particular), config.json, tokenizer.json (with tokenizer_config.json), experiment YAML and
// GGUF. Each test checks that its small valid seeds load, replays the inputs that once broke
// the parser, then for kSecondsPerParser (at most kMaxInputsPerParser inputs) feeds it seeds
// changed by 1 to 4 stacked mutations (bit flips, byte overwrites, truncation, insertions,
// deletions, chunk duplication; in binary files extreme integers in place of fields; in text
// numbers swapped for extreme ones or for strings and back, control characters in strings,
// deep nesting) and fully random inputs (random bytes, the seed's own tokens reshuffled).
// The oracle: every call succeeds, or throws a halo::Error whose message is one non-empty line.
// Any other exception fails the test, naming it and the input, which is copied into a kept
// directory under the temp dir. A crash or a call running past kMaxSecondsPerCall (SIGALRM)
// kills the process after printing the parser and input number; the input is then still in the
// parser's work directory. Input i of a parser comes from its own std::mt19937_64 seeded with
// (base seed, parser, i), so a failure reproduces; HALO_FUZZ_SEED and HALO_FUZZ_SECONDS change
// the base seed and the time per parser for longer runs.
#include <c10/util/Exception.h>
#include <cxxabi.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <typeinfo>
#include <vector>

#include "halo/error.h"
#include "halo/experiment.h"
#include "halo/file_system.h"
#include "halo/gguf.h"
#include "halo/model_config.h"
#include "halo/safetensors.h"
#include "halo/tensor_io.h"
#include "halo/tokenizer.h"
#include "test_support.h"

namespace halo {
namespace {

constexpr int kSecondsPerParser = 8;
constexpr int kMaxInputsPerParser = 100000;
constexpr unsigned kMaxSecondsPerCall = 5;
constexpr uint64_t kBaseSeed = 20260125;
constexpr int kMaxFailuresReported = 5;  // per parser; the loop stops after them

using Rng = std::mt19937_64;
// One input: file name -> bytes, written into the parser's work directory.
using FuzzInput = std::map<std::string, std::string>;

// ---------------------------------------------------------------------------------------------
// Crash and hang reporting: a fatal signal ends the process before gtest can name the input,
// so the handler prints what ran (formatted before each call: a handler may only write).

char g_running_input[1024];

void report_fatal_signal(int signal) {
  const char* what =
      signal == SIGALRM ? "\nhalo fuzz: HANG, a call ran past the time limit: " : "\nhalo fuzz: CRASH (fatal signal): ";
  ssize_t ignored = ::write(STDERR_FILENO, what, std::strlen(what));
  ignored = ::write(STDERR_FILENO, g_running_input, std::strlen(g_running_input));
  (void)ignored;
  if (signal == SIGALRM) {
    std::signal(SIGABRT, SIG_DFL);
    std::abort();
  }
  std::raise(signal);  // the handler was reset (SA_RESETHAND): the default action now
}

// The handler runs on a stack of its own, so that it can report a stack overflow too.
void install_fatal_signal_report() {
  static std::vector<char> handler_stack(1 << 16);
  stack_t stack{};
  stack.ss_sp = handler_stack.data();
  stack.ss_size = handler_stack.size();
  ::sigaltstack(&stack, nullptr);
  struct sigaction action {};
  action.sa_handler = report_fatal_signal;
  action.sa_flags = SA_RESETHAND | SA_ONSTACK;
  for (int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM}) ::sigaction(signal, &action, nullptr);
}

// ---------------------------------------------------------------------------------------------
// The oracle.

// `text` with control characters escaped, for failure messages.
std::string escaped(const std::string& text) {
  std::string shown;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    shown += byte < 0x20 || byte == 0x7f ? cat("\\x", "0123456789abcdef"[byte >> 4], "0123456789abcdef"[byte & 15])
                                         : std::string(1, c);
  }
  return shown;
}

bool is_one_line(const std::string& message) {
  return !message.empty() && message.find('\n') == std::string::npos && message.find('\r') == std::string::npos;
}

std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status),
                                                   &std::free);
  return status == 0 ? name.get() : type.name();
}

// Runs `call`; returns "" when it succeeded or refused the input properly (a one-line
// halo::Error), else what went wrong.
std::string misbehavior_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    if (is_one_line(e.what())) return "";
    return cat("halo::Error whose message is not one non-empty line: \"", escaped(e.what()), "\"");
  } catch (const c10::Error& e) {
    return cat("c10::Error instead of halo::Error: ", e.what_without_backtrace());
  } catch (const std::exception& e) {
    return cat(type_name(typeid(e)), " instead of halo::Error: ", e.what());
  } catch (...) {
    return "an exception of a type that is not std::exception";
  }
  return "";
}

// Runs `call`, swallowing a proper refusal (a one-line halo::Error); anything else propagates to
// misbehavior_of. For calls after a successful load that may refuse on their own.
void allow_refusal(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    if (!is_one_line(e.what())) throw;
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations.

size_t below(Rng& rng, size_t n) {
  return n == 0 ? 0 : static_cast<size_t>(rng() % n);
}

template <class T>
const T& one_of(Rng& rng, const std::vector<T>& items) {
  return items[below(rng, items.size())];
}

std::string random_bytes(Rng& rng, size_t count) {
  std::string bytes(count, '\0');
  for (char& byte : bytes) byte = static_cast<char>(rng());
  return bytes;
}

// Byte-level mutations, for any format.
void flip_bit(std::string& s, Rng& rng) {
  if (!s.empty()) s[below(rng, s.size())] ^= static_cast<char>(1 << below(rng, 8));
}

void overwrite_bytes(std::string& s, Rng& rng) {
  static const std::string kSpecialBytes("\x00\xff\x7f\x80\x01\"\\{}[]:,\n\t ", 16);
  for (size_t n = 1 + below(rng, 4); n > 0 && !s.empty(); --n) {
    s[below(rng, s.size())] =
        below(rng, 2) ? kSpecialBytes[below(rng, kSpecialBytes.size())] : static_cast<char>(rng());
  }
}

void truncate(std::string& s, Rng& rng) {
  s.resize(below(rng, s.size() + 1));
}

void insert_bytes(std::string& s, Rng& rng) {
  s.insert(below(rng, s.size() + 1), random_bytes(rng, 1 + below(rng, 16)));
}

void erase_range(std::string& s, Rng& rng) {
  if (s.empty()) return;
  const size_t begin = below(rng, s.size());
  s.erase(begin, 1 + below(rng, below(rng, 2) ? 8 : 256));
}

void duplicate_chunk(std::string& s, Rng& rng) {
  if (s.empty()) return;
  const size_t begin = below(rng, s.size());
  const std::string chunk = s.substr(begin, 1 + below(rng, 256));
  s.insert(below(rng, 2) ? begin : below(rng, s.size() + 1), chunk);
}

// A 1, 2, 4 or 8-byte little-endian integer field overwritten with an extreme value.
void overwrite_integer(std::string& s, Rng& rng) {
  const size_t width = size_t{1} << below(rng, 4);
  if (s.size() < width) return;
  const std::vector<uint64_t> extremes = {
      0,          1,          2,          7,          8,          31,    32,        255,      65535,       0x7fffffff,
      0x80000000, 0xffffffff, 1ull << 32, 1ull << 62, 1ull << 63, ~0ull, ~0ull - 7, s.size(), s.size() - 8};
  const uint64_t value = below(rng, 4) ? one_of(rng, extremes) : rng();
  const size_t pos = below(rng, s.size() - width + 1);
  for (size_t i = 0; i < width; ++i) s[pos + i] = static_cast<char>(value >> (8 * i));
}

// Text mutations: JSON and YAML differ in how strings look.
enum class Syntax { json, yaml };

struct Span {
  size_t begin, end;
};

bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
}

// Numbers: a digit (or '-' and a digit) that does not continue a word, up to the last
// character a number may hold.
std::vector<Span> number_spans(const std::string& text) {
  std::vector<Span> spans;
  const auto digit = [&](size_t i) { return i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); };
  for (size_t i = 0; i < text.size();) {
    if (!(digit(i) || (text[i] == '-' && digit(i + 1))) || (i > 0 && is_word_char(text[i - 1]))) {
      ++i;
      continue;
    }
    size_t end = i + 1;
    while (end < text.size() &&
           (std::isalnum(static_cast<unsigned char>(text[end])) || std::strchr(".+-", text[end]))) {
      ++end;
    }
    spans.push_back({i, end});
    i = end;
  }
  return spans;
}

// Strings: JSON's quoted strings (quotes included), YAML's plain words.
std::vector<Span> string_spans(const std::string& text, Syntax syntax) {
  std::vector<Span> spans;
  for (size_t i = 0; i < text.size(); ++i) {
    if (syntax == Syntax::json && text[i] == '"') {
      size_t end = i + 1;
      while (end < text.size() && text[end] != '"') end += text[end] == '\\' ? 2 : 1;
      if (end >= text.size()) break;
      spans.push_back({i, end + 1});
      i = end;
    } else if (syntax == Syntax::yaml && std::isalpha(static_cast<unsigned char>(text[i])) &&
               (i == 0 || !is_word_char(text[i - 1]))) {
      size_t end = i + 1;
      while (end < text.size() && (is_word_char(text[end]) || text[end] == '/' || text[end] == '-')) ++end;
      spans.push_back({i, end});
      i = end - 1;
    }
  }
  return spans;
}

// The words of `text`, split at spaces.
std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> split;
  for (size_t begin = 0, end = 0; begin < text.size(); begin = end + 1) {
    end = std::min(text.find(' ', begin), text.size());
    if (end > begin) split.push_back(text.substr(begin, end - begin));
  }
  return split;
}

const std::vector<std::string> kExtremeNumbers = words(
    "0 -0 -1 0.5 1e308 -1e308 1e309 4.9e-324 "  // doubles up to and past their range
    "2147483648 4294967296 16777216 9223372036854775807 9223372036854775808 -9223372036854775808 "  // integer limits
    "18446744073709551615 18446744073709551616 99999999999999999999 -99999999999999999999 "
    "nan NaN inf -inf Infinity .nan .inf -.inf "  // not JSON; YAML's spellings
    "0x7fffffffffffffff 1_000 00 1. .5 1e -");    // other spellings, malformed

// Values of other types, for where a number (or string) is expected.
const std::vector<std::string>& other_values(Syntax syntax) {
  static const std::vector<std::string> json = {"\"x\"", "\"\"", "\"1\"", "null", "true",
                                                "false", "[]",   "{}",    "[1]",  "{\"a\": 1}"};
  static const std::vector<std::string> yaml = {"x",  "\"\"",   "\"1\"",  "~",  "null", "true",         "[]",
                                                "{}", "[1, 2]", "{a: 1}", "*x", "&a 1", "!!binary AAAA"};
  return syntax == Syntax::json ? json : yaml;
}

// Control characters and odd code points, spelled as escapes inside a string.
const std::vector<std::string>& odd_characters(Syntax syntax) {
  static const std::vector<std::string> json = {
      "\\n", "\\r", "\\t", "\\u0000", "\\u001b", "\\\"", "\\\\", "\\ud83d\\ude00", "\\u2028", "\xc3\xa9"};
  static const std::vector<std::string> yaml = {"\\n", "\\r", "\\t", "\\0", "\\e", "\\x01", "\\u2028", "\\\""};
  return syntax == Syntax::json ? json : yaml;
}

const std::vector<std::string>& syntax_tokens(Syntax syntax) {
  static const std::vector<std::string> json = {"{", "}", "[", "]", "\"", ":", ",", "\\", "null", "\"__metadata__\"",
                                                "1", "-", "e", " ", "\n"};
  static const std::vector<std::string> yaml = {
      ": ",     "- ", "{",   "}",    "[",  "]",    ",",  "\"", "'",     "&a ",   "*a",       "!!str ",
      "!!int ", "? ", "|\n", ">-\n", "\n", "\n  ", "\t", "#",  "---\n", "...\n", "<<: *a\n", "%TAG ! tag:x,2000:\n",
      "~",      "@",  "`"};
  return syntax == Syntax::json ? json : yaml;
}

void replace_span(std::string& s, const std::vector<Span>& spans, Rng& rng, const std::string& with) {
  if (spans.empty()) return;
  const Span& span = one_of(rng, spans);
  s.replace(span.begin, span.end - span.begin, with);
}

void mutate_text_once(std::string& s, Rng& rng, Syntax syntax) {
  switch (below(rng, 8)) {
    case 0:  // an extreme number
      replace_span(s, number_spans(s), rng, one_of(rng, kExtremeNumbers));
      break;
    case 1:  // a string (or list, map, null) where a number was
      replace_span(s, number_spans(s), rng, one_of(rng, other_values(syntax)));
      break;
    case 2:  // a number (or other value) where a string was
      replace_span(s, string_spans(s, syntax), rng,
                   below(rng, 2) ? one_of(rng, kExtremeNumbers) : one_of(rng, other_values(syntax)));
      break;
    case 3: {  // control characters inside a string
      const std::vector<Span> spans = string_spans(s, syntax);
      if (spans.empty()) break;
      const Span& span = one_of(rng, spans);
      if (syntax == Syntax::json) {
        s.insert(span.begin + 1 + below(rng, span.end - span.begin - 1), one_of(rng, odd_characters(syntax)));
      } else {
        const std::string word = s.substr(span.begin, span.end - span.begin);
        const size_t cut = below(rng, word.size() + 1);
        s.replace(span.begin, word.size(),
                  "\"" + word.substr(0, cut) + one_of(rng, odd_characters(syntax)) + word.substr(cut) + "\"");
      }
      break;
    }
    case 4: {  // a value nested deeply (recursive code must not run out of stack)
      const size_t depth = size_t{1} << (below(rng, 8) ? below(rng, 10) : 10 + below(rng, 8));  // rarely 10^5
      const std::string open = syntax == Syntax::json && below(rng, 2) ? "{\"a\":" : "[";
      const std::string close = open == "[" ? "]" : "}";
      std::string nested;
      for (size_t i = 0; i < depth; ++i) nested += open;
      nested += "1";
      if (below(rng, 4)) {
        for (size_t i = 0; i < depth; ++i) nested += close;
      }
      replace_span(s, below(rng, 2) ? number_spans(s) : string_spans(s, syntax), rng, nested);
      break;
    }
    case 5:  // a syntax token
      s.insert(below(rng, s.size() + 1), one_of(rng, syntax_tokens(syntax)));
      break;
    case 6: {  // a line (or stretch) moved elsewhere
      if (s.empty()) break;
      const size_t begin = s.rfind('\n', below(rng, s.size()));
      const size_t start = begin == std::string::npos ? 0 : begin;
      const size_t end = std::min(s.size(), s.find('\n', start + 1));
      const std::string line = s.substr(start, end - start);
      s.erase(start, end - start);
      s.insert(below(rng, s.size() + 1), line);
      break;
    }
    default:
      s[below(rng, s.size())] = static_cast<char>(rng());
  }
}

void mutate_bytes_once(std::string& s, Rng& rng, bool binary_fields) {
  switch (below(rng, binary_fields ? 7 : 6)) {
    case 0:
      flip_bit(s, rng);
      break;
    case 1:
      overwrite_bytes(s, rng);
      break;
    case 2:
      truncate(s, rng);
      break;
    case 3:
      insert_bytes(s, rng);
      break;
    case 4:
      erase_range(s, rng);
      break;
    case 5:
      duplicate_chunk(s, rng);
      break;
    default:
      overwrite_integer(s, rng);
  }
}

size_t mutation_count(Rng& rng) {
  return 1 + below(rng, 4);
}

std::string mutate_text(std::string s, Rng& rng, Syntax syntax) {
  for (size_t n = mutation_count(rng); n > 0; --n) {
    if (below(rng, 3) && !s.empty()) {
      mutate_text_once(s, rng, syntax);
    } else {
      mutate_bytes_once(s, rng, false);
    }
  }
  return s;
}

std::string mutate_binary(std::string s, Rng& rng) {
  for (size_t n = mutation_count(rng); n > 0; --n) mutate_bytes_once(s, rng, true);
  return s;
}

// A random input made of `text`'s own pieces (runs of letters, digits, other bytes) reshuffled.
std::string reshuffled_tokens(const std::string& text, Rng& rng) {
  std::vector<std::string> pieces;
  for (size_t i = 0; i < text.size();) {
    size_t end = i + 1;
    while (end < text.size() && std::isalnum(static_cast<unsigned char>(text[end])) &&
           std::isalnum(static_cast<unsigned char>(text[i]))) {
      ++end;
    }
    pieces.push_back(text.substr(i, end - i));
    i = end;
  }
  std::string shuffled;
  for (size_t n = below(rng, 400); n > 0 && !pieces.empty(); --n) shuffled += one_of(rng, pieces);
  return shuffled;
}

// A fully random text input: bytes, or the seed's tokens reshuffled.
std::string random_text(const std::string& seed, Rng& rng) {
  return below(rng, 2) ? random_bytes(rng, below(rng, 2048)) : reshuffled_tokens(seed, rng);
}

// ---------------------------------------------------------------------------------------------
// The fuzz loop.

struct FuzzTarget {
  std::string name;  // names the test's directories and messages
  std::vector<FuzzInput> seeds;
  std::vector<FuzzInput> regressions;  // inputs that once broke the parser, replayed first
  std::function<FuzzInput(const FuzzInput& seed, Rng&)> mutate;
  std::function<FuzzInput(const FuzzInput& seed, Rng&)> make_random;
  std::function<void(const std::string& dir)> parse;  // reads the input from `dir`
};

uint64_t base_seed() {
  const char* text = std::getenv("HALO_FUZZ_SEED");
  return text != nullptr ? std::strtoull(text, nullptr, 0) : kBaseSeed;
}

int seconds_per_parser() {
  const char* text = std::getenv("HALO_FUZZ_SECONDS");
  return text != nullptr ? std::atoi(text) : kSecondsPerParser;
}

uint64_t name_hash(const std::string& name) {  // FNV-1a: the same on every platform
  uint64_t hash = 14695981039346656037ull;
  for (char c : name) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return hash;
}

void write_input(const std::string& dir, const FuzzInput& input) {
  for (const std::string& name : list_directory(dir)) {
    if (!input.count(name)) ::unlink(join_path(dir, name).c_str());
  }
  for (const auto& [name, bytes] : input) test::write_text(join_path(dir, name), bytes);
}

// Copies a failing input into DIR/NAME-INPUT/ under a directory kept after the tests (the work
// directories are removed at exit); returns where it went.
std::string keep_failing_input(const std::string& name, const std::string& input_label, const FuzzInput& input) {
  static const std::string kept_dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/halo-fuzz-failures-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return std::string(tmp != nullptr ? tmp : "/tmp");
    return pattern;
  }();
  const std::string dir = join_path(kept_dir, name + "-" + input_label);
  create_directories(dir);
  write_input(dir, input);
  return dir;
}

void run_fuzz(const FuzzTarget& target) {
  install_fatal_signal_report();
  const std::string work_dir = test::make_temp_dir();
  const uint64_t seed = base_seed();
  int failures = 0, accepted = 0;
  // Runs the parser on `input`; `label` says which input it is in messages.
  const auto check = [&](const FuzzInput& input, const std::string& label) {
    write_input(work_dir, input);
    std::snprintf(g_running_input, sizeof g_running_input,
                  "%s input %s (base seed %llu: HALO_FUZZ_SEED); the input is in %s\n", target.name.c_str(),
                  label.c_str(), static_cast<unsigned long long>(seed), work_dir.c_str());
    ::alarm(kMaxSecondsPerCall);
    const std::string problem = misbehavior_of([&] {
      target.parse(work_dir);
      ++accepted;
    });
    ::alarm(0);
    if (problem.empty()) return;
    ++failures;
    ADD_FAILURE() << target.name << " input " << label << " (base seed " << seed << "): " << problem
                  << "; the input is kept in " << keep_failing_input(target.name, label, input);
  };

  for (size_t i = 0; i < target.seeds.size(); ++i) {
    write_input(work_dir, target.seeds[i]);
    ASSERT_EQ(test::error_of([&] { target.parse(work_dir); }), "(no error)") << target.name << " seed " << i;
  }
  for (size_t i = 0; i < target.regressions.size(); ++i) check(target.regressions[i], cat("regression-", i));

  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(seconds_per_parser());
  accepted = 0;
  int inputs = 0;
  for (; inputs < kMaxInputsPerParser && failures < kMaxFailuresReported; ++inputs) {
    if (std::chrono::steady_clock::now() >= deadline) break;
    const uint64_t name = name_hash(target.name);
    std::seed_seq input_seed{seed & 0xffffffff, seed >> 32, name & 0xffffffff, name >> 32,
                             static_cast<uint64_t>(inputs)};
    Rng rng(input_seed);
    const FuzzInput& base = one_of(rng, target.seeds);
    const FuzzInput input = below(rng, 16) ? target.mutate(base, rng) : target.make_random(base, rng);
    check(input, std::to_string(inputs));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[   fuzz   ] %s: %d inputs in %.1f s, %d accepted (base seed %llu)\n", target.name.c_str(), inputs,
              seconds, accepted, static_cast<unsigned long long>(seed));
}

// Mutates the one file of a single-file input as text.
FuzzTarget text_target(const std::string& name, const std::string& file_name, Syntax syntax) {
  FuzzTarget target;
  target.name = name;
  target.mutate = [file_name, syntax](const FuzzInput& seed, Rng& rng) {
    return FuzzInput{{file_name, mutate_text(seed.at(file_name), rng, syntax)}};
  };
  target.make_random = [file_name](const FuzzInput& seed, Rng& rng) {
    return FuzzInput{{file_name, random_text(seed.at(file_name), rng)}};
  };
  return target;
}

std::string source_file(const std::string& relative_path) {
  return read_file(join_path(HALO_SOURCE_DIR, relative_path));
}

// ---------------------------------------------------------------------------------------------
// safetensors

constexpr const char* kSafetensorsName = "model.safetensors";
constexpr const char* kIndexName = "model.safetensors.index.json";

// A model directory's weights (every dtype, a scalar, an empty tensor, metadata): one
// model.safetensors, or shards of at most `max_shard_bytes` and their index.
FuzzInput weights_seed(uint64_t max_shard_bytes) {
  const std::string dir = test::make_temp_dir();
  const std::vector<unsigned char> data(64, 0x3c);
  write_weights(dir,
                {{"model.embed_tokens.weight", DType::F32, {2, 3}, data.data(), 24},
                 {"layers.0.bias", DType::BF16, {4}, data.data(), 8},
                 {"layers.0.scale", DType::F16, {}, data.data(), 2},
                 {"step", DType::I64, {1}, data.data(), 8},
                 {"f64", DType::F64, {1, 1}, data.data(), 8},
                 {"i32", DType::I32, {2}, data.data(), 8},
                 {"i16", DType::I16, {1}, data.data(), 2},
                 {"i8", DType::I8, {3}, data.data(), 3},
                 {"mask", DType::BOOL, {2, 1}, data.data(), 2},
                 {"u8", DType::U8, {5}, data.data(), 5},
                 {"empty", DType::F32, {0, 7}, data.data(), 0}},
                max_shard_bytes, {{"producer", "halo fuzz"}});
  FuzzInput weights;
  for (const std::string& name : list_directory(dir)) weights[name] = read_file(join_path(dir, name));
  return weights;
}

std::string length_prefix(uint64_t length) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(length >> (8 * i));
  return bytes;
}

// A model.safetensors with this header and 8 bytes of data.
FuzzInput weights_with_header(const std::string& header) {
  return {{kSafetensorsName, length_prefix(header.size()) + header + std::string(8, '\0')}};
}

// A JSON value nested `depth` objects deep.
std::string nested_objects(size_t depth) {
  std::string nested;
  for (size_t i = 0; i < depth; ++i) nested += "{\"a\":";
  return nested + "1" + std::string(depth, '}');
}

// The declared header length, capped at what the file holds.
uint64_t header_length(const std::string& file) {
  uint64_t length = 0;
  for (int i = 7; i >= 0 && file.size() >= 8; --i) length = (length << 8) | static_cast<unsigned char>(file[i]);
  return std::min<uint64_t>(length, file.size() < 8 ? 0 : file.size() - 8);
}

std::string mutate_safetensors(const std::string& file, Rng& rng) {
  const uint64_t length = header_length(file);
  const std::string header = file.substr(std::min<size_t>(8, file.size()), length);
  const std::string data = file.substr(std::min<size_t>(file.size(), 8 + length));
  switch (below(rng, 4)) {
    case 0: {  // the header text, with a length prefix that matches it
      const std::string mutated = mutate_text(header, rng, Syntax::json);
      return length_prefix(mutated.size()) + mutated + data;
    }
    case 1:  // the header text, the old prefix kept
      return length_prefix(length) + mutate_text(header, rng, Syntax::json) + data;
    case 2: {  // the length prefix alone
      const std::vector<uint64_t> lengths = {
          0,           1,           length - 1, length + 1, length + 8, file.size() - 8, file.size() - 7,
          100'000'000, 100'000'001, 1ull << 63, ~0ull,      rng()};
      return length_prefix(below(rng, 4) ? one_of(rng, lengths) : length ^ (uint64_t{1} << below(rng, 64))) +
             file.substr(std::min<size_t>(8, file.size()));
    }
    default: {  // bytes of the prefix, the header and a little data; or the whole file cut
      if (below(rng, 4) == 0) return mutate_binary(file, rng);
      const size_t head_size = std::min<size_t>(file.size(), 8 + length + 64);
      return mutate_binary(file.substr(0, head_size), rng) + file.substr(head_size);
    }
  }
}

volatile uint64_t g_byte_sum = 0;  // keeps the reads of tensor bytes from being optimized away

// Opens the directory's weights, reads every byte they hand out, and loads them as tensors.
void open_weights(const std::string& dir) {
  const WeightFiles files(dir);
  uint64_t sum = 0;
  for (const auto& [name, entry] : files.entries()) {
    const auto* bytes = static_cast<const unsigned char*>(entry.tensor->data);
    for (size_t i = 0; i < entry.tensor->nbytes; ++i) sum += bytes[i];
  }
  g_byte_sum = sum;
  for (const auto& [name, tensor] : load_tensors(dir)) g_byte_sum = g_byte_sum + tensor.numel();
}

TEST(Fuzz, SafetensorsHeaders) {
  FuzzTarget target;
  target.name = "safetensors";
  target.seeds = {weights_seed(0),
                  weights_seed(16),
                  {{kSafetensorsName, read_file(test::fixture("qwen3-tiny") + "/model.safetensors")}}};
  const std::string entry = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  target.regressions = {
      // nlohmann's out_of_range (not its parse_error) escaped the reader.
      weights_with_header(R"({"t":{"dtype":"F32","shape":[1e309],"data_offsets":[0,8]}})"),
      {{kIndexName, R"({"metadata":{"total_size":1e309},"weight_map":{}})"}},
      // Control characters from the file split the one-line error.
      weights_with_header(R"({"a\nb":{"dtype":"F32\r","shape":[2],"data_offsets":[0,8]}})"),
      weights_with_header(R"({"__metadata__":{"key\n":1}})"),
      weights_with_header(R"({"t\n":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"u\r":{)" + entry + "}}"),
      {{kIndexName, R"({"weight_map":{"t\n":"model\n.safetensors"}})"}},
      // json::dump of a deeply nested bad value overflowed the stack.
      weights_with_header(R"({"t":{"dtype":"F32","shape":[2,)" + nested_objects(100000) +
                          R"(],"data_offsets":[0,8]}})"),
      weights_with_header(R"({"t":{"dtype":"F32","shape":[-1,)" + nested_objects(100000) +
                          R"(],"data_offsets":[0,8]}})"),
  };
  // One file of the input: a safetensors file, or the index as JSON text.
  target.mutate = [](const FuzzInput& seed, Rng& rng) {
    FuzzInput input = seed;
    auto file = std::next(input.begin(), static_cast<std::ptrdiff_t>(below(rng, input.size())));
    file->second = file->first == kIndexName ? mutate_text(file->second, rng, Syntax::json)
                                             : mutate_safetensors(file->second, rng);
    return input;
  };
  // Random bytes, or a seed's header tokens reshuffled (its first file is a safetensors file).
  target.make_random = [](const FuzzInput& seed, Rng& rng) {
    const std::string& file = seed.begin()->second;
    const std::string header = random_text(file.substr(8, std::min<uint64_t>(header_length(file), 4096)), rng);
    const std::string prefix = below(rng, 2) ? length_prefix(header.size()) : random_bytes(rng, 8);
    return FuzzInput{{kSafetensorsName, prefix + header + random_bytes(rng, below(rng, 128))}};
  };
  target.parse = open_weights;
  run_fuzz(target);
}

// ---------------------------------------------------------------------------------------------
// config.json

constexpr const char* kHypeNetConfig = R"json({
  "model_type": "hypenet", "architectures": ["HypeNetForCausalLM"], "vocab_size": 1024, "hidden_size": 64,
  "intermediate_size": 160, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
  "head_dim": 16, "max_position_embeddings": 2048, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
  "tie_word_embeddings": true, "dtype": "bfloat16", "eos_token_id": [1, 2], "bos_token_id": 0,
  "pad_token_id": null, "mixer_types": ["attn", "lightning-attn", "lightning-attn", "attn"],
  "attn_use_qk_norm": true, "attn_use_rope": false, "attn_use_output_gate": true,
  "attn_logits_scaling": "hype 500", "expand_kv_proj": true, "lightning_nh": 4, "lightning_nkv": 2,
  "lightning_head_dim": 16, "lightning_use_rope": true, "lightning_use_qk_norm": true,
  "lightning_use_output_norm": true, "lightning_use_output_gate": true, "lightning_scale": "1/sqrt(d)",
  "lightning_use_short_conv": false, "hidden_act": "silu"
})json";

constexpr const char* kLlama3Config = R"json({
  "model_type": "llama", "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 4096,
  "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "torch_dtype": "float16", "attention_bias": true,
  "mlp_bias": true, "eos_token_id": 3, "use_sliding_window": false,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 1024}
})json";

constexpr const char* kYarnConfig = R"json({
  "model_type": "qwen2", "vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
  "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 8192,
  "dtype": "float32",
  "rope_parameters": {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                      "original_max_position_embeddings": 2048, "beta_fast": 32, "beta_slow": 1,
                      "mscale": 1.0, "mscale_all_dim": 0.5, "attention_factor": 1.1, "truncate": false}
})json";

// Parses config.json and uses what it says (RoPE tables, the weight list, writing it back).
void parse_config(const std::string& dir) {
  const ModelConfig config = load_model_config(dir);
  rope_inverse_frequencies(config, config.head_dim);
  rope_attention_factor(config);
  parameter_specs(config);
  parse_model_config(model_config_to_json(config), join_path(dir, "config.json (written back)"));
}

TEST(Fuzz, ConfigJson) {
  FuzzTarget target = text_target("config.json", "config.json", Syntax::json);
  target.seeds = {{{"config.json", read_file(test::fixture("qwen3-tiny") + "/config.json")}},
                  {{"config.json", kHypeNetConfig}},
                  {{"config.json", kLlama3Config}},
                  {{"config.json", kYarnConfig}}};
  target.parse = parse_config;
  const std::string tiny = read_file(test::fixture("qwen3-tiny") + "/config.json");
  auto with = [&](const std::string& key, const std::string& value) {
    nlohmann::json j = nlohmann::json::parse(tiny);
    j[key] = nlohmann::json::parse(value);
    return FuzzInput{{"config.json", j.dump()}};
  };
  target.regressions = {
      // json::dump of a deeply nested value of the wrong type overflowed the stack.
      {{"config.json", tiny.substr(0, tiny.rfind('}')) + ", \"hidden_size\": " + std::string(100000, '[') + "1" +
                           std::string(100000, ']') + "}"}},
      // Strings with line breaks split the one-line error.
      with("model_type", "\"qwen\\n3\""), with("hidden_act", "\"si\\nlu\""), with("torch_dtype", "\"bf\\r16\""),
      with("mixer_types", "[\"attn\\n\"]"), with("attn_logits_scaling", "\"hype\\n5\""),
  };
  run_fuzz(target);
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json

const std::vector<std::string> kTextsToTokenize = {
    "Hello, world! 12345 the end", "na\xc3\xafve caf\xc3\xa9 e\xcc\x81 \xe6\x9d\xb1\xe4\xba\xac \xd9\xa1\xd9\xa2",
    "<|endoftext|>the<|endoftext|>", " \t\n  \r\n", ""};

// The byte tokenizer made richer: merges (both spellings), an added token, NFC, and a Sequence
// of Split, Digits and ByteLevel pre-tokenizers.
std::string rich_tokenizer_json(const std::string& byte_tokenizer) {
  nlohmann::json tokenizer = nlohmann::json::parse(byte_tokenizer);
  nlohmann::json& vocab = tokenizer["model"]["vocab"];
  vocab["he"] = 256;
  vocab["\xc4\xa0t"] = 257;  // "Ġt"
  vocab["\xc4\xa0the"] = 258;
  tokenizer["model"]["merges"] = {"h e", "\xc4\xa0 t", nlohmann::json::array({"\xc4\xa0t", "he"})};
  tokenizer["added_tokens"] = {{{"id", 259}, {"content", "<|endoftext|>"}, {"special", true}}};
  tokenizer["normalizer"] = {{"type", "NFC"}};
  tokenizer["pre_tokenizer"] = {{"type", "Sequence"},
                                {"pretokenizers",
                                 {{{"type", "Split"},
                                   {"pattern", {{"Regex", "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"}}},
                                   {"behavior", "Isolated"},
                                   {"invert", false}},
                                  {{"type", "Digits"}, {"individual_digits", true}},
                                  {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
  return tokenizer.dump(1);
}

// `tokenizer_json` with the value at `pointer` ("/model/type") replaced by `value`, JSON text
// spliced in as is (nlohmann cannot build a 10^5-deep value without recursing).
std::string tokenizer_with(const std::string& tokenizer_json, const std::string& pointer, const std::string& value) {
  nlohmann::json tokenizer = nlohmann::json::parse(tokenizer_json);
  tokenizer[nlohmann::json::json_pointer(pointer)] = "\x01";
  std::string text = tokenizer.dump();
  text.replace(text.find("\"\\u0001\""), 8, value);
  return text;
}

// Loads the tokenizer and runs each of its calls.
void load_and_use_tokenizer(const std::string& dir) {
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(dir);
  for (const std::string& text : kTextsToTokenize) {
    allow_refusal([&] { tokenizer->decode(tokenizer->encode(text)); });
  }
  allow_refusal([&] { tokenizer->decode({0, tokenizer->vocab_size() - 1, tokenizer->vocab_size(), -1}); });
  tokenizer->token_to_id("<|endoftext|>");
  tokenizer->token_to_id("");
  tokenizer->eos_id();
}

TEST(Fuzz, TokenizerJson) {
  const std::string byte_tokenizer = read_file(test::write_byte_tokenizer(test::make_temp_dir()));
  const std::string eos_config = R"json({"eos_token": {"content": "<|endoftext|>", "special": true}})json";
  FuzzTarget target;
  target.name = "tokenizer.json";
  target.seeds = {{{"tokenizer.json", byte_tokenizer}},
                  {{"tokenizer.json", rich_tokenizer_json(byte_tokenizer)}, {"tokenizer_config.json", eos_config}}};
  const auto with = [&](const std::string& pointer, const std::string& value) {
    return FuzzInput{{"tokenizer.json", tokenizer_with(byte_tokenizer, pointer, value)}};
  };
  target.regressions = {
      // Control characters from the files split the one-line error.
      {{"tokenizer.json", byte_tokenizer}, {"tokenizer_config.json", R"({"eos_token": "<|end\noftext|>"})"}},
      with("/model/type", R"("B\nPE")"),
      with("/model/vocab/\r", R"("x")"),
      with("/model/merges", R"(["a\nb"])"),
      with("/model/merges", R"(["a \n"])"),
      with("/normalizer", R"({"type": "N\rFC"})"),
      with("/pre_tokenizer", R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(\n"},
                                 "behavior": "Isolated"}, {"type": "ByteLevel"}]})"),
      // Copying a deeply nested section overflowed the stack.
      with("/normalizer", "{\"type\": " + nested_objects(100000) + "}"),
      with("/pre_tokenizer", nested_objects(100000)),
      with("/added_tokens", nested_objects(100000)),
  };
  // Mostly tokenizer.json; tokenizer_config.json a quarter of the time when there is one.
  target.mutate = [](const FuzzInput& seed, Rng& rng) {
    FuzzInput input = seed;
    const bool config = input.count("tokenizer_config.json") && below(rng, 4) == 0;
    std::string& file = input[config ? "tokenizer_config.json" : "tokenizer.json"];
    file = mutate_text(file, rng, Syntax::json);
    return input;
  };
  target.make_random = [](const FuzzInput& seed, Rng& rng) {
    return FuzzInput{{"tokenizer.json", random_text(seed.at("tokenizer.json"), rng)}};
  };
  target.parse = load_and_use_tokenizer;
  run_fuzz(target);
}

// ---------------------------------------------------------------------------------------------
// experiment YAML

TEST(Fuzz, ExperimentYaml) {
  FuzzTarget target = text_target("experiment.yaml", "experiment.yaml", Syntax::yaml);
  target.seeds = {{{"experiment.yaml", source_file("configs/quickstart.yaml")}},
                  {{"experiment.yaml", source_file("configs/smollm2-hypenet.yaml")}}};
  target.parse = [](const std::string& dir) { load_experiment(join_path(dir, "experiment.yaml")); };
  const std::string quickstart = source_file("configs/quickstart.yaml");
  target.regressions = {
      // A key that is a list or a mapping threw yaml-cpp's TypedBadConversion.
      {{"experiment.yaml", quickstart + "[a]: 1\n"}},
      {{"experiment.yaml", quickstart + "{a: 1}: 2\n"}},
      // Line breaks in a key, a value or yaml-cpp's own message split the one-line error.
      {{"experiment.yaml", quickstart + "\"run_dir\\n\": x\n"}},
      {{"experiment.yaml", quickstart + "position_encoding: \"ho\\npe\"\n"}},
      {{"experiment.yaml", quickstart + "x: \"a\\\nb\"\n"}},
  };
  run_fuzz(target);
}

// ---------------------------------------------------------------------------------------------
// GGUF

using test::put;
using test::put_string;

// A small valid GGUF file: a key of every kind (arrays of numbers and of strings too),
// general.alignment, and one tensor of each of several ggml types holding random blocks.
std::string gguf_seed(uint32_t version, uint32_t alignment, Rng& rng) {
  using Kind = GgufValue::Kind;
  std::string kvs;
  uint64_t kv_count = 0;
  const auto key = [&](const std::string& name, Kind kind) {
    put_string(kvs, name);
    put<uint32_t>(kvs, static_cast<uint32_t>(kind));
    ++kv_count;
  };
  key("general.architecture", Kind::STRING);
  put_string(kvs, "llama");
  key("general.alignment", Kind::UINT32);
  put<uint32_t>(kvs, alignment);
  key("u8", Kind::UINT8);
  put<uint8_t>(kvs, 200);
  key("i8", Kind::INT8);
  put<int8_t>(kvs, -5);
  key("u16", Kind::UINT16);
  put<uint16_t>(kvs, 60000);
  key("i16", Kind::INT16);
  put<int16_t>(kvs, -300);
  key("llama.context_length", Kind::UINT32);
  put<uint32_t>(kvs, 4096);
  key("i32", Kind::INT32);
  put<int32_t>(kvs, -70000);
  key("llama.rope.freq_base", Kind::FLOAT32);
  put<float>(kvs, 10000.0f);
  key("flag", Kind::BOOL);
  put<uint8_t>(kvs, 1);
  key("u64", Kind::UINT64);
  put<uint64_t>(kvs, ~0ull);
  key("i64", Kind::INT64);
  put<int64_t>(kvs, -1);
  key("f64", Kind::FLOAT64);
  put<double>(kvs, 0.5);
  key("tokenizer.ggml.token_type", Kind::ARRAY);
  put<uint32_t>(kvs, static_cast<uint32_t>(Kind::INT32));
  put<uint64_t>(kvs, 3);
  for (int32_t value : {1, 3, 6}) put(kvs, value);
  key("tokenizer.ggml.scores", Kind::ARRAY);
  put<uint32_t>(kvs, static_cast<uint32_t>(Kind::FLOAT32));
  put<uint64_t>(kvs, 2);
  for (float value : {-1.5f, 0.0f}) put(kvs, value);
  key("tokenizer.ggml.tokens", Kind::ARRAY);
  put<uint32_t>(kvs, static_cast<uint32_t>(Kind::STRING));
  put<uint64_t>(kvs, 3);
  for (const char* token : {"a", "\xc4\xa0the", ""}) put_string(kvs, token);

  struct Tensor {
    const char* name;
    GgmlType type;
    std::vector<uint64_t> ne;
  };
  const std::vector<Tensor> tensors = {{"token_embd.weight", GgmlType::F32, {4, 2}},
                                       {"f16", GgmlType::F16, {8}},
                                       {"bf16", GgmlType::BF16, {2, 1, 1}},
                                       {"q4_0", GgmlType::Q4_0, {32}},
                                       {"q8_0", GgmlType::Q8_0, {32, 2}},
                                       {"q4_k", GgmlType::Q4_K, {256}},
                                       {"q6_k", GgmlType::Q6_K, {256}},
                                       {"empty", GgmlType::F32, {0, 3}}};
  std::string infos, data;
  for (const Tensor& tensor : tensors) {
    uint64_t elements = 1;
    for (uint64_t extent : tensor.ne) elements *= extent;
    data.resize((data.size() + alignment - 1) / alignment * alignment, '\0');
    put_string(infos, tensor.name);
    put<uint32_t>(infos, static_cast<uint32_t>(tensor.ne.size()));
    for (uint64_t extent : tensor.ne) put(infos, extent);
    put<uint32_t>(infos, static_cast<uint32_t>(tensor.type));
    put<uint64_t>(infos, data.size());
    data += random_bytes(rng, elements / ggml_block_elements(tensor.type) * ggml_block_bytes(tensor.type));
  }
  std::string file = "GGUF";
  put<uint32_t>(file, version);
  put<uint64_t>(file, tensors.size());
  put<uint64_t>(file, kv_count);
  file += kvs + infos;
  file.resize((file.size() + alignment - 1) / alignment * alignment, '\0');
  return file + data;
}

// Opens the file, asks every key for every type, and dequantizes every tensor.
void read_gguf(const std::string& dir) {
  const GgufFile file(join_path(dir, "model.gguf"));
  for (const std::string& key : file.keys()) {
    allow_refusal([&] { file.string_value(key); });
    allow_refusal([&] { file.int_value(key); });
    allow_refusal([&] { file.float_value(key); });
    allow_refusal([&] { file.bool_value(key); });
    allow_refusal([&] { file.string_array(key); });
    allow_refusal([&] { file.int_array(key); });
    allow_refusal([&] { file.float_array(key); });
  }
  for (const GgufTensorInfo& tensor : file.tensors()) {
    std::vector<float> values(static_cast<size_t>(tensor.elements));
    dequantize(tensor.type, tensor.data, tensor.elements, values.data(), 1);
  }
}

TEST(Fuzz, Gguf) {
  Rng seed_rng(kBaseSeed);
  FuzzTarget target;
  target.name = "gguf";
  target.seeds = {{{"model.gguf", gguf_seed(3, 32, seed_rng)}}, {{"model.gguf", gguf_seed(2, 64, seed_rng)}}};
  target.mutate = [](const FuzzInput& seed, Rng& rng) {
    return FuzzInput{{"model.gguf", mutate_binary(seed.at("model.gguf"), rng)}};
  };
  target.make_random = [](const FuzzInput&, Rng& rng) {
    std::string file;
    if (below(rng, 2)) {  // past the magic and version checks
      file = "GGUF";
      put<uint32_t>(file, 3);
    }
    return FuzzInput{{"model.gguf", file + random_bytes(rng, below(rng, 512))}};
  };
  target.parse = read_gguf;
  run_fuzz(target);
}

}  // namespace
}  // namespace halo
