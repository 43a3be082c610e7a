// tune_hype_scaling: for each a of the grid, NIAH accuracy and held-out loss at every length (the
// same samples and windows for every a, so that only a changes), then the rule of hype_scaling.h.
// The report draws both curves against a on a log axis.
#include "halo/hype_scaling.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

#include "halo/causal_lm.h"
#include "halo/chart.h"
#include "halo/error.h"
#include "halo/evaluation.h"
#include "halo/file_system.h"
#include "halo/logging.h"
#include "halo/perplexity.h"
#include "halo/progress.h"
#include "halo/tokenizer.h"

namespace halo {

double choose_hype_scaling(const std::vector<HypeScalingPoint>& points, double tolerance) {
  if (points.empty()) fail("no HyPE constant was scored");
  double best_niah = points.front().niah;
  for (const auto& p : points) best_niah = std::max(best_niah, p.niah);
  const HypeScalingPoint* best = nullptr;
  for (const auto& p : points) {
    if (p.niah + 1e-12 < best_niah - tolerance) continue;
    if (best == nullptr || p.mean_nll < best->mean_nll) best = &p;
  }
  return best->a;
}

void check_hype_scaling_options(const HypeScalingOptions& options) {
  if (options.grid.empty() || options.grid.size() > 1000) {
    usage_fail("--grid: give 1 to 1000 values of HyPE's a, got ", options.grid.size());
  }
  for (double a : options.grid) {
    if (!(a > 1) || !std::isfinite(a)) usage_fail("--grid: every value of a must be > 1, got ", a);
  }
  if (options.lengths.empty()) usage_fail("--lengths: no context length to tune HyPE's a at");
  for (int64_t length : options.lengths) {
    if (length < 2) usage_fail("--lengths: context lengths must be >= 2, got ", length);
  }
  if (options.niah_samples < 1 || options.niah_samples > 10000) {
    usage_fail("--niah-samples must be 1 to 10000, got ", options.niah_samples);
  }
  if (!(options.niah_tolerance >= 0 && options.niah_tolerance <= 1)) {
    usage_fail("--niah-tolerance must be in [0, 1], got ", options.niah_tolerance);
  }
  if (options.ppl_tokens < 0) usage_fail("--ppl-tokens must be >= 0, got ", options.ppl_tokens);
  const int64_t shortest = *std::min_element(options.lengths.begin(), options.lengths.end());
  if (options.ppl_tail < 0 || options.ppl_tail >= shortest) {
    usage_fail("--ppl-tail must be 0 (whole windows) or below the shortest length ", shortest, ", got ",
               options.ppl_tail);
  }
}

HypeScalingResult tune_hype_scaling(CausalLM& model, const Tokenizer& tokenizer, const std::string& text,
                                    const std::string& filler, const std::vector<int64_t>& stop_ids,
                                    const HypeScalingOptions& options) {
  check_hype_scaling_options(options);
  const int64_t longest = *std::max_element(options.lengths.begin(), options.lengths.end());
  const int64_t vocab = model.config().vocab_size;
  const int64_t ppl_tokens = options.ppl_tokens > 0 ? std::max(options.ppl_tokens, longest + 1) : longest + 1;
  const std::vector<int32_t> ids = held_out_tokens(tokenizer, text, ppl_tokens, vocab);
  if (static_cast<int64_t>(ids.size()) < longest + 1) {
    fail("the held-out text has ", ids.size(), " tokens; tuning HyPE at ", longest, " needs at least ", longest + 1);
  }
  NeedleOptions needle;
  needle.samples = 1;
  needle.seed = options.seed;
  needle.depths.clear();  // niah_samples depths spread evenly over (0, 1), one sample each
  for (int64_t i = 0; i < options.niah_samples; ++i) {
    needle.depths.push_back((i + 0.5) / static_cast<double>(options.niah_samples));
  }
  std::vector<std::vector<NeedleSample>> samples;
  for (int64_t length : options.lengths) {
    needle.lengths = {length};
    samples.push_back(build_needle_samples(tokenizer, filler, needle));
  }

  const std::optional<double> original = model.config().attn_logits_scaling_a;
  HypeScalingResult result;
  result.lengths = options.lengths;
  ProgressBar bar("tune a", static_cast<int64_t>(options.grid.size() * options.lengths.size()), "point");
  for (double a : options.grid) {
    model.set_hype_scaling(a);
    HypeScalingPoint point;
    point.a = a;
    for (size_t i = 0; i < options.lengths.size(); ++i) {
      needle.lengths = {options.lengths[i]};
      const double accuracy = evaluate_needle(model, tokenizer, samples[i], needle, stop_ids).accuracy();
      const int64_t length = options.lengths[i];
      const PerplexityResult scored = perplexity(model, ids, length, length, {}, options.ppl_tail);
      const double nll = options.ppl_tail > 0 ? scored.tail_nll_sum / scored.tail_tokens : scored.mean_nll();
      point.niah_by_length.push_back(accuracy);
      point.nll_by_length.push_back(nll);
      point.niah += accuracy / static_cast<double>(options.lengths.size());
      point.mean_nll += nll / static_cast<double>(options.lengths.size());
      bar.set_postfix(cat("a ", a, " NIAH ", fixed(100 * accuracy, 0), "% loss ", fixed(nll, 3)));
      bar.advance();
    }
    result.points.push_back(point);
  }
  bar.finish();
  model.set_hype_scaling(original);

  result.best_a = choose_hype_scaling(result.points, options.niah_tolerance);
  log::info(cat("HyPE a = ", result.best_a));
  return result;
}

namespace {

std::string scored_positions(const HypeScalingOptions& options) {
  return options.ppl_tail > 0 ? cat("the last ", options.ppl_tail, " positions of each window")
                              : std::string("every position of each window");
}

}  // namespace

void write_hype_scaling_report(const std::string& dir, const HypeScalingResult& result,
                               const HypeScalingOptions& options) {
  nlohmann::json j;
  j["best_a"] = result.best_a;
  j["lengths"] = result.lengths;
  j["niah_tolerance"] = options.niah_tolerance;
  j["niah_samples_per_length"] = options.niah_samples;
  j["loss_scored"] = scored_positions(options);
  j["rule"] = "among the a whose mean NIAH accuracy is within niah_tolerance of the best, the lowest mean loss";
  for (const auto& p : result.points) {
    j["points"].push_back({{"a", p.a},
                           {"niah", p.niah},
                           {"mean_nll", p.mean_nll},
                           {"niah_by_length", p.niah_by_length},
                           {"nll_by_length", p.nll_by_length}});
  }
  std::ostringstream md;
  md << "# HyPE logits scaling: the choice of a\n\nRule: among the values of a whose mean NIAH accuracy is within "
     << fixed(100 * options.niah_tolerance, 1)
     << " points of the best, the lowest mean held-out loss (scored over "
     << scored_positions(options)
     << "). Chosen: **a = " << result.best_a << "**.\n\n| a |";
  for (int64_t length : result.lengths) md << " NIAH @ " << count_label(static_cast<double>(length)) << " |";
  for (int64_t length : result.lengths) md << " loss @ " << count_label(static_cast<double>(length)) << " |";
  md << " mean NIAH | mean loss |\n|---|";
  for (size_t i = 0; i < 2 * result.lengths.size() + 2; ++i) md << "---|";
  md << "\n";
  for (const auto& p : result.points) {
    md << "| " << p.a << (p.a == result.best_a ? " (chosen)" : "") << " |";
    for (double v : p.niah_by_length) md << " " << fixed(100 * v, 1) << "% |";
    for (double v : p.nll_by_length) md << " " << fixed(v, 4) << " |";
    md << " " << fixed(100 * p.niah, 1) << "% | " << fixed(p.mean_nll, 4) << " |\n";
  }
  LineChart niah{"NIAH ACCURACY", "A", true, false, {}};
  LineChart loss{"HELD-OUT LOSS", "A", true, false, {}};
  for (size_t i = 0; i < result.lengths.size(); ++i) {
    LineSeries n{count_label(static_cast<double>(result.lengths[i])), series_color(i), {}};
    LineSeries l = n;
    for (const auto& p : result.points) {
      n.points.emplace_back(p.a, p.niah_by_length[i]);
      l.points.emplace_back(p.a, p.nll_by_length[i]);
    }
    niah.series.push_back(n);
    loss.series.push_back(l);
  }
  create_directories(dir);
  write_file_atomic(join_path(dir, "hype_scaling.json"), j.dump(2) + "\n");
  write_file_atomic(join_path(dir, "hype_scaling.md"), md.str());
  write_png(join_path(dir, "hype_scaling.png"), side_by_side({draw_line_chart(niah), draw_line_chart(loss)}));
}

}  // namespace halo
