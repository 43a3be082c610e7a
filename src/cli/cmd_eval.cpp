// halo eval: the evaluation suite of one model: held-out loss (ppl), needle in a haystack
// (niah) and multiple choice (mc). Every input is read and checked before the model loads, so
// a bad option fails in a second. Results come out as a table (task, setting, metric, value)
// or as JSON whose "rows" hold the same table for scripts (scripts/eval_batch.sh).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <sstream>
#include <type_traits>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/evaluation.h"
#include "halo/file_system.h"
#include "halo/logging.h"
#include "halo/model_directory.h"
#include "halo/perplexity.h"
#include "halo/progress.h"
#include "halo/tokenizer.h"

namespace halo::cli {
namespace {

constexpr int64_t kMaxEvalTokens = int64_t{1} << 24;  // 16M: windows and prompts past this are typos

const char* const kTasks[] = {"ppl", "niah", "mc"};

std::set<std::string> parse_tasks(const std::string& text) {
  std::set<std::string> tasks;
  for (const auto& name : split_list(text)) {
    if (std::find(std::begin(kTasks), std::end(kTasks), name) == std::end(kTasks)) {
      usage_fail("--tasks: unknown task '", name, "' (expected a comma-separated list of ppl, niah, mc)");
    }
    tasks.insert(name);
  }
  if (tasks.empty()) usage_fail("--tasks is empty (expected a comma-separated list of ppl, niah, mc)");
  return tasks;
}

struct Row {
  std::string task, setting, metric;
  double value;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void print_table(const std::vector<Row>& rows) {
  size_t task_w = 4, setting_w = 7, metric_w = 6;
  for (const auto& r : rows) {
    task_w = std::max(task_w, r.task.size());
    setting_w = std::max(setting_w, r.setting.size());
    metric_w = std::max(metric_w, r.metric.size());
  }
  const int tw = static_cast<int>(task_w), sw = static_cast<int>(setting_w), mw = static_cast<int>(metric_w);
  std::printf("%-*s  %-*s  %-*s  %s\n", tw, "task", sw, "setting", mw, "metric", "value");
  for (const auto& r : rows) {
    std::printf("%-*s  %-*s  %-*s  %.4f\n", tw, r.task.c_str(), sw, r.setting.c_str(), mw, r.metric.c_str(), r.value);
  }
}

}  // namespace

int run_eval(int argc, char** argv) {
  cxxopts::Options options(
      "halo eval",
      "Evaluate a model: held-out loss (ppl), needle in a haystack (niah), multiple choice (mc).\n"
      "Example: halo eval --model ./Qwen3-1.7B --tasks ppl,niah,mc --text brown.txt --filler brown.txt \\\n"
      "           --task-file piqa/valid.jsonl --labels piqa/valid-labels.lst --lengths 512,2048,8192");
  add_model_options(options);
  // clang-format off
  options.add_options()
      ("tasks", "Comma-separated tasks: ppl, niah, mc", cxxopts::value<std::string>()->default_value("ppl,niah,mc"))
      ("t,tokenizer", "Tokenizer directory or file (default: the model directory)", cxxopts::value<std::string>())
      ("json", "Print the results as JSON instead of a table")
      ("out", "Also write the JSON results to this file", cxxopts::value<std::string>());
  // clang-format on
  // clang-format off
  options.add_options("ppl")
      ("text", "Held-out text file", cxxopts::value<std::string>())
      ("context", "Window length in tokens", cxxopts::value<int64_t>()->default_value("2048"))
      ("stride", "Window advance in tokens (default: the context)", cxxopts::value<int64_t>())
      ("tail", "Also report the perplexity of the last N positions of every full window (e.g. 1024: 'last 1K')", cxxopts::value<int64_t>()->default_value("0"))
      ("max-tokens", "Score only the first N tokens of the text (0: all)", cxxopts::value<int64_t>()->default_value("0"));
  // clang-format on
  // clang-format off
  options.add_options("niah")
      ("filler", "Filler text file for the haystack (default: --text)", cxxopts::value<std::string>())
      ("lengths", "Prompt lengths in tokens", cxxopts::value<std::string>()->default_value("512,2048,8192"))
      ("depths", "Needle depths, fractions of the haystack", cxxopts::value<std::string>()->default_value("0,0.25,0.5,0.75,1"))
      ("samples", "Prompts per (length, depth)", cxxopts::value<int64_t>()->default_value("10"))
      ("seed", "Seed of keys, values and filler offsets", cxxopts::value<uint64_t>()->default_value("0"))
      ("max-new-tokens", "Greedy answer length", cxxopts::value<int64_t>()->default_value("12"));
  // clang-format on
  // clang-format off
  options.add_options("mc")
      ("task-file", "JSONL items: PIQA (goal, sol1, sol2 + --labels) or {context, choices, label}",
       cxxopts::value<std::string>())
      ("labels", "PIQA labels file (one 0/1 a line)", cxxopts::value<std::string>())
      ("limit", "Score only the first N items (0: all)", cxxopts::value<int64_t>()->default_value("0"));
  // clang-format on
  // clang-format off
  options.add_options("niah, mc")
      ("batch-tokens", "Prompts or choices run together up to this many tokens",
       cxxopts::value<int64_t>()->default_value("32768"));
  // clang-format on
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::set<std::string> tasks = parse_tasks(result["tasks"].as<std::string>());
  const std::string model_dir = require_string(result, "model", "halo eval");
  const int64_t batch_tokens = result["batch-tokens"].as<int64_t>();
  if (batch_tokens < 1) usage_fail("--batch-tokens must be >= 1");

  // Inputs first: a missing file or bad option fails before the model loads.
  std::string text_path, filler_path, task_path;
  if (tasks.count("ppl")) text_path = require_string(result, "text", "halo eval --tasks ppl");
  if (tasks.count("niah")) {
    if (!result.count("filler") && !result.count("text")) {
      usage_fail("halo eval --tasks niah: --filler (or --text) is required (see halo eval --help)");
    }
    filler_path = result[result.count("filler") ? "filler" : "text"].as<std::string>();
  }
  if (tasks.count("mc")) task_path = require_string(result, "task-file", "halo eval --tasks mc");
  const int64_t context = result["context"].as<int64_t>();
  const int64_t stride = result.count("stride") ? result["stride"].as<int64_t>() : context;
  const int64_t tail = result["tail"].as<int64_t>();
  if (context > kMaxEvalTokens) usage_fail("--context: ", context, " is beyond ", kMaxEvalTokens, " tokens; a typo?");
  if (tail < 0 || tail >= context) usage_fail("--tail must be in [0, --context), got ", tail);
  const int64_t max_tokens = result["max-tokens"].as<int64_t>();
  const int64_t limit = result["limit"].as<int64_t>();
  if (limit < 0) usage_fail("--limit must be >= 0");
  NeedleOptions needle;
  needle.lengths = parse_numbers<int64_t>(result["lengths"].as<std::string>(), "lengths");
  for (int64_t length : needle.lengths) {
    if (length > kMaxEvalTokens) usage_fail("--lengths: ", length, " is beyond ", kMaxEvalTokens, " tokens; a typo?");
  }
  needle.depths = parse_numbers<double>(result["depths"].as<std::string>(), "depths");
  needle.samples = result["samples"].as<int64_t>();
  needle.seed = result["seed"].as<uint64_t>();
  needle.max_new_tokens = result["max-new-tokens"].as<int64_t>();
  needle.batch_tokens = batch_tokens;

  auto tokenizer = load_tokenizer(result.count("tokenizer") ? result["tokenizer"].as<std::string>() : model_dir);
  const std::string text = text_path.empty() ? "" : read_file(text_path);
  std::vector<NeedleSample> needle_samples;
  if (tasks.count("niah")) needle_samples = build_needle_samples(*tokenizer, read_file(filler_path), needle);
  std::vector<ChoiceItem> choice_items;
  if (tasks.count("mc")) {
    choice_items =
        load_multiple_choice(task_path, result.count("labels") ? result["labels"].as<std::string>() : "", limit);
  }

  CausalLM model = load_model_from_options(result, "halo eval");
  nlohmann::json report = {{"model", model_dir}, {"tasks", nlohmann::json::object()}};
  std::vector<Row> rows;

  if (tasks.count("ppl")) {
    auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = held_out_tokens(*tokenizer, text, max_tokens, model.config().vocab_size);
    ProgressBar bar("ppl", static_cast<int64_t>(ids.size()) - 1, "tok");
    int64_t shown = 0;
    const PerplexityResult r = perplexity(model, ids, context, stride, [&](int64_t scored) {
      bar.advance(scored - shown);
      shown = scored;
    }, tail);
    bar.finish();
    const std::string setting = cat(base_name(text_path), " ctx ", context);
    rows.push_back({"ppl", setting, "loss", r.mean_nll()});
    rows.push_back({"ppl", setting, "perplexity", r.perplexity()});
    if (tail > 0) rows.push_back({"ppl", setting, cat("perplexity last ", tail), r.tail_perplexity()});
    report["tasks"]["ppl"] = {{"text", text_path},
                              {"context", context},
                              {"stride", stride},
                              {"tokens", r.tokens},
                              {"loss", r.mean_nll()},
                              {"perplexity", r.perplexity()},
                              {"seconds", seconds_since(start)}};
    if (tail > 0) {
      report["tasks"]["ppl"]["tail"] = tail;
      report["tasks"]["ppl"]["tail_tokens"] = r.tail_tokens;
      report["tasks"]["ppl"]["tail_perplexity"] = r.tail_perplexity();
    }
  }
  if (tasks.count("niah")) {
    for (int64_t length : needle.lengths) {
      if (length > model.config().max_position_embeddings) {
        log::warn(cat("NIAH length ", length, " exceeds the model's max_position_embeddings (",
                      model.config().max_position_embeddings, ")"));
      }
    }
    const std::vector<int64_t> stop_ids = stop_token_ids(model_dir, model.config(), tokenizer.get());
    auto start = std::chrono::steady_clock::now();
    ProgressBar bar("niah", static_cast<int64_t>(needle_samples.size()), "prompt");
    int64_t shown = 0;
    const NeedleResult r = evaluate_needle(model, *tokenizer, needle_samples, needle, stop_ids, [&](int64_t done) {
      bar.advance(done - shown);
      shown = done;
    });
    bar.finish();
    nlohmann::json cells = nlohmann::json::array(), by_length = nlohmann::json::object();
    for (const auto& c : r.cells) {
      rows.push_back({"niah", cat("len ", c.length, " depth ", fixed(c.depth, 2)), "accuracy", c.accuracy()});
      cells.push_back({{"length", c.length},
                       {"depth", c.depth},
                       {"correct", c.correct},
                       {"total", c.total},
                       {"accuracy", c.accuracy()}});
    }
    for (int64_t length : needle.lengths) {
      rows.push_back({"niah", cat("len ", length), "accuracy", r.length_accuracy(length)});
      by_length[std::to_string(length)] = r.length_accuracy(length);
    }
    rows.push_back({"niah", "all", "accuracy", r.accuracy()});
    report["tasks"]["niah"] = {{"filler", filler_path},
                               {"samples", needle.samples},
                               {"seed", needle.seed},
                               {"accuracy", r.accuracy()},
                               {"correct", r.correct},
                               {"total", r.total},
                               {"lengths", by_length},
                               {"cells", cells},
                               {"seconds", seconds_since(start)}};
  }
  if (tasks.count("mc")) {
    auto start = std::chrono::steady_clock::now();
    ProgressBar bar("mc", static_cast<int64_t>(choice_items.size()), "item");
    int64_t shown = 0;
    const MultipleChoiceResult r =
        evaluate_multiple_choice(model, *tokenizer, choice_items, batch_tokens, [&](int64_t done) {
          bar.advance(done - shown);
          shown = done;
        });
    bar.finish();
    const std::string setting = cat(base_name(task_path), " n=", choice_items.size());
    rows.push_back({"mc", setting, "acc", r.acc()});
    rows.push_back({"mc", setting, "acc_norm", r.acc_norm()});
    report["tasks"]["mc"] = {{"task_file", task_path},
                             {"items", choice_items.size()},
                             {"acc", r.acc()},
                             {"acc_norm", r.acc_norm()},
                             {"seconds", seconds_since(start)}};
  }

  nlohmann::json table = nlohmann::json::array();
  for (const auto& r : rows) {
    table.push_back({{"task", r.task}, {"setting", r.setting}, {"metric", r.metric}, {"value", r.value}});
  }
  report["rows"] = table;
  if (result.count("out")) {
    const std::string out = result["out"].as<std::string>();
    create_directories(parent_directory(out));
    write_file_atomic(out, report.dump(2) + "\n");
  }
  if (result.count("json")) {
    std::printf("%s\n", report.dump().c_str());
  } else {
    print_table(rows);
  }
  return kExitOk;
}

}  // namespace halo::cli
