// Benchmark reports: rows stamped with where and when they were measured, written as JSON, a
// markdown table and a chart. The commit comes from halo_git_commit.h, which the build
// regenerates (cmake/git_commit.cmake) whenever `git describe --always --dirty` changes.
#include <cstdio>
#include <ctime>
#include <sstream>

#include "halo/bench_report.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo_git_commit.h"

namespace halo {
namespace {

std::string utc_date() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &parts);
  return buf;
}

std::string cell(const nlohmann::json& value, int decimals) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  if (value.is_number_integer() && decimals < 0) return value.dump();
  if (value.is_number()) {
    if (decimals >= 0) return fixed(value.get<double>(), decimals);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", value.get<double>());
    return buf;
  }
  return value.dump();
}

// The distinct values of `key` over the rows, in order of first appearance, joined by ", ".
std::string distinct(const nlohmann::json& rows, const std::string& key, const std::string& quote = "") {
  std::vector<std::string> seen;
  for (const auto& row : rows) {
    if (!row.contains(key)) continue;
    const std::string v = cell(row[key], -1);
    bool known = false;
    for (const auto& s : seen) known |= s == v;
    if (!known) seen.push_back(v);
  }
  std::string out;
  for (const auto& s : seen) out += (out.empty() ? "" : ", ") + quote + s + quote;
  return out.empty() ? "-" : out;
}

}  // namespace

const char* build_commit() {
  return HALO_GIT_COMMIT;
}

void stamp_bench_row(nlohmann::json& row, const std::string& device_name, const std::string& command) {
  row["device_name"] = device_name;
  row["date"] = utc_date();
  row["commit"] = build_commit();
  row["command"] = command;
}

nlohmann::json read_bench_rows(const std::string& prefix) {
  const std::string path = prefix + ".json";
  if (!path_exists(path)) return nlohmann::json::array();
  nlohmann::json rows = nlohmann::json::parse(read_file(path), nullptr, false);
  if (!rows.is_array()) fail(path, ": not a JSON array of benchmark rows");
  return rows;
}

std::string bench_markdown(const BenchReport& report) {
  std::ostringstream md;
  md << "# " << report.title << "\n\n";
  md << "Device: " << distinct(report.rows, "device_name") << ". Date: " << distinct(report.rows, "date")
     << ". Commit: " << distinct(report.rows, "commit") << ".\n\n";
  md << "Commands: " << distinct(report.rows, "command", "`") << "\n\n";
  md << "|";
  for (const auto& c : report.columns) md << " " << c.header << " |";
  md << "\n|";
  for (const auto& c : report.columns) {  // numbers right-aligned
    bool numeric = false;
    for (const auto& row : report.rows) numeric |= row.contains(c.key) && row[c.key].is_number();
    md << (numeric ? "---:|" : "---|");
  }
  md << "\n";
  for (const auto& row : report.rows) {
    bool oom = row.value("oom", false);
    md << "|";
    for (const auto& c : report.columns) {
      if (row.contains(c.key)) {
        md << " " << cell(row[c.key], c.decimals) << " |";
      } else {
        md << " " << (oom ? "out of memory" : "-") << " |";
        oom = false;
      }
    }
    md << "\n";
  }
  if (!report.notes.empty()) md << "\n" << report.notes << "\n";
  return md.str();
}

void write_bench_report(const std::string& prefix, const BenchReport& report, const RgbImage& chart) {
  create_directories(parent_directory(prefix));
  write_file_atomic(prefix + ".json", report.rows.dump(2) + "\n");
  write_file_atomic(prefix + ".md", bench_markdown(report));
  write_png(prefix + ".png", chart);
}

}  // namespace halo
