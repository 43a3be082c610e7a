// The scores and rules of attention-layer selection (see layer_selection.h for the formulas).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "halo/error.h"
#include "halo/model_config.h"
#include "pipeline/layer_selection.h"

namespace halo {
namespace {

void check_measure(const std::vector<double>& values, int64_t layers, const char* name, SelectionCriterion criterion) {
  if (static_cast<int64_t>(values.size()) != layers) {
    usage_fail("selection by ", selection_criterion_name(criterion), " needs one ", name, " value per layer (", layers,
               "), got ", values.size());
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) fail("the ", name, " value of layer ", i, " is not a finite number");
  }
}

}  // namespace

SelectionCriterion parse_selection_criterion(const std::string& name) {
  if (name == "halo") return SelectionCriterion::halo;
  if (name == "recall") return SelectionCriterion::recall;
  if (name == "kl") return SelectionCriterion::kl;
  if (name == "even") return SelectionCriterion::even;
  usage_fail("unknown selection criterion '", name, "' (expected halo, recall, kl or even)");
}

const char* selection_criterion_name(SelectionCriterion criterion) {
  switch (criterion) {
    case SelectionCriterion::halo:
      return "halo";
    case SelectionCriterion::recall:
      return "recall";
    case SelectionCriterion::kl:
      return "kl";
    case SelectionCriterion::even:
      return "even";
  }
  return "?";
}

std::vector<double> halo_selection_scores(const std::vector<double>& recall, const std::vector<double>& commonsense,
                                          double eps, double clip) {
  if (recall.size() != commonsense.size() || recall.empty()) {
    usage_fail("halo selection scores need as many recall as commonsense values (", recall.size(), " vs ",
               commonsense.size(), "), at least one");
  }
  const double best_recall = *std::max_element(recall.begin(), recall.end());
  const double best_commonsense = *std::max_element(commonsense.begin(), commonsense.end());
  std::vector<double> scores(recall.size());
  for (size_t i = 0; i < recall.size(); ++i) {
    scores[i] = std::min((best_recall - recall[i]) / (best_commonsense - commonsense[i] + eps), clip);
  }
  return scores;
}

std::vector<double> recall_drop_scores(const std::vector<double>& recall) {
  if (recall.empty()) return {};
  const double best = *std::max_element(recall.begin(), recall.end());
  std::vector<double> scores(recall.size());
  for (size_t i = 0; i < recall.size(); ++i) scores[i] = best - recall[i];
  return scores;
}

std::vector<int64_t> top_k_layers(const std::vector<double>& scores, int64_t k, const std::vector<double>& tie_break) {
  if (k < 0 || k > static_cast<int64_t>(scores.size())) {
    usage_fail("cannot keep ", k, " of ", scores.size(), " layers");
  }
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    if (scores[a] != scores[b]) return scores[a] > scores[b];
    return !tie_break.empty() && tie_break[a] > tie_break[b];
  });
  order.resize(k);
  std::sort(order.begin(), order.end());
  return order;
}

LayerSelection select_attention_layers(const LayerMeasurements& measurements, const LayerSelectionOptions& options) {
  const int64_t layers = measurements.layers;
  if (layers < 1) usage_fail("layer selection needs at least one layer");
  LayerSelection selection;
  selection.options = options;
  selection.measurements = measurements;
  const int64_t keep = options.keep < 0 ? layers / 4 : options.keep;
  selection.options.keep = keep;
  switch (options.criterion) {
    case SelectionCriterion::halo:
      check_measure(measurements.recall, layers, "recall", options.criterion);
      check_measure(measurements.commonsense, layers, "commonsense", options.criterion);
      selection.scores =
          halo_selection_scores(measurements.recall, measurements.commonsense, options.eps, options.clip);
      break;
    case SelectionCriterion::recall:
      check_measure(measurements.recall, layers, "recall", options.criterion);
      selection.scores = recall_drop_scores(measurements.recall);
      break;
    case SelectionCriterion::kl:
      check_measure(measurements.kl, layers, "KL", options.criterion);
      selection.scores = measurements.kl;
      break;
    case SelectionCriterion::even:
      selection.attention_layers = evenly_spaced_layers(layers, keep);
      return selection;
  }
  std::vector<double> tie_break;
  if (options.criterion == SelectionCriterion::halo) {
    const double best = *std::max_element(measurements.commonsense.begin(), measurements.commonsense.end());
    for (double c : measurements.commonsense) tie_break.push_back(best - c);
  }
  selection.attention_layers = top_k_layers(selection.scores, keep, tie_break);
  return selection;
}

}  // namespace halo
