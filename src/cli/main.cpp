// halo: the command-line entry point. Dispatches to one subcommand per file (cmd_*.cpp) and is
// the one place that turns errors into a one-line message and an exit code: halo::Error
// carries its own code, torch and standard errors exit 1. No error ends in a signal.
#include <c10/util/Exception.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "halo/error.h"
#include "halo/process_group.h"

namespace {

void print_usage() {
  std::printf(
      "halo: convert Qwen3 models into HypeNet hybrid linear-attention models (HALO), and run them.\n\n"
      "Usage: halo COMMAND [OPTIONS]   (halo COMMAND --help explains each option)\n\nCommands:\n");
  for (const auto& command : halo::cli::commands()) {
    std::printf("  %-10s %s\n", command.name, command.summary);
  }
  std::printf("\nExample: halo generate --model ./Qwen3-0.6B --prompt \"The capital of France is\"\n");
}

// The first line of a message: torch errors append a C++ backtrace after it.
std::string first_line(const char* what) {
  std::string s(what);
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace

namespace halo::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"info", "describe a model directory (architecture, parameters, dtype, layers)", run_info},
      {"tokenize", "encode text to token ids, or decode ids to text", run_tokenize},
      {"generate", "generate text from a prompt, streamed", run_generate},
      {"forward", "one forward pass: input_ids from safetensors -> logits (and hidden states)", run_forward},
      {"ppl", "perplexity of a text file", run_ppl},
      {"convert", "stage 0 of HALO: a HypeNet from a Qwen3, Llama or Qwen2 checkpoint by weight transfer", run_convert},
      {"run", "run a HALO experiment (YAML): every stage into one run directory, resumable", run_run},
      {"pretrain", "pretrain a Qwen3-architecture teacher (one stage of an experiment)", run_stage},
      {"align", "stage 1: align lightning mixers to the teacher's attention (one stage)", run_stage},
      {"select", "choose the layers that stay attention (one stage)", run_stage},
      {"distill", "stage 2: end-to-end distillation (one stage)", run_stage},
      {"finetune", "stage 3: long-context finetuning (one stage)", run_stage},
      {"tune", "choose HyPE's logits-scaling a on held-out data (one stage)", run_stage},
      {"report", "teacher vs student: perplexity, NIAH, decode speed (one stage)", run_stage},
      {"tune-scaling", "choose HyPE's logits-scaling a of a HypeNet directory on held-out data", run_tune_scaling},
      {"bench", "measurements (tokenizer speed, ...)", run_bench},
      {"data", "prepare training data: tokenize a corpus into a token file", run_data},
      {"eval", "evaluate a model: held-out loss, needle in a haystack, multiple choice", run_eval},
      {"tokenizer", "train a small byte-level BPE tokenizer on text", run_tokenizer},
      {"import", "a GGUF model (llama, qwen2, qwen3) -> a Hugging Face directory", run_import},
  };
  return table;
}

}  // namespace halo::cli

namespace {

// Runs one command; an error becomes its one-line message and exit code.
int run_command(const halo::cli::Command& command, int argc, char** argv) {
  const std::string name = command.name;
  try {
    return command.run(argc, argv);
  } catch (const halo::Error& e) {
    std::fprintf(stderr, "halo %s: error: %s\n", name.c_str(), e.what());
    return e.exit_code();
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "halo %s: error: %s\n", name.c_str(), first_line(e.what_without_backtrace()).c_str());
    return halo::kExitBadInput;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "halo %s: error: out of memory\n", name.c_str());
    return halo::kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "halo %s: error: %s\n", name.c_str(), first_line(e.what()).c_str());
    return halo::kExitBadInput;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? halo::kExitUsage : halo::kExitOk;
  }
  const std::string name = argv[1];
  for (const auto& command : halo::cli::commands()) {
    if (name != command.name) continue;
    const int code = run_command(command, argc - 1, argv + 1);
    halo::ProcessGroup::world().shutdown(code == halo::kExitOk);  // under torchrun
    return code;
  }
  std::fprintf(stderr, "halo: error: unknown command '%s' (see halo --help)\n", name.c_str());
  return halo::kExitUsage;
}
