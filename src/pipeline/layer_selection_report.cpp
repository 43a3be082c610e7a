// The report of a layer selection: a markdown table to read, JSON to feed stage 2, and a bar
// chart of the scores (halo/chart.h): one slot per layer with its index below it, chosen layers
// in orange with a thin orange base even when their score is 0.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>

#include "halo/chart.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/png_image.h"
#include "pipeline/layer_selection.h"

namespace halo {
namespace {

const Rgb kKept{230, 120, 30}, kConverted{70, 110, 170};

bool is_chosen(const LayerSelection& s, int64_t layer) {
  return std::binary_search(s.attention_layers.begin(), s.attention_layers.end(), layer);
}

RgbImage draw_chart(const LayerSelection& selection) {
  BarChart chart;
  for (int64_t i = 0; i < selection.measurements.layers; ++i) {
    const bool chosen = is_chosen(selection, i);
    const double value = selection.scores.empty() ? (chosen ? 1.0 : 0.0) : selection.scores[i];
    chart.bars.push_back({std::to_string(i), value, chosen ? kKept : kConverted, chosen});
  }
  return draw_bar_chart(chart);
}

std::string cell(const std::vector<double>& values, int64_t i) {
  return values.empty() ? "-" : fixed(values[i], 4);
}

std::string markdown(const LayerSelection& s) {
  const auto& m = s.measurements;
  const auto& o = s.options;
  std::ostringstream md;
  md << "# Attention-layer selection\n\n";
  md << "Criterion: " << selection_criterion_name(o.criterion);
  switch (o.criterion) {
    case SelectionCriterion::halo:
      md << " (s_i = (max_j R_j - R_i) / (max_j C_j - C_i + " << o.eps << "), clipped at " << o.clip << ")";
      break;
    case SelectionCriterion::recall:
      md << " (s_i = max_j R_j - R_i)";
      break;
    case SelectionCriterion::kl:
      md << " (s_i = KL_i)";
      break;
    case SelectionCriterion::even:
      md << " (layer floor((2j + 1) L / 2k), j = 0..k-1)";
      break;
  }
  md << "; " << o.keep << " of " << m.layers
     << " layers stay attention (largest s_i; ties: larger commonsense drop, then lower index).\n\n";
  md << "Attention layers:";
  for (size_t j = 0; j < s.attention_layers.size(); ++j) md << (j ? ", " : " ") << s.attention_layers[j];
  md << "\n\n| layer | R_i | C_i |" << (m.kl.empty() ? "" : " KL_i |") << " s_i | chosen |\n";
  md << "|---:|---:|---:|" << (m.kl.empty() ? "" : "---:|") << "---:|:---:|\n";
  for (int64_t i = 0; i < m.layers; ++i) {
    md << "| " << i << " | " << cell(m.recall, i) << " | " << cell(m.commonsense, i) << " | ";
    if (!m.kl.empty()) md << cell(m.kl, i) << " | ";
    md << cell(s.scores, i) << " | " << (is_chosen(s, i) ? "yes" : "") << " |\n";
  }
  return md.str();
}

std::string json(const LayerSelection& s) {
  nlohmann::json j = {{"criterion", selection_criterion_name(s.options.criterion)},
                      {"layers", s.measurements.layers},
                      {"keep", s.options.keep},
                      {"eps", s.options.eps},
                      {"clip", s.options.clip},
                      {"attention_layers", s.attention_layers},
                      {"recall", s.measurements.recall},
                      {"commonsense", s.measurements.commonsense},
                      {"kl", s.measurements.kl},
                      {"scores", s.scores}};
  nlohmann::json mixers = nlohmann::json::array();
  for (int64_t i = 0; i < s.measurements.layers; ++i) mixers.push_back(is_chosen(s, i) ? "attn" : "lightning-attn");
  j["mixer_types"] = mixers;
  return j.dump(2) + "\n";
}

}  // namespace

void write_selection_report(const std::string& dir, const LayerSelection& selection) {
  if (static_cast<int64_t>(selection.scores.size()) != selection.measurements.layers && !selection.scores.empty()) {
    fail("a selection report needs one score per layer (", selection.measurements.layers, "), got ",
         selection.scores.size());
  }
  create_directories(dir);
  write_file_atomic(join_path(dir, "selection.md"), markdown(selection));
  write_file_atomic(join_path(dir, "selection.json"), json(selection));
  write_png(join_path(dir, "selection.png"), draw_chart(selection));
}

}  // namespace halo
