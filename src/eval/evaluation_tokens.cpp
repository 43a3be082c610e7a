// The token ids of held-out text (cut to a budget), and the vocabulary check that every
// evaluation runs on its ids before they reach the model.
#include <algorithm>

#include "halo/error.h"
#include "halo/evaluation.h"
#include "halo/tokenizer.h"

namespace halo {

void check_token_range(const std::vector<int32_t>& ids, int64_t vocab_size) {
  if (ids.empty()) return;
  const int32_t largest = *std::max_element(ids.begin(), ids.end());
  if (largest >= vocab_size) {
    fail("the tokenizer produced id ", largest, " but the model's vocabulary has ", vocab_size,
         " entries: tokenizer and model do not match (see --tokenizer)");
  }
}

std::vector<int32_t> held_out_tokens(const Tokenizer& tokenizer, const std::string& text, int64_t max_tokens,
                                     int64_t vocab_size) {
  if (max_tokens < 0) usage_fail("the held-out token budget must be >= 0, got ", max_tokens);
  std::vector<int32_t> ids = tokenizer.encode(text);
  if (max_tokens > 0 && static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(max_tokens);
  check_token_range(ids, vocab_size);
  return ids;
}

}  // namespace halo
