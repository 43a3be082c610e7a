// The report stage's measurements, model by model (teacher, student, and any models the
// experiment compares): perplexity against context (mean and the last-N tail), needle in a
// haystack against length, multiple choice, decode speed; written as one table
// (report.md), the numbers (report.json) and two charts (niah.png, ppl.png).
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "halo/experiment.h"

namespace halo {

struct ReportModel {
  std::string name, dir;
};

struct ReportSetting {
  std::string title;          // the report's first line
  std::string tokenizer_dir;  // tokenizes the text, filler and tasks for every model
  int64_t training_length = 512;  // what context_factors multiply
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;
  std::vector<std::pair<std::string, double>> stage_seconds;  // wall time of finished stages
  std::string out_dir;
};

// The contexts perplexity is measured at, and the needle lengths (absolute lists, or the
// factors times the training length).
std::vector<int64_t> report_contexts(const ReportConfig& r, int64_t training_length);
std::vector<int64_t> report_niah_lengths(const ReportConfig& r, int64_t training_length);

void write_experiment_report(const ReportConfig& r, const std::vector<ReportModel>& models, const ReportSetting& s);

}  // namespace halo
