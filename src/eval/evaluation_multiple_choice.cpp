// Multiple-choice tasks scored by log-likelihood, as lm-eval-harness scores them 0-shot: the
// context and context + " " + choice are tokenized, the choice's tokens are those of the whole
// past the context's length, and a choice's score is the sum of their log-probabilities. All
// choices of a group of items form one right-padded batch; since the model is causal, padding
// at the end of a row never reaches the positions being scored.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>
#include <utility>

#include "halo/causal_lm.h"
#include "halo/error.h"
#include "halo/evaluation.h"
#include "halo/file_system.h"
#include "halo/tokenizer.h"

namespace halo {
namespace {

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

// Non-blank lines of a file with their 1-based line numbers.
std::vector<std::pair<int64_t, std::string>> content_lines(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<std::pair<int64_t, std::string>> lines;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!is_blank(line)) lines.emplace_back(number, line);
  }
  return lines;
}

std::string string_field(const nlohmann::json& object, const char* name, const std::string& where) {
  auto it = object.find(name);
  if (it == object.end()) fail(where, ": no field \"", name, "\"");
  if (!it->is_string()) fail(where, ": field \"", name, "\" is not a string");
  return it->get<std::string>();
}

void check_choices(const ChoiceItem& item, const std::string& where) {
  if (item.choices.size() < 2) fail(where, ": needs at least two choices, got ", item.choices.size());
  for (const auto& c : item.choices) {
    if (c.empty()) fail(where, ": a choice is empty");
  }
  if (item.label < 0 || item.label >= static_cast<int64_t>(item.choices.size())) {
    fail(where, ": label ", item.label, " is not the index of one of the ", item.choices.size(), " choices");
  }
}

ChoiceItem parse_generic(const nlohmann::json& object, const std::string& where) {
  ChoiceItem item;
  item.context = string_field(object, "context", where);
  auto choices = object.find("choices");
  if (choices == object.end() || !choices->is_array()) fail(where, ": field \"choices\" is not a list of strings");
  for (const auto& c : *choices) {
    if (!c.is_string()) fail(where, ": field \"choices\" is not a list of strings");
    item.choices.push_back(c.get<std::string>());
  }
  auto label = object.find("label");
  if (label == object.end() || !label->is_number_integer()) fail(where, ": field \"label\" is not an integer");
  item.label = label->get<int64_t>();
  return item;
}

ChoiceItem parse_piqa(const nlohmann::json& object, const std::string& where) {
  ChoiceItem item;
  item.context = "Question: " + string_field(object, "goal", where) + "\nAnswer:";
  item.choices = {string_field(object, "sol1", where), string_field(object, "sol2", where)};
  return item;
}

std::vector<int64_t> read_labels(const std::string& path) {
  std::vector<int64_t> labels;
  for (const auto& [number, line] : content_lines(path)) {
    size_t used = 0;
    int64_t value = -1;
    try {
      value = std::stoll(line, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || !is_blank(line.substr(used))) fail(path, ":", number, ": '", line, "' is not an integer label");
    labels.push_back(value);
  }
  return labels;
}

// Per-token log-probabilities of `targets` [N] after hidden states [N, hidden], float32 logits
// formed `slice` positions at a time (a 151k vocabulary never needs [N, V] at once).
at::Tensor target_log_probs(const CausalLM& model, const at::Tensor& hidden, const at::Tensor& targets,
                            int64_t slice = 512) {
  std::vector<at::Tensor> parts;
  for (int64_t begin = 0; begin < hidden.size(0); begin += slice) {
    const int64_t len = std::min(slice, hidden.size(0) - begin);
    at::Tensor logp = at::log_softmax(model.logits(hidden.narrow(0, begin, len)).to(at::kFloat), -1);
    parts.push_back(logp.gather(1, targets.narrow(0, begin, len).unsqueeze(1)).squeeze(1));
  }
  return at::cat(parts).to(at::kDouble).cpu();
}

struct ChoiceRow {
  size_t item = 0;
  std::vector<int64_t> ids;  // context + choice
  int64_t context_tokens = 0;
};

int64_t argmax(const std::vector<double>& values) {
  int64_t best = 0;
  for (size_t i = 1; i < values.size(); ++i) {
    if (values[i] > values[best]) best = static_cast<int64_t>(i);
  }
  return best;
}

}  // namespace

