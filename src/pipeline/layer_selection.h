// HALO's attention-layer selection (../shared/docs/METHOD.md §3): from per-layer measurements of the teacher
// with only layer i converted to its stage-1 RNN, decide which k layers stay softmax attention.
//   halo:   s_i = (max_j R_j - R_i) / (max_j C_j - C_i + eps), clipped at `clip` (eps 1e-10,
//           clip 50 as in the reference code); R recall, C commonsense; top k scores stay.
//   recall: recall drop only (Jet-Nemotron): top k of max_j R_j - R_i.
//   kl:     KL-guided (KL-LS): top k of the per-layer KL to the teacher.
//   even:   evenly spaced: layer floor((2j + 1) * L / (2k)) for j = 0..k-1, the middle of the
//           j-th of k equal blocks (L = 28, k = 7: 2, 6, 10, 14, 18, 22, 26).
// Ties between equal scores go to the lower layer index. k defaults to floor(L / 4).
// Also the report of a selection: selection.md, selection.json and a bar chart selection.png.
// No torch here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace halo {

enum class SelectionCriterion { halo, recall, kl, even };

// "halo" | "recall" | "kl" | "even"; anything else is a usage error.
SelectionCriterion parse_selection_criterion(const std::string& name);
const char* selection_criterion_name(SelectionCriterion criterion);

// Per-layer measurements; which ones a criterion needs: halo R and C, recall R, kl KL, even none.
struct LayerMeasurements {
  int64_t layers = 0;
  std::vector<double> recall, commonsense, kl;  // empty or one value per layer
};

struct LayerSelectionOptions {
  SelectionCriterion criterion = SelectionCriterion::halo;
  int64_t keep = -1;  // attention layers to keep; < 0: floor(layers / 4)
  double eps = 1e-10;
  double clip = 50.0;
};

struct LayerSelection {
  LayerSelectionOptions options;  // keep resolved to the number kept
  LayerMeasurements measurements;
  std::vector<double> scores;             // per layer, larger = keep attention; empty for "even"
  std::vector<int64_t> attention_layers;  // sorted
};

// The halo score of every layer.
std::vector<double> halo_selection_scores(const std::vector<double>& recall, const std::vector<double>& commonsense,
                                          double eps = 1e-10, double clip = 50.0);
// max_j R_j - R_i of every layer.
std::vector<double> recall_drop_scores(const std::vector<double>& recall);
// Indices of the k largest scores, sorted ascending. Ties go to the larger `tie_break` value
// (when given), then to the lower index. The halo criterion breaks ties by the commonsense drop,
// so that a model whose recall is flat (e.g. all zero) still keeps the layers whose loss hurts
// most.
std::vector<int64_t> top_k_layers(const std::vector<double>& scores, int64_t k,
                                  const std::vector<double>& tie_break = {});

// Checks the measurements the criterion needs (one finite value per layer) and selects.
LayerSelection select_attention_layers(const LayerMeasurements& measurements, const LayerSelectionOptions& options);

// Writes DIR/selection.md (a table: layer, R_i, C_i, KL_i when given, s_i, chosen),
// DIR/selection.json (the options, measurements, scores, attention_layers and the mixer_types
// list a HypeNet config takes) and DIR/selection.png (s_i per layer as bars, chosen layers in
// orange; for "even", chosen layers as full bars). Creates DIR.
void write_selection_report(const std::string& dir, const LayerSelection& selection);

}  // namespace halo
