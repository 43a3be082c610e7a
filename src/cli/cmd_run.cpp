// halo run EXPERIMENT.yaml: the whole HALO pipeline, stage by stage into one run directory,
// skipping finished stages and resuming an interrupted one; --dry-run prints the plan.
// halo pretrain|align|select|distill|finetune|tune|report --config EXPERIMENT.yaml: one stage of
// the same experiment (the command name is the stage). Under torchrun (RANK, WORLD_SIZE, ...)
// every rank runs the same command and the training stages are data parallel (process_group.h).
#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "halo/error.h"
#include "halo/experiment.h"
#include "halo/logging.h"
#include "halo/process_group.h"

namespace halo::cli {
namespace {

const char* stage_summary(const std::string& stage) {
  if (stage == "pretrain") return "Pretrain a Qwen3-architecture teacher from random init (cross-entropy).";
  if (stage == "align") return "Stage 1: align every layer's lightning mixer to the teacher attention output (MSE).";
  if (stage == "select") return "Choose the layers that stay attention: per-layer recall and commonsense drop scores.";
  if (stage == "distill") return "Stage 2: distill the HypeNet from the teacher (forward KL), every weight training.";
  if (stage == "finetune") return "Stage 3: long-context finetuning (cross-entropy, activation recomputation).";
  if (stage == "tune") return "Choose HyPE's logits-scaling a on held-out data past the training length (NIAH, loss).";
  return "Compare teacher, student and report.compare models: perplexity (mean, last N), NIAH, multiple choice, "
         "decode speed; a table, report.json and charts.";
}

int run_experiment_command(const std::string& stage, int argc, char** argv) {
  const bool all = stage == "all";
  cxxopts::Options options(
      all ? "halo run" : "halo " + stage,
      all ? "Run a HALO experiment (YAML) stage by stage: pretrain, align, select, distill, finetune, "
            "tune, report.\nFinished stages are skipped; an interrupted stage resumes from its checkpoint.\n"
            "Example: halo run configs/quickstart.yaml\n"
            "         halo run configs/smollm2-hypenet.yaml --set run_dir=runs/even --set select.criterion=even"
          : std::string(stage_summary(stage)) + "\nExample: halo " + stage + " --config configs/quickstart.yaml");
  // clang-format off
  options.add_options()
      ("c,config", "Experiment YAML file", cxxopts::value<std::string>())
      ("dry-run", "Print the plan (token budgets, memory estimates) and exit")
      ("world-size", "With --dry-run: plan for this many ranks (default: torchrun's WORLD_SIZE, else 1)", cxxopts::value<int>())
      ("device", "Override the file's device: cpu, cuda, cuda:N or auto", cxxopts::value<std::string>())
      ("dtype", "Override the file's dtype: auto, float32, bfloat16 or float16", cxxopts::value<std::string>())
      ("set", "Override one key of the file: KEY.PATH=VALUE (a YAML value; null drops a section); repeatable", cxxopts::value<std::string>());
  // clang-format on
  if (all) {
    // clang-format off
    options.add_options()("stage", "Run only this stage", cxxopts::value<std::string>()->default_value("all"));
    // clang-format on
    options.parse_positional({"config"});
    options.positional_help("EXPERIMENT.yaml");
  }
  add_common_options(options);
  auto result = parse_command_line(options, argc, argv);
  const std::string config = require_string(result, "config", options.program());
  std::vector<std::string> overrides;  // every --set in order (a list value may hold commas)
  for (const auto& argument : result.arguments()) {
    if (argument.key() == "set") overrides.push_back(argument.value());
  }
  Experiment experiment = load_experiment(config, overrides);
  if (result.count("device")) experiment.device = result["device"].as<std::string>();
  if (result.count("dtype")) experiment.dtype = result["dtype"].as<std::string>();
  if (result.count("dry-run")) {
    const int world_size = result.count("world-size") ? result["world-size"].as<int>() : launch_environment().world_size;
    if (world_size < 1 || world_size > 65536) usage_fail("--world-size must be 1 to 65536, not ", world_size);
    std::fputs(describe_plan(experiment, world_size).c_str(), stdout);
    return kExitOk;
  }
  // Under torchrun: meet the other ranks; only rank 0 logs progress.
  ProcessGroup& world = ProcessGroup::world();
  world.init(launch_environment());
  if (!world.is_main()) log::set_level(log::Level::warn);
  if (world.distributed()) {
    log::info(cat("torchrun: ", world.size(), " rank", world.size() > 1 ? "s" : "", "; CPU tensors reduce through Gloo, CUDA tensors through ",
                  world.cuda_backend_name() == "nccl" ? "NCCL" : "Gloo"));
  }
  const std::string which = all ? result["stage"].as<std::string>() : stage;
  // An interrupted stage exits 128 + the signal (130 for SIGINT, 143 for SIGTERM, as a shell
  // reports them) after saving its checkpoint.
  const int signal = run_experiment(experiment, which);
  return signal == 0 ? kExitOk : 128 + signal;
}

}  // namespace

int run_run(int argc, char** argv) {
  return run_experiment_command("all", argc, argv);
}
int run_stage(int argc, char** argv) {
  std::string name = argv[0];
  return run_experiment_command(name, argc, argv);
}

}  // namespace halo::cli