int64_t utf8_characters(const std::string& text) {
  return std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

std::vector<ChoiceItem> load_multiple_choice(const std::string& path, const std::string& labels_path, int64_t limit) {
  const auto lines = content_lines(path);
  if (lines.empty()) fail(path, ": no items (an empty file)");
  std::vector<ChoiceItem> items;
  bool piqa = false;
  for (const auto& [number, line] : lines) {
    const std::string where = cat(path, ":", number);
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(where, ": not valid JSON (", e.what(), ")");
    }
    if (!object.is_object()) fail(where, ": expected a JSON object");
    if (items.empty()) {
      piqa = object.contains("goal");
      if (!piqa && !object.contains("context")) {
        fail(where,
             ": neither PIQA ({\"goal\", \"sol1\", \"sol2\"}) nor the generic format "
             "({\"context\", \"choices\", \"label\"})");
      }
      if (piqa && labels_path.empty()) usage_fail(path, " is in PIQA format: give its labels file (--labels)");
      if (!piqa && !labels_path.empty()) {
        usage_fail(path, " has its labels inline ({\"context\", \"choices\", \"label\"}): drop --labels");
      }
    }
    items.push_back(piqa ? parse_piqa(object, where) : parse_generic(object, where));
    if (!piqa) check_choices(items.back(), where);
  }
  if (piqa) {
    const std::vector<int64_t> labels = read_labels(labels_path);
    if (labels.size() != items.size()) {
      fail(labels_path, ": ", labels.size(), " labels for the ", items.size(), " items of ", path);
    }
    for (size_t i = 0; i < items.size(); ++i) {
      items[i].label = labels[i];
      check_choices(items[i], cat(labels_path, ": label of item ", i + 1));
    }
  }
  if (limit > 0 && static_cast<int64_t>(items.size()) > limit) items.resize(limit);
  return items;
}

MultipleChoiceResult evaluate_multiple_choice(CausalLM& model, const Tokenizer& tokenizer,
                                              const std::vector<ChoiceItem>& items, int64_t batch_tokens,
                                              const std::function<void(int64_t)>& on_progress) {
  if (batch_tokens < 1) usage_fail("multiple-choice batch tokens must be >= 1");
  MultipleChoiceResult result;
  result.items.resize(items.size());
  std::vector<std::vector<ChoiceRow>> rows_of(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const std::vector<int32_t> context = tokenizer.encode(items[i].context);
    if (context.empty()) fail("multiple-choice item ", i + 1, " has an empty context: nothing to condition on");
    for (const auto& choice : items[i].choices) {
      const std::vector<int32_t> whole = tokenizer.encode(items[i].context + " " + choice);
      check_token_range(whole, model.config().vocab_size);
      if (whole.size() <= context.size()) {
        fail("multiple-choice item ", i + 1, ": the choice '", choice, "' adds no tokens to the context");
      }
      rows_of[i].push_back({i, std::vector<int64_t>(whole.begin(), whole.end()), static_cast<int64_t>(context.size())});
      result.items[i].characters.push_back(utf8_characters(choice));
      result.items[i].tokens.push_back(static_cast<int64_t>(whole.size() - context.size()));
    }
  }

  c10::InferenceMode guard;
  for (size_t begin = 0; begin < items.size();) {
    // Whole items while rows x longest row stays within the budget (at least one item).
    std::vector<const ChoiceRow*> rows;
    size_t longest = 0, end = begin;
    while (end < items.size()) {
      size_t widest = longest;
      for (const auto& r : rows_of[end]) widest = std::max(widest, r.ids.size());
      const size_t count = rows.size() + rows_of[end].size();
      if (end > begin && static_cast<int64_t>(count * widest) > batch_tokens) break;
      for (const auto& r : rows_of[end]) rows.push_back(&r);
      longest = widest;
      ++end;
    }
    const int64_t batch = static_cast<int64_t>(rows.size()), width = static_cast<int64_t>(longest);
    std::vector<int64_t> flat(batch * width, 0), positions, targets;
    for (int64_t r = 0; r < batch; ++r) {
      const auto& ids = rows[r]->ids;
      std::copy(ids.begin(), ids.end(), flat.begin() + r * width);
      // Token p is predicted by the hidden state at p - 1.
      for (size_t p = rows[r]->context_tokens; p < ids.size(); ++p) {
        positions.push_back(r * width + static_cast<int64_t>(p) - 1);
        targets.push_back(ids[p]);
      }
    }
    at::Tensor input = at::tensor(flat, at::kLong).view({batch, width}).to(model.device());
    at::Tensor hidden = model.forward_hidden(input).reshape({batch * width, -1});
    at::Tensor picked = hidden.index_select(0, at::tensor(positions, at::kLong).to(model.device()));
    at::Tensor log_probs = target_log_probs(model, picked, at::tensor(targets, at::kLong).to(model.device()));
    const double* lp = log_probs.data_ptr<double>();
    for (const ChoiceRow* row : rows) {
      const int64_t scored = static_cast<int64_t>(row->ids.size()) - row->context_tokens;
      double sum = 0;
      for (int64_t t = 0; t < scored; ++t) sum += *lp++;
      result.items[row->item].log_likelihood.push_back(sum);
    }
    for (size_t i = begin; i < end; ++i) {
      ChoiceScores& s = result.items[i];
      std::vector<double> normalized;
      for (size_t c = 0; c < s.log_likelihood.size(); ++c) normalized.push_back(s.log_likelihood[c] / s.characters[c]);
      s.predicted = argmax(s.log_likelihood);
      s.predicted_norm = argmax(normalized);
      result.correct += s.predicted == items[i].label;
      result.correct_norm += s.predicted_norm == items[i].label;
    }
    if (on_progress) on_progress(static_cast<int64_t>(end));
    begin = end;
  }
  return result;
}

}  // namespace halo
