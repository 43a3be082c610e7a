// What a `halo bench` run leaves behind with --out PREFIX: PREFIX.json (the rows, a JSON array
// of objects), PREFIX.md (title, devices, dates, commits and commands of the rows, a table of
// chosen columns with units in the headers, notes) and PREFIX.png (a chart the caller draws
// from the rows, halo/chart.h). Each file is written atomically. Rows carry their own device
// name, date, commit and command, so rows appended by a later run (--append) keep theirs.
// No torch here.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "halo/png_image.h"

namespace halo {

struct BenchColumn {
  std::string key;     // the row's key
  std::string header;  // with its unit, e.g. "fwd ms"
  int decimals = -1;   // fixed decimals for numbers; -1: integers as they are, others %.4g
};

struct BenchReport {
  std::string title;  // "halo bench kernels"
  std::vector<BenchColumn> columns;
  std::string notes;  // markdown after the table: formulas, what a column means
  nlohmann::json rows = nlohmann::json::array();
};

// The git commit the binary was built from (`git describe --always --dirty` at build time), or
// "unknown" when the source tree was no git checkout.
const char* build_commit();

// Sets the row's "device_name", "date" (UTC, YYYY-MM-DD), "commit" (build_commit) and "command".
void stamp_bench_row(nlohmann::json& row, const std::string& device_name, const std::string& command);

// The rows of PREFIX.json, or an empty array when it does not exist; fails naming the file when
// it is not a JSON array.
nlohmann::json read_bench_rows(const std::string& prefix);

// The markdown: title, devices, dates, commits, commands, the table (numeric columns
// right-aligned), notes. A cell whose key a row lacks is "-", or "out of memory" for the first
// such cell of a row with "oom": true.
std::string bench_markdown(const BenchReport& report);

// Writes PREFIX.json, PREFIX.md and PREFIX.png; creates PREFIX's directory.
void write_bench_report(const std::string& prefix, const BenchReport& report, const RgbImage& chart);

}  // namespace halo
