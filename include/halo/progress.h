// A progress bar with rate and ETA on stderr for any work longer than a few seconds.
// On a terminal it redraws one line (at most 10 times a second); otherwise it prints a line
// every 10% so that logs stay readable. Silent when the log level is above info.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace halo {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::string unit = "it");
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void advance(int64_t n = 1);
  // Extra text shown after the counters, e.g. "loss 2.31".
  void set_postfix(const std::string& text);
  void finish();

 private:
  void draw(bool final_line);

  std::string label_, unit_, postfix_;
  int64_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_decile_ = -1;
  bool enabled_, tty_, finished_ = false;
};

// "1h02m", "3m05s", "12s"
std::string format_duration(double seconds);

}  // namespace halo
