// Training checkpoint directories (see training_checkpoint.h): tensors through save_tensors /
// load_tensors (each file written atomically and fsynced), state.json through nlohmann::json,
// and the directory-level commit (fsync, rename, fsync of the parent) through POSIX calls.
#include "train/training_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/tensor_io.h"

namespace halo {
namespace {

constexpr const char* kTrainableFile = "trainable.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kRngFile = "rng.safetensors";
constexpr const char* kStateFile = "state.json";
constexpr const char* kStaleMarker = ".tmp-";

// The step of a checkpoint directory name ("step-" and digits only), or -1.
int64_t step_of(const std::string& name) {
  const std::string prefix = "step-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string digits = name.substr(prefix.size());
  if (digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(dir, ": cannot open directory to flush it (", std::strerror(errno), ")");
  const int synced = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (synced != 0) fail(dir, ": cannot flush directory to disk (", std::strerror(err), ")");
}

NamedTensors to_named(const std::map<std::string, at::Tensor>& tensors) {
  return NamedTensors(tensors.begin(), tensors.end());
}

std::string state_to_json(const TrainingState& state) {
  nlohmann::json j;
  j["format"] = kTrainingCheckpointFormat;
  j["step"] = state.step;
  j["optimizer_steps"] = state.optimizer_steps;
  j["skipped_steps"] = state.skipped_steps;
  j["tokens_seen"] = state.tokens_seen;
  j["elapsed_s"] = state.elapsed_s;
  j["loss"] = state.loss;
  j["lr"] = state.lr;
  j["data_cursor"] = state.data_cursor;
  j["config"] = nlohmann::json::parse(state.config_json);
  return j.dump(2) + "\n";
}

TrainingState state_from_json(const std::string& text, const std::string& origin) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) fail(origin, ": not a JSON object");
  if (j.value("format", "") != kTrainingCheckpointFormat) {
    fail(origin, ": \"format\" must be \"", kTrainingCheckpointFormat, "\"");
  }
  auto count = [&](const char* key) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < 0) {
      fail(origin, ": \"", key, "\" must be an integer >= 0");
    }
    return j[key].get<int64_t>();
  };
  // NaN and infinities are written as null (JSON has no spelling for them).
  auto number = [&](const char* key) {
    if (!j.contains(key) || !(j[key].is_number() || j[key].is_null())) fail(origin, ": \"", key, "\" must be a number");
    return j[key].is_null() ? std::nan("") : j[key].get<double>();
  };
  TrainingState state;
  state.step = count("step");
  state.optimizer_steps = count("optimizer_steps");
  state.skipped_steps = count("skipped_steps");
  state.tokens_seen = count("tokens_seen");
  state.elapsed_s = number("elapsed_s");
  state.loss = number("loss");
  state.lr = number("lr");
  if (!j.contains("data_cursor")) fail(origin, ": \"data_cursor\" is missing");
  try {
    state.data_cursor = j["data_cursor"].get<TokenCursor>();
  } catch (const Error& error) {
    fail(origin, ": ", error.what());
  }
  if (!j.contains("config") || !j["config"].is_object()) fail(origin, ": \"config\" must be an object");
  state.config_json = j["config"].dump();
  return state;
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  return name;
}

std::vector<CheckpointLocation> list_checkpoints(const std::string& checkpoints_dir) {
  std::vector<CheckpointLocation> found;
  if (!is_directory(checkpoints_dir)) return found;
  for (const std::string& name : list_directory(checkpoints_dir)) {
    const int64_t step = step_of(name);
    const std::string path = join_path(checkpoints_dir, name);
    if (step >= 0 && is_directory(path)) found.push_back({step, path});
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return found;
}

void remove_stale_checkpoint_dirs(const std::string& checkpoints_dir) {
  if (!is_directory(checkpoints_dir)) return;
  for (const std::string& name : list_directory(checkpoints_dir)) {
    if (name.find(kStaleMarker) != std::string::npos) remove_tree(join_path(checkpoints_dir, name));
  }
}

std::string save_training_checkpoint(const std::string& checkpoints_dir, const TrainingCheckpoint& checkpoint) {
  const std::string path = join_path(checkpoints_dir, checkpoint_name(checkpoint.state.step));
  if (path_exists(path)) return path;
  create_directories(checkpoints_dir);
  const std::string building = cat(path, kStaleMarker, ::getpid());
  remove_tree(building);
  create_directories(building);
  try {
    save_tensors(join_path(building, kTrainableFile), to_named(checkpoint.trainable));
    save_tensors(join_path(building, kOptimizerFile), to_named(checkpoint.optimizer));
    save_tensors(join_path(building, kRngFile), to_named(checkpoint.rng));
    write_file_atomic(join_path(building, kStateFile), state_to_json(checkpoint.state));
    sync_directory(building);
    if (std::rename(building.c_str(), path.c_str()) != 0) {
      fail(path, ": cannot rename the finished checkpoint into place (", std::strerror(errno), ")");
    }
  } catch (...) {
    remove_tree(building);
    throw;
  }
  sync_directory(checkpoints_dir);
  return path;
}

TrainingCheckpoint load_training_checkpoint(const std::string& dir) {
  if (!is_directory(dir)) fail(dir, ": not a checkpoint directory");
  for (const char* file : {kTrainableFile, kOptimizerFile, kRngFile, kStateFile}) {
    if (!is_regular_file(join_path(dir, file))) fail(dir, ": incomplete checkpoint, ", file, " is missing");
  }
  TrainingCheckpoint checkpoint;
  const std::string state_path = join_path(dir, kStateFile);
  checkpoint.state = state_from_json(read_file(state_path), state_path);
  checkpoint.trainable = load_tensors(join_path(dir, kTrainableFile));
  checkpoint.optimizer = load_tensors(join_path(dir, kOptimizerFile));
  checkpoint.rng = load_tensors(join_path(dir, kRngFile));
  return checkpoint;
}

void prune_checkpoints(const std::string& checkpoints_dir, int64_t keep) {
  const std::vector<CheckpointLocation> checkpoints = list_checkpoints(checkpoints_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep) < checkpoints.size(); ++i) {
    const std::string removing = cat(checkpoints[i].path, kStaleMarker, "removing-", ::getpid());
    if (std::rename(checkpoints[i].path.c_str(), removing.c_str()) != 0) {
      fail(checkpoints[i].path, ": cannot remove old checkpoint (", std::strerror(errno), ")");
    }
    remove_tree(removing);
  }
}

}  // namespace halo
