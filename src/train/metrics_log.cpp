// MetricsLog (see metrics_log.h): the file is read once on open, kept lines are written back
// with write_file_atomic only when something was dropped, then appended to through POSIX calls.
#include "train/metrics_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "halo/error.h"
#include "halo/file_system.h"

namespace halo {
namespace {

// The step of one metrics line, or -1 when the line is not an object with an integer "step".
int64_t step_of(const std::string& line) {
  const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
  if (!record.is_object() || !record.contains("step") || !record["step"].is_number_integer()) return -1;
  return record["step"].get<int64_t>();
}

}  // namespace

MetricsLog::MetricsLog(std::string path, int64_t last_step) : path_(std::move(path)) {
  if (path_exists(path_)) {
    const std::string text = read_file(path_);
    std::istringstream lines(text);
    std::string line, kept;
    bool dropped = !text.empty() && text.back() != '\n';
    while (std::getline(lines, line)) {
      const int64_t step = step_of(line);
      if (step >= 1 && step <= last_step) {
        kept += line + "\n";
      } else {
        dropped = true;
      }
    }
    if (dropped) write_file_atomic(path_, kept);
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path_, ": cannot open for appending (", std::strerror(errno), ")");
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::append(const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path_, ": cannot append a metrics line (", std::strerror(errno), ")");
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace halo
