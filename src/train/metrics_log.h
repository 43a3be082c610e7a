// A training run's metrics file: JSON Lines, one object per optimizer step with an integer
// "step" (1-based count of completed steps). Opening it for a run that continues after step N
// rewrites it atomically without the lines of later steps (written before a crash or an
// interruption past the checkpoint the run resumes from) and without lines that do not parse
// (one torn by a kill mid-write), so that every step appears once. Each record is appended with
// one write(2) on an O_APPEND descriptor, so it reaches the file (the page cache) before the
// next step starts, and a crash tears at most the last line. No torch here.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>

namespace halo {

class MetricsLog {
 public:
  // Opens (creating) `path` for appending, after dropping lines with step > `last_step`.
  MetricsLog(std::string path, int64_t last_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void append(const nlohmann::json& record);

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace halo
