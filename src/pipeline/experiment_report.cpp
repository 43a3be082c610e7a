// The report stage (experiment_report.h). Each model is loaded once and measured in turn; a
// metric that cannot be measured (text shorter than the context, out of memory) is shown as such
// and the report goes on. Charts put every model on one axis so the teacher's collapse past
// its window and the student's hold are visible at a glance. Under torchrun every rank scores
// its share of the perplexity windows, NIAH prompts and multiple-choice items (index modulo the
// world size) and the counts are summed; decode timing and the files are rank 0's.
#include "pipeline/experiment_report.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "halo/causal_lm.h"
#include "halo/chart.h"
#include "halo/decode_timing.h"
#include "halo/error.h"
#include "halo/evaluation.h"
#include "halo/file_system.h"
#include "halo/generation.h"
#include "halo/logging.h"
#include "halo/model_directory.h"
#include "halo/perplexity.h"
#include "halo/png_image.h"
#include "halo/process_group.h"
#include "halo/progress.h"
#include "halo/tokenizer.h"

namespace halo {
namespace {

using nlohmann::json;

double decode_tokens_per_second(CausalLM& model, int64_t tokens) {
  GenerationOptions options;
  options.max_new_tokens = tokens;
  GenerationStats stats;
  std::vector<int64_t> prompt(64, 1);
  generate(model, prompt, options, {}, &stats);
  return stats.steps_per_second();
}

// Rows of the markdown table: metric name -> one cell per model, in first-seen order.
class ReportTable {
 public:
  void add(const std::string& metric, size_t column, const std::string& value) {
    if (!cells_.count(metric)) order_.push_back(metric);
    auto& row = cells_[metric];
    if (row.size() <= column) row.resize(column + 1);
    row[column] = value;
  }
  std::string markdown(const std::vector<ReportModel>& models) const {
    std::ostringstream md;
    md << "| metric |";
    for (const auto& m : models) md << " " << m.name << " |";
    md << "\n|---|";
    for (size_t i = 0; i < models.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& metric : order_) {
      const auto& row = cells_.at(metric);
      md << "| " << metric << " |";
      for (size_t i = 0; i < models.size(); ++i) md << " " << (i < row.size() ? row[i] : "") << " |";
      md << "\n";
    }
    return md.str();
  }

