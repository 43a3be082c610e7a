// The report of a layer selection: a markdown table to read, JSON to feed stage 2, and a bar
// chart of the scores. Chart layout: a y axis with five ticks from 0 to a rounded-up maximum
// (1, 2 or 5 times a power of ten), one 16-pixel slot per layer with its index below it (every
// n-th index when they would overlap), chosen layers in orange with a thin orange base even
// when their score is 0.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/layer_selection.h"
#include "halo/png_image.h"

namespace halo {
namespace {

const Rgb kWhite{255, 255, 255}, kAxis{40, 40, 40}, kGrid{225, 225, 225};
const Rgb kKept{230, 120, 30}, kConverted{70, 110, 170};

// The smallest 1, 2 or 5 x 10^n not below `value` (> 0).
double nice_ceiling(double value) {
  const double power = std::pow(10.0, std::floor(std::log10(value)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (value <= m * power * (1 + 1e-12)) return m * power;
  }
  return 10 * power;
}

// A tick label: four significant digits at most, trailing zeros dropped.
std::string tick_label(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", value);
  return buf;
}

bool is_chosen(const LayerSelection& s, int64_t layer) {
  return std::binary_search(s.attention_layers.begin(), s.attention_layers.end(), layer);
}

RgbImage draw_chart(const LayerSelection& selection) {
  const int64_t layers = selection.measurements.layers;
  std::vector<double> values(layers, 0.0);
  for (int64_t i = 0; i < layers; ++i) {
    values[i] = selection.scores.empty() ? (is_chosen(selection, i) ? 1.0 : 0.0) : selection.scores[i];
  }
  const double top = nice_ceiling(std::max(*std::max_element(values.begin(), values.end()), 1e-12));
  const int scale = 2, slot = 16, bar = 10, plot_height = 200;
  std::vector<std::string> ticks;
  int label_width = 0;
  for (int t = 0; t <= 4; ++t) {
    ticks.push_back(tick_label(top * t / 4));
    label_width = std::max(label_width, RgbImage::text_width(ticks.back(), scale));
  }
  const int left = label_width + 16, top_margin = 12, right = 12, bottom = 12 + RgbImage::text_height(scale) + 8;
  const int plot_width = static_cast<int>(layers) * slot;
  RgbImage image(left + plot_width + right, top_margin + plot_height + bottom, kWhite);
  const int base = top_margin + plot_height;  // y of the x axis

  for (int t = 0; t <= 4; ++t) {
    const int y = base - plot_height * t / 4;
    image.fill_rect(left, y, left + plot_width, y + 1, kGrid);
    image.fill_rect(left - 4, y, left, y + 1, kAxis);
    const int w = RgbImage::text_width(ticks[t], scale);
    image.draw_text(left - 8 - w, y - RgbImage::text_height(scale) / 2, ticks[t], kAxis, scale);
  }
  const int widest_index = RgbImage::text_width(std::to_string(layers - 1), scale);
  const int every = (widest_index + 4 + slot - 1) / slot;
  for (int64_t i = 0; i < layers; ++i) {
    const int x = left + static_cast<int>(i) * slot + (slot - bar) / 2;
    const int height = static_cast<int>(std::lround(plot_height * std::clamp(values[i] / top, 0.0, 1.0)));
    const Rgb color = is_chosen(selection, i) ? kKept : kConverted;
    image.fill_rect(x, base - height, x + bar, base, color);
    if (is_chosen(selection, i)) image.fill_rect(x, base - 2, x + bar, base, kKept);
    if (i % every == 0) {
      const std::string label = std::to_string(i);
      const int center = left + static_cast<int>(i) * slot + slot / 2;
      image.draw_text(center - RgbImage::text_width(label, scale) / 2, base + 8, label, kAxis, scale);
    }
  }
  image.fill_rect(left - 1, top_margin, left, base + 1, kAxis);   // y axis
  image.fill_rect(left - 1, base, left + plot_width, base + 1, kAxis);  // x axis
  return image;
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
    case SelectionCriterion::recall: md << " (s_i = max_j R_j - R_i)"; break;
    case SelectionCriterion::kl: md << " (s_i = KL_i)"; break;
    case SelectionCriterion::even: md << " (layer floor((2j + 1) L / 2k), j = 0..k-1)"; break;
  }
  md << "; " << o.keep << " of " << m.layers << " layers stay attention (largest s_i; ties: larger commonsense drop, then lower index).\n\n";
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
  if (static_cast<int64_t>(selection.scores.size()) != selection.measurements.layers &&
      !selection.scores.empty()) {
    fail("a selection report needs one score per layer (", selection.measurements.layers, "), got ",
         selection.scores.size());
  }
  create_directories(dir);
  write_file_atomic(join_path(dir, "selection.md"), markdown(selection));
  write_file_atomic(join_path(dir, "selection.json"), json(selection));
  write_png(join_path(dir, "selection.png"), draw_chart(selection));
}

}  // namespace halo
