// Errors that reach the user. Every failure caused by bad input (a file, a field, an option)
// is thrown as halo::Error with a one-line message naming the culprit and the fix; the CLI
// prints it and exits with its code (1: bad input data, 2: bad usage). No torch here.
// (File helpers live in file_system.h.)
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace halo {

enum ExitCode : int { kExitOk = 0, kExitBadInput = 1, kExitUsage = 2 };

// The most worker threads a --threads option may ask for: beyond it threads fail to start (a
// million aborted the process), so option checks refuse it with a usage error.
inline constexpr int kMaxWorkerThreads = 256;

// `text` with every control byte (a line break, a tab, ...) written as \xNN: what an Error holds.
std::string one_line(std::string_view text);

// Text from a file or the command line (a name, a key, a value) as it may appear in an error:
// one_line, and cut after 120 bytes with "...".
std::string printable(std::string_view text);

// The message is kept on one line (one_line), whatever file contents it quotes.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, int exit_code = kExitBadInput)
      : std::runtime_error(one_line(message)), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Concatenates anything streamable into one string: cat("layer ", i, " of ", n).
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

// A number with a fixed count of decimals, for messages: fixed(0.01429, 3) == "0.014".
std::string fixed(double value, int decimals);

// Throws halo::Error(cat(args...)) with exit code 1.
template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(cat(args...), kExitBadInput);
}

// Throws halo::Error(cat(args...)) with exit code 2 (bad command line).
template <class... Args>
[[noreturn]] void usage_fail(const Args&... args) {
  throw Error(cat(args...), kExitUsage);
}

}  // namespace halo
