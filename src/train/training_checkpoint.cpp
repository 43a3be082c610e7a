// Training checkpoint directories (see training_checkpoint.h): tensors through save_tensors /
// load_tensors (each file written atomically and fsynced), state.json through nlohmann::json,
// and the directory-level commit (fsync, rename, fsync of the parent) through POSIX calls.
#include "train/training_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/tensor_io.h"

namespace halo {
namespace {

constexpr const char* kTrainableFile = "trainable.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kRngFile = "rng.safetensors";
constexpr const char* kStateFile = "state.json";
constexpr const char* kChecksumFile = "checksums.json";
constexpr const char* kChecksumFormat = "halo-checksums-v1";
constexpr const char* const kCheckpointFiles[] = {kTrainableFile, kOptimizerFile, kRngFile, kStateFile};
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

// The CRC-32 (zlib's) of a file's bytes, as 8 hex digits, and its size.
std::pair<std::string, uint64_t> file_crc32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open to compute its checksum");
  std::vector<char> buffer(size_t{4} << 20);
  uLong crc = crc32_z(0L, Z_NULL, 0);
  uint64_t bytes = 0;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = static_cast<size_t>(in.gcount());
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(buffer.data()), n);
    bytes += n;
  }
  if (in.bad()) fail(path, ": read error while computing its checksum");
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08lx", static_cast<unsigned long>(crc));
  return {hex, bytes};
}

std::string checksums_json(const std::string& dir) {
  nlohmann::json j;
  j["format"] = kChecksumFormat;
  for (const char* file : kCheckpointFiles) {
    const auto [crc, bytes] = file_crc32(join_path(dir, file));
    j["files"][file] = {{"crc32", crc}, {"bytes", bytes}};
  }
  return j.dump(2) + "\n";
}

// Compares every file with checksums.json; fails naming the first that differs.
void verify_checksums(const std::string& dir) {
  const std::string path = join_path(dir, kChecksumFile);
  const nlohmann::json j = nlohmann::json::parse(read_file(path), nullptr, false);
  if (!j.is_object() || j.value("format", "") != kChecksumFormat || !j.contains("files") || !j["files"].is_object()) {
    fail(path, ": not a halo checksum file");
  }
  for (const char* file : kCheckpointFiles) {
    const auto& entry = j["files"].contains(file) ? j["files"][file] : nlohmann::json();
    if (!entry.is_object() || !entry.contains("crc32") || !entry["crc32"].is_string() || !entry.contains("bytes") ||
        !entry["bytes"].is_number_unsigned()) {
      fail(path, ": no checksum for ", file);
    }
    const auto [crc, bytes] = file_crc32(join_path(dir, file));
    if (bytes != entry["bytes"].get<uint64_t>() || crc != entry["crc32"].get<std::string>()) {
      fail(join_path(dir, file), ": damaged (", bytes, " bytes with CRC-32 ", crc, ", saved as ",
           entry["bytes"].get<uint64_t>(), " bytes with ", entry["crc32"].get<std::string>(), ")");
    }
  }
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
    write_file_atomic(join_path(building, kChecksumFile), checksums_json(building));
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
  for (const char* file : kCheckpointFiles) {
    if (!is_regular_file(join_path(dir, file))) fail(dir, ": incomplete checkpoint, ", file, " is missing");
  }
  if (!is_regular_file(join_path(dir, kChecksumFile))) {
    fail(dir, ": ", kChecksumFile, " is missing (a checkpoint from before halo kept checksums, or damaged)");
  }
  verify_checksums(dir);
  TrainingCheckpoint checkpoint;
  const std::string state_path = join_path(dir, kStateFile);
  checkpoint.state = state_from_json(read_file(state_path), state_path);
  const int64_t named = step_of(base_name(dir));
  if (named >= 0 && named != checkpoint.state.step) {
    fail(state_path, ": says step ", checkpoint.state.step, " but the checkpoint is ", base_name(dir));
  }
  checkpoint.trainable = load_tensors(join_path(dir, kTrainableFile));
  checkpoint.optimizer = load_tensors(join_path(dir, kOptimizerFile));
  checkpoint.rng = load_tensors(join_path(dir, kRngFile));
  return checkpoint;
}

std::string set_aside_damaged_checkpoint(const std::string& dir) {
  std::string aside = dir + ".damaged";
  for (int i = 2; path_exists(aside); ++i) aside = cat(dir, ".damaged-", i);
  if (std::rename(dir.c_str(), aside.c_str()) != 0) {
    fail(dir, ": cannot rename the damaged checkpoint aside (", std::strerror(errno), ")");
  }
  return aside;
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
