// The evaluations HALO's layer selection and model comparison need, each a function of a model
// and a tokenizer (halo eval runs them from the command line):
//   - needle in a haystack (recall, RULER NIAH-single style): a 7-digit number hidden in real
//     filler text, asked for at the end, answered by greedy generation, scored "contains";
//   - multiple choice (commonsense): each choice scored by the summed log-likelihood of its
//     tokens after the context, lm-eval-harness style (acc and length-normalized acc_norm);
//   - held-out loss: mean next-token NLL of a text (perplexity.h's sliding windows).
// Everything random is drawn from a seeded generator of our own, so prompts are the same on
// every platform and standard library.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace halo {

class CausalLM;
class Tokenizer;

// Fails (exit code 1) when an id is outside the model's vocabulary: tokenizer and model differ.
void check_token_range(const std::vector<int32_t>& ids, int64_t vocab_size);

// ---- Needle in a haystack -------------------------------------------------------------------

struct NeedleOptions {
  std::vector<int64_t> lengths = {512, 2048, 8192};          // prompt lengths in tokens (exact)
  std::vector<double> depths = {0.0, 0.25, 0.5, 0.75, 1.0};  // needle position, fraction of the haystack
  int64_t samples = 10;                                      // prompts per (length, depth)
  uint64_t seed = 0;
  int64_t max_new_tokens = 12;   // greedy answer length
  int64_t batch_tokens = 32768;  // prompts of one length run together, up to this many tokens
};

// One prompt: header, haystack with the needle at a sentence boundary, question. The prompt
// has exactly `length` tokens (the pieces are tokenized apart and joined as ids).
struct NeedleSample {
  int64_t length = 0;
  double depth = 0;
  std::string key, value;  // "<word>-<word>", 7 digits
  std::vector<int32_t> prompt;
  int64_t needle_begin = 0;  // index of the needle's first token in `prompt`
  int64_t needle_tokens = 0;
  int64_t haystack_begin = 0, haystack_tokens = 0;  // the filler span, needle excluded
};

// Splits the filler into sentences (lines, cut after ". ", "? ", "! "), and for each length,
// depth and sample draws a key, a value and a starting sentence, then fills the haystack with
// consecutive sentences (wrapping around) up to the token budget, the last one cut. The needle
// goes to the sentence boundary nearest depth * haystack tokens. Fails when the filler has no
// text or a length leaves no room for filler after the template.
std::vector<NeedleSample> build_needle_samples(const Tokenizer& tokenizer, const std::string& filler_text,
                                               const NeedleOptions& options);

// RULER's "contains" score: the value appears in the generated text.
bool needle_answer_found(const std::string& output, const std::string& value);

struct NeedleCell {
  int64_t length = 0;
  double depth = 0;
  int64_t correct = 0, total = 0;
  double accuracy() const { return total > 0 ? static_cast<double>(correct) / total : 0.0; }
};

struct NeedleResult {
  std::vector<NeedleCell> cells;     // in the order of options.lengths x options.depths
  std::vector<std::string> answers;  // decoded output of each sample, in sample order
  int64_t correct = 0, total = 0;
  double accuracy() const { return total > 0 ? static_cast<double>(correct) / total : 0.0; }
  // Accuracy over all depths of one length.
  double length_accuracy(int64_t length) const;
};

// Greedy answers for every sample (stopping at `stop_ids`), batched by length with left padding
// where lengths differ. `on_progress(done)` is called after each batch.
NeedleResult evaluate_needle(CausalLM& model, const Tokenizer& tokenizer, const std::vector<NeedleSample>& samples,
                             const NeedleOptions& options, const std::vector<int64_t>& stop_ids,
                             const std::function<void(int64_t)>& on_progress = {});

// ---- Multiple choice ------------------------------------------------------------------------

struct ChoiceItem {
  std::string context;               // scored text is context + " " + choice
  std::vector<std::string> choices;  // at least two
  int64_t label = 0;
};

// PIQA (valid.jsonl lines {"goal", "sol1", "sol2"} and a labels file of one 0/1 a line; the
// context is lm-eval-harness's "Question: <goal>\nAnswer:") or the generic format (lines
// {"context": ..., "choices": [...], "label": i}, labels_path empty). The format is that of
// the first object. Blank lines are skipped; a bad line fails naming file:line. `limit` > 0
// keeps the first `limit` items.
std::vector<ChoiceItem> load_multiple_choice(const std::string& path, const std::string& labels_path,
                                             int64_t limit = 0);

struct ChoiceScores {
  std::vector<double> log_likelihood;  // summed over each choice's tokens
  std::vector<int64_t> characters;     // Unicode characters of each choice (acc_norm's length)
  std::vector<int64_t> tokens;         // tokens scored per choice
  int64_t predicted = 0;               // argmax of log_likelihood (ties: the lower index)
  int64_t predicted_norm = 0;          // argmax of log_likelihood / characters
};

struct MultipleChoiceResult {
  std::vector<ChoiceScores> items;
  int64_t correct = 0, correct_norm = 0;
  double acc() const { return items.empty() ? 0.0 : static_cast<double>(correct) / items.size(); }
  double acc_norm() const { return items.empty() ? 0.0 : static_cast<double>(correct_norm) / items.size(); }
};

// Tokenizes context and context + " " + choice; the choice's tokens are those of the whole
// past the context's token count (as lm-eval-harness does). Choices of several items run as one
// right-padded batch of at most `batch_tokens` tokens (causal: padding never reaches a scored
// position); log-probabilities are taken in float32. `on_progress(items_done)` after each batch.
MultipleChoiceResult evaluate_multiple_choice(CausalLM& model, const Tokenizer& tokenizer,
                                              const std::vector<ChoiceItem>& items, int64_t batch_tokens = 16384,
                                              const std::function<void(int64_t)>& on_progress = {});

// Number of Unicode characters in UTF-8 text (bytes that are not continuation bytes).
int64_t utf8_characters(const std::string& text);

// ---- Held-out loss --------------------------------------------------------------------------

// The ids that held-out loss scores: the text's first `max_tokens` tokens (0: all), checked
// against the vocabulary. perplexity() scores them; its mean_nll() is the loss.
std::vector<int32_t> held_out_tokens(const Tokenizer& tokenizer, const std::string& text, int64_t max_tokens,
                                     int64_t vocab_size);

}  // namespace halo
