// halo forward: the exact interface external checks use. Reads the int64 tensor input_ids
// [B, T] from a safetensors file and writes float32 logits [B, T, V] (and hidden_states.{i},
// numbered as transformers numbers them) to another, atomically.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/logging.h"
#include "halo/tensor_io.h"

namespace halo::cli {

int run_forward(int argc, char** argv) {
  cxxopts::Options options(
      "halo forward",
      "Run one forward pass on token ids from a safetensors file.\n"
      "Example: halo forward --model ./Qwen3-0.6B --input ids.safetensors --output out.safetensors");
  add_model_options(options);
  // clang-format off
  options.add_options()
      ("i,input", "safetensors file holding the int64 tensor input_ids [batch, time]", cxxopts::value<std::string>())
      ("o,output", "safetensors file to write (float32 logits [batch, time, vocab])", cxxopts::value<std::string>())
      ("hidden-states", "Also write hidden_states.0 .. hidden_states.L (0: embeddings, L: after the final norm)");
  // clang-format on
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::string input_path = require_string(result, "input", "halo forward");
  const std::string output_path = require_string(result, "output", "halo forward");

  const auto inputs = load_tensors(input_path);
  auto it = inputs.find("input_ids");
  if (it == inputs.end()) fail(input_path, ": no tensor named input_ids (expected int64 [batch, time])");
  const at::Tensor ids = it->second;
  if (ids.scalar_type() != at::kLong || ids.dim() != 2 || ids.numel() == 0) {
    fail(input_path, ": input_ids must be a non-empty int64 tensor [batch, time], got ", ids.scalar_type(), " ",
         ids.sizes());
  }
  CausalLM model = load_model_from_options(result, "halo forward");
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= model.config().vocab_size) {
    fail(input_path, ": input_ids holds ids in [", lo, ", ", hi, "], outside the model's vocabulary of ",
         model.config().vocab_size);
  }

  c10::InferenceMode guard;
  const bool want_hidden = result.count("hidden-states") > 0;
  std::vector<at::Tensor> hidden;
  at::Tensor logits = model.forward(ids, nullptr, want_hidden ? &hidden : nullptr);
  NamedTensors out{{"logits", logits.to(at::kFloat)}};
  for (size_t i = 0; i < hidden.size(); ++i) out.emplace_back(cat("hidden_states.", i), hidden[i].to(at::kFloat));
  save_tensors(output_path, out);
  log::info(cat("wrote ", output_path, ": logits ", logits.sizes(),
                want_hidden ? cat(" and ", hidden.size(), " hidden states") : ""));
  return kExitOk;
}

}  // namespace halo::cli
