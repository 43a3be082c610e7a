// The table of halo subcommands. Each run function takes argv with the subcommand name as
// argv[0] and returns the exit code; errors are thrown and reported by main.
#pragma once
#include <vector>

namespace halo::cli {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

int run_info(int argc, char** argv);
int run_tokenize(int argc, char** argv);
int run_generate(int argc, char** argv);
int run_forward(int argc, char** argv);
int run_ppl(int argc, char** argv);
int run_convert(int argc, char** argv);
int run_bench(int argc, char** argv);
int run_run(int argc, char** argv);
// One stage of an experiment; argv[0] names the stage.
int run_stage(int argc, char** argv);
int run_data(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_tokenizer(int argc, char** argv);
int run_import(int argc, char** argv);
int run_tune_scaling(int argc, char** argv);

const std::vector<Command>& commands();

}  // namespace halo::cli
