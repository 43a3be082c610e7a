// The options every model-running subcommand shares (--model, --dtype, --device) and the
// stop ids of a model directory.
#pragma once
#include <cxxopts.hpp>

#include <string>
#include <vector>

#include "halo/causal_lm.h"

namespace halo::cli {

void add_model_options(cxxopts::Options& options);

// Loads the model that --model/--dtype/--device name, logging what was loaded.
CausalLM load_model_from_options(const cxxopts::ParseResult& result, const std::string& command);

}  // namespace halo::cli
