// Training checkpoints: one directory per saved step in a run's checkpoints directory.
//   step-00000100/trainable.safetensors  the trainable parameters by name, in their own dtype
//   step-00000100/optimizer.safetensors  AdamW state: exp_avg.<name>, exp_avg_sq.<name>,
//                                        master.<name> (float32 master copies, when kept)
//   step-00000100/rng.safetensors        generator states as uint8 tensors named "cpu", "cuda:N"
//   step-00000100/state.json             {"format": "halo-training-checkpoint-v1", "step",
//                                        "optimizer_steps", "skipped_steps", "tokens_seen",
//                                        "elapsed_s", "loss", "lr", "data_cursor", "config"}
//   step-00000100/checksums.json         {"format": "halo-checksums-v1", "files": {name:
//                                        {"crc32": "8 hex digits", "bytes": N}}} of the four above
// Saving builds step-XXXXXXXX.tmp-PID, with every file fsynced, fsyncs that directory, renames it
// into place and fsyncs the parent, so a checkpoint directory is either complete or absent
// however the process dies. The newest checkpoint is the step-* directory with the highest
// step. Names containing ".tmp-" are leftovers of a save or a removal cut short, which
// remove_stale_checkpoint_dirs deletes; old checkpoints are renamed to such a name before they
// are deleted, so a removal cut short never leaves a partial step-* directory behind. One
// process writes a run directory at a time.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/token_dataset.h"

namespace halo {

inline constexpr const char* kTrainingCheckpointFormat = "halo-training-checkpoint-v1";

// state.json: where training stands after `step` completed optimizer steps.
struct TrainingState {
  int64_t step = 0;             // completed optimizer steps (skipped ones included)
  int64_t optimizer_steps = 0;  // AdamW updates applied (t of the bias correction)
  int64_t skipped_steps = 0;    // steps dropped by nan_policy skip
  int64_t tokens_seen = 0;
  double elapsed_s = 0;     // training wall time so far, over all sessions
  double loss = 0, lr = 0;  // of the last completed step
  TokenCursor data_cursor;  // the batcher position for the next step
  std::string config_json;  // the trajectory-relevant TrainerConfig fields, as a JSON object
};

struct TrainingCheckpoint {
  TrainingState state;
  std::map<std::string, at::Tensor> trainable, optimizer, rng;
};

struct CheckpointLocation {
  int64_t step;
  std::string path;
};

// "step-00000100"
std::string checkpoint_name(int64_t step);

// The complete checkpoints in `checkpoints_dir` (step-NNNNNNNN directories), oldest first;
// empty when the directory does not exist.
std::vector<CheckpointLocation> list_checkpoints(const std::string& checkpoints_dir);

// Deletes the leftovers (names containing ".tmp-") of saves or removals that were cut short.
void remove_stale_checkpoint_dirs(const std::string& checkpoints_dir);

// Writes checkpoint_name(checkpoint.state.step) atomically (see above) and returns its path.
// When that directory exists already (the same step saved before) it is left as it is.
std::string save_training_checkpoint(const std::string& checkpoints_dir, const TrainingCheckpoint& checkpoint);

// Reads a checkpoint directory after checking every file against checksums.json and the step
// in state.json against the directory's name; fails naming the file that is missing, damaged
// or invalid.
TrainingCheckpoint load_training_checkpoint(const std::string& dir);

// Renames a checkpoint that failed to load to DIR.damaged (kept for inspection, never listed
// or pruned again, so a later save of the same step is not mistaken for it); returns the name.
std::string set_aside_damaged_checkpoint(const std::string& dir);

// Removes all but the newest `keep` checkpoints (keep >= 1).
void prune_checkpoints(const std::string& checkpoints_dir, int64_t keep);

}  // namespace halo
