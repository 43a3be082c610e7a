// Choosing HyPE's logits-scaling constant `a` (s_t = log(t + a) / log(a) multiplies the queries of
// a HypeNet's attention layers, ../shared/docs/METHOD.md §2) after training, on held-out data,
// instead of by hand (the paper sets 500/600/900). For each `a` of a grid the model is scored
// past its training length: needle-in-a-haystack accuracy (mean over the lengths) and the mean
// next-token loss of a held-out text at those lengths, over whole windows or, with `ppl_tail`,
// over the last ppl_tail positions of each window only (the tokens farthest past the training
// length, where the scaling matters most and the mean over a window hides it). The rule: among
// the values of `a` whose NIAH accuracy is within `niah_tolerance` of the best, the one with the
// lowest loss (a tie on both keeps the smaller a). The text and filler must be neither trained
// on nor reported.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace halo {

class CausalLM;
class Tokenizer;

struct HypeScalingOptions {
  std::vector<double> grid = {50, 100, 200, 362, 500, 700, 1000, 2000, 5000};
  std::vector<int64_t> lengths;  // context lengths scored, past the training length
  int64_t niah_samples = 20;     // per length, depths spread evenly
  double niah_tolerance = 0.05;  // accuracies this close to the best count as tied
  int64_t ppl_tokens = 0;        // tokens of the held-out text scored per length (0: the longest length)
  int64_t ppl_tail = 0;          // > 0: score only the last ppl_tail positions of each window
  uint64_t seed = 0;
};

struct HypeScalingPoint {
  double a = 0;
  double niah = 0;      // mean accuracy over the lengths
  double mean_nll = 0;  // mean over the lengths of the held-out loss (of the tails with ppl_tail)
  std::vector<double> niah_by_length, nll_by_length;
};

struct HypeScalingResult {
  std::vector<int64_t> lengths;
  std::vector<HypeScalingPoint> points;  // in grid order
  double best_a = 0;
};

// Fails (usage error naming the option, --flag as the CLI spells it) when the grid is empty or
// holds a <= 1, when no length is given or one is < 2, or when the sample count, tolerance,
// token count or tail (< 0, or not below the shortest length) is out of range.
// tune_hype_scaling runs it first; the CLI runs it before loading.
void check_hype_scaling_options(const HypeScalingOptions& options);

// The rule: among the points whose NIAH accuracy is within `tolerance` of the best, the lowest
// mean loss (the first such point on a tie). Fails on an empty list.
double choose_hype_scaling(const std::vector<HypeScalingPoint>& points, double tolerance);

// Scores every `a` of options.grid on `model` (a HypeNet with HyPE attention layers; its own
// scaling is restored afterwards). Fails naming the option when the grid is empty or holds
// a <= 1, when no length is given, or when the text is too short for the longest length.
HypeScalingResult tune_hype_scaling(CausalLM& model, const Tokenizer& tokenizer, const std::string& text,
                                    const std::string& filler, const std::vector<int64_t>& stop_ids,
                                    const HypeScalingOptions& options);

// DIR/hype_scaling.json, .md (the table and the rule) and .png (NIAH and loss against a).
void write_hype_scaling_report(const std::string& dir, const HypeScalingResult& result,
                               const HypeScalingOptions& options);

}  // namespace halo
