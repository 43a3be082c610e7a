// ProgressBar: redraws in place on a terminal, prints decile lines elsewhere.
#include "halo/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "halo/logging.h"

namespace halo {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_),
      enabled_(log::level() <= log::Level::info),
      tty_(::isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() {
  finish();
}

void ProgressBar::advance(int64_t n) {
  done_ += n;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ >= std::chrono::milliseconds(100)) {
      last_draw_ = now;
      draw(false);
    }
  } else if (total_ > 0) {
    int decile = static_cast<int>(10 * done_ / total_);
    if (decile != last_decile_ && decile < 10) {
      last_decile_ = decile;
      draw(false);
    }
  }
}

void ProgressBar::set_postfix(const std::string& text) {
  postfix_ = text;
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

void ProgressBar::draw(bool final_line) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  char bar[32] = {0};
  std::string line = label_ + " ";
  if (total_ > 0) {
    double frac = std::min(1.0, static_cast<double>(done_) / total_);
    int filled = static_cast<int>(frac * 20);
    for (int i = 0; i < 20; ++i) bar[i] = i < filled ? '#' : '.';
    double eta = rate > 0 ? (total_ - done_) / rate : NAN;
    char buf[160];
    std::snprintf(buf, sizeof buf, "[%s] %3.0f%% %lld/%lld %s, %.1f %s/s, %s elapsed, ETA %s", bar, 100 * frac,
                  static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(), rate, unit_.c_str(),
                  format_duration(elapsed).c_str(),
                  !final_line ? format_duration(eta).c_str() : done_ >= total_ ? "0s" : "- (stopped)");
    line += buf;
  } else {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%lld %s, %.1f %s/s, %s elapsed", static_cast<long long>(done_), unit_.c_str(), rate,
                  unit_.c_str(), format_duration(elapsed).c_str());
    line += buf;
  }
  if (!postfix_.empty()) line += ", " + postfix_;
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final_line ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace halo