 private:
  std::vector<std::string> order_;
  std::map<std::string, std::vector<std::string>> cells_;
};

std::vector<int64_t> scaled(const std::vector<int64_t>& factors, int64_t base) {
  std::vector<int64_t> out;
  for (int64_t f : factors) out.push_back(f * base);
  return out;
}

// One series per model of results[model][key][x] (x as a decimal string).
// Sums numbers over the ranks (one collective); a no-op for one process.
std::vector<double> summed_over_ranks(const std::vector<double>& values) {
  std::vector<at::Tensor> t{at::tensor(at::ArrayRef<double>(values), at::kDouble)};
  ProcessGroup::world().all_reduce_sum(t);
  const at::Tensor sums = t[0].contiguous();
  return {sums.data_ptr<double>(), sums.data_ptr<double>() + sums.numel()};
}

// A perplexity result whose sums are those of all ranks.
PerplexityResult perplexity_over_ranks(const PerplexityResult& p) {
  const std::vector<double> sums =
      summed_over_ranks({p.nll_sum, static_cast<double>(p.tokens), p.tail_nll_sum, static_cast<double>(p.tail_tokens)});
  PerplexityResult all;
  all.nll_sum = sums[0];
  all.tokens = static_cast<int64_t>(sums[1]);
  all.tail_nll_sum = sums[2];
  all.tail_tokens = static_cast<int64_t>(sums[3]);
  return all;
}

// This rank's share of `items`: those whose index modulo the world size is its rank.
template <class T>
std::vector<T> share_of(const std::vector<T>& items) {
  const ProcessGroup& world = ProcessGroup::world();
  std::vector<T> mine;
  for (size_t i = 0; i < items.size(); ++i) {
    if (static_cast<int>(i % static_cast<size_t>(world.size())) == world.rank()) mine.push_back(items[i]);
  }
  return mine;
}

// NIAH over this rank's share of the samples, summed over the ranks cell by cell.
NeedleResult needle_over_ranks(CausalLM& model, const Tokenizer& tokenizer, const std::vector<NeedleSample>& needles,
                               const NeedleOptions& options, const std::vector<int64_t>& stop_ids, ProgressBar& bar) {
  std::map<std::pair<int64_t, double>, size_t> cell_of;
  NeedleResult total;
  for (const NeedleSample& s : needles) {
    if (cell_of.try_emplace({s.length, s.depth}, total.cells.size()).second)
      total.cells.push_back({s.length, s.depth, 0, 0});
  }
  const std::vector<NeedleSample> mine = share_of(needles);
  std::vector<double> counts(2 * total.cells.size(), 0.0);
  if (!mine.empty()) {
    int64_t shown = 0;
    const NeedleResult part = evaluate_needle(model, tokenizer, mine, options, stop_ids, [&](int64_t done) {
      bar.advance(done - shown);
      shown = done;
    });
    for (const NeedleCell& c : part.cells) {
      const size_t k = cell_of.at({c.length, c.depth});
      counts[2 * k] += static_cast<double>(c.correct);
      counts[2 * k + 1] += static_cast<double>(c.total);
    }
  }
  counts = summed_over_ranks(counts);
  for (size_t k = 0; k < total.cells.size(); ++k) {
    total.cells[k].correct = static_cast<int64_t>(counts[2 * k]);
    total.cells[k].total = static_cast<int64_t>(counts[2 * k + 1]);
    total.correct += total.cells[k].correct;
    total.total += total.cells[k].total;
  }
  return total;
}

LineChart chart_of(const json& results, const std::vector<ReportModel>& models, const std::string& key,
                   const std::string& title, double scale) {
  LineChart chart;
  chart.title = title;
  chart.x_label = "tokens";
  chart.log_x = true;
  for (size_t i = 0; i < models.size(); ++i) {
    LineSeries series{models[i].name, series_color(i), {}};
    const json& entry = results[models[i].name];
    if (entry.contains(key)) {
      for (const auto& [x, y] : entry[key].items()) series.points.emplace_back(std::stod(x), scale * y.get<double>());
    }
    std::sort(series.points.begin(), series.points.end());
    chart.series.push_back(series);
  }
  return chart;
}

}  // namespace

std::vector<int64_t> report_contexts(const ReportConfig& r, int64_t training_length) {
  return r.contexts.empty() ? scaled(r.lengths_factors, training_length) : r.contexts;
}

std::vector<int64_t> report_niah_lengths(const ReportConfig& r, int64_t training_length) {
  return r.niah_lengths.empty() ? report_contexts(r, training_length) : r.niah_lengths;
}

void write_experiment_report(const ReportConfig& r, const std::vector<ReportModel>& models, const ReportSetting& s) {
  ProcessGroup& world = ProcessGroup::world();
  auto tokenizer = load_tokenizer(s.tokenizer_dir);
  const std::vector<int64_t> contexts = report_contexts(r, s.training_length);
  const std::vector<int64_t> niah_lengths = report_niah_lengths(r, s.training_length);
  for (int64_t context : contexts) {
    if (r.ppl_tail >= context) fail("report.ppl_tail (", r.ppl_tail, ") must be below every context (", context, ")");
  }
  const ModelConfig first = load_model_config(models.front().dir);
  const std::vector<int32_t> ids = held_out_tokens(*tokenizer, read_file(r.text), r.ppl_tokens, first.vocab_size);
  NeedleOptions needle;
  needle.lengths = niah_lengths;
  needle.depths = r.niah_depths;
  needle.samples = r.niah_samples;
  needle.seed = 1;
  const std::vector<NeedleSample> needles = build_needle_samples(*tokenizer, read_file(r.filler), needle);
  std::vector<ChoiceItem> choices;
  if (!r.mc_task.empty()) choices = load_multiple_choice(r.mc_task, r.mc_labels, r.mc_limit);

  // The last-`ppl_tail` positions of the longest context's windows, scored again at each shorter
  // context: the "same tokens" rows, where contexts differ by the context alone (the plain
  // last-1K rows score other tokens at each context, and some stretches of text are harder).
  std::vector<int64_t> tail_contexts, tail_ends;
  if (r.ppl_tail > 0) {
    for (int64_t context : contexts) {
      if (static_cast<int64_t>(ids.size()) >= context + 1) tail_contexts.push_back(context);
    }
  }
  if (tail_contexts.size() > 1) {
    const int64_t longest = *std::max_element(tail_contexts.begin(), tail_contexts.end());
    for (int64_t end = longest; end <= static_cast<int64_t>(ids.size()); end += longest) tail_ends.push_back(end);
  } else {
    tail_contexts.clear();
  }

  json results = json::object();
  ReportTable table;
  for (size_t column = 0; column < models.size(); ++column) {
    const ReportModel& m = models[column];
    log::info(cat("report: ", m.name, " (", m.dir, ")"));
    CausalLM model = load_causal_lm(m.dir, s.dtype, s.device);
    json entry = {{"dir", m.dir}, {"parameters", model.parameter_count()}};
    table.add("parameters", column, cat(fixed(model.parameter_count() / 1e6, 2), " M"));
    for (int64_t context : contexts) {
      const std::string label = count_label(static_cast<double>(context));
      if (static_cast<int64_t>(ids.size()) < context + 1) {
        table.add(cat("ppl @ ", label), column, "text too short");
        continue;
      }
      const PerplexityResult p =
          perplexity_over_ranks(perplexity(model, ids, context, context, {}, r.ppl_tail, world.rank(), world.size()));
      entry["ppl"][std::to_string(context)] = p.perplexity();
      table.add(cat("ppl @ ", label), column, fixed(p.perplexity(), 2));
      if (r.ppl_tail > 0) {
        entry["ppl_tail"][std::to_string(context)] = p.tail_perplexity();
        table.add(cat("ppl last ", count_label(static_cast<double>(r.ppl_tail)), " @ ", label), column,
                  fixed(p.tail_perplexity(), 2));
      }
    }
    for (int64_t context : tail_contexts) {
      // The longest context's own windows end at tail_ends: its plain last-N row is that value.
      const double value = context == tail_ends.front()
                               ? entry["ppl_tail"][std::to_string(context)].get<double>()
                               : perplexity_over_ranks(tail_perplexity_at(model, ids, context, r.ppl_tail, tail_ends,
                                                                          world.rank(), world.size()))
                                     .tail_perplexity();
      entry["ppl_tail_same_tokens"][std::to_string(context)] = value;
      table.add(cat("ppl last ", count_label(static_cast<double>(r.ppl_tail)), " @ ",
                    count_label(static_cast<double>(context)), ", same tokens"),
                column, fixed(value, 2));
    }
    ProgressBar bar(cat("niah ", m.name), static_cast<int64_t>(share_of(needles).size()), "prompt");
    const NeedleResult niah = needle_over_ranks(model, *tokenizer, needles, needle,
                                                stop_token_ids(m.dir, model.config(), tokenizer.get()), bar);
    bar.finish();
    for (int64_t length : niah_lengths) {
      const double acc = niah.length_accuracy(length);
      entry["niah"][std::to_string(length)] = acc;
      table.add(cat("NIAH @ ", count_label(static_cast<double>(length))), column, fixed(100 * acc, 1) + "%");
    }
    if (!choices.empty()) {
      const std::vector<ChoiceItem> mine = share_of(choices);
      std::vector<double> correct = {0.0, 0.0};
      if (!mine.empty()) {
        const MultipleChoiceResult mc = evaluate_multiple_choice(model, *tokenizer, mine);
        correct = {static_cast<double>(mc.correct), static_cast<double>(mc.correct_norm)};
      }
      correct = summed_over_ranks(correct);
      const double n = static_cast<double>(choices.size()), acc = correct[0] / n, acc_norm = correct[1] / n;
      entry["mc"] = {{"task", r.mc_task}, {"items", choices.size()}, {"acc", acc}, {"acc_norm", acc_norm}};
      table.add(cat(base_name(r.mc_task), " acc / acc_norm (", choices.size(), " items)"), column,
                cat(fixed(100 * acc, 1), "% / ", fixed(100 * acc_norm, 1), "%"));
    }
    if (!world.is_main()) continue;  // decode timing and the files are rank 0's
    const double tps = decode_tokens_per_second(model, r.decode_tokens);
    entry["decode_tokens_per_s"] = tps;
    table.add("decode tokens/s (batch 1, short prompt)", column, fixed(tps, 1));
    for (int64_t context : r.decode_contexts) {
      const std::string label = count_label(static_cast<double>(context));
      DecodeTimingOptions options;
      options.context = context;
      try {
        const DecodeTiming t = time_decode(model, options);
        entry["decode"][std::to_string(context)] = {{"ms_per_token", t.ms_per_token},
                                                    {"prefill_s", t.prefill_s},
                                                    {"cache_gb", t.cache_gb},
                                                    {"peak_gb", t.peak_gb}};
        table.add(cat("decode ms/token @ ", label), column, fixed(t.ms_per_token, 2));
        table.add(cat("decode memory GB @ ", label, " (cache / peak)"), column,
                  cat(fixed(t.cache_gb, 2), " / ", s.device.is_cuda() ? fixed(t.peak_gb, 2) : "n/a"));
      } catch (const c10::OutOfMemoryError&) {
        entry["decode"][std::to_string(context)] = {{"oom", true}};
        table.add(cat("decode ms/token @ ", label), column, "out of memory");
      }
    }
    results[m.name] = entry;
  }
  if (!world.is_main()) return;

  std::ostringstream md;
  md << "# " << s.title << "\n\n" << table.markdown(models);
  md << "\nPerplexity: `" << r.text << "`, first " << ids.size() << " tokens, disjoint windows";
  if (r.ppl_tail > 0)
    md << "; \"last " << r.ppl_tail << "\" scores only the last " << r.ppl_tail << " positions of each window";
  if (!tail_ends.empty())
    md << "; \"same tokens\" scores the last " << r.ppl_tail << " positions of the "
       << count_label(static_cast<double>(tail_ends.front())) << " windows (" << tail_ends.size()
       << ") at every context, each in a window of that context ending where they end";
  md << ". NIAH: " << r.niah_samples * static_cast<int64_t>(r.niah_depths.size())
     << " prompts per length (depths spread evenly), filler `" << r.filler << "`.\n";
  if (!s.stage_seconds.empty()) {
    md << "\n| stage | wall time |\n|---|---|\n";
    for (const auto& [stage, seconds] : s.stage_seconds) {
      md << "| " << stage << " | " << format_duration(seconds) << " |\n";
      results["wall_seconds"][stage] = seconds;
    }
  }
  create_directories(s.out_dir);
  LineChart ppl = chart_of(results, models, "ppl", "perplexity (mean)", 1.0);
  ppl.log_y = true;
  std::vector<RgbImage> ppl_panels = {draw_line_chart(ppl)};
  if (r.ppl_tail > 0) {
    LineChart tail = chart_of(results, models, "ppl_tail", cat("perplexity (last ", r.ppl_tail, ")"), 1.0);
    tail.log_y = true;
    ppl_panels.push_back(draw_line_chart(tail));
  }
  if (!tail_ends.empty()) {
    LineChart same =
        chart_of(results, models, "ppl_tail_same_tokens", cat("perplexity (last ", r.ppl_tail, ", same tokens)"), 1.0);
    same.log_y = true;
    ppl_panels.push_back(draw_line_chart(same));
  }
  write_png(join_path(s.out_dir, "ppl.png"), side_by_side(ppl_panels));
  write_png(join_path(s.out_dir, "niah.png"),
            draw_line_chart(chart_of(results, models, "niah", "NIAH accuracy %", 100.0)));
  write_file_atomic(join_path(s.out_dir, "report.md"), md.str());
  write_file_atomic(join_path(s.out_dir, "report.json"), results.dump(2) + "\n");
  std::fputs(md.str().c_str(), stdout);
}

}  // namespace halo
