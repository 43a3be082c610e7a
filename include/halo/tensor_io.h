// torch tensors in and out of safetensors. Loading is zero-copy where the data are aligned
// for their dtype (the tensor keeps the mapped file alive), otherwise one copy.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "halo/safetensors.h"

namespace halo {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

at::ScalarType to_scalar_type(DType dtype);
DType to_dtype(at::ScalarType type);  // fails for types safetensors cannot hold

// A CPU tensor viewing (or copying) one entry of a model's weight files.
at::Tensor entry_to_tensor(const WeightEntry& entry);

// Every tensor of a file or model directory, by name.
std::map<std::string, at::Tensor> load_tensors(const std::string& dir_or_file);

// Saves tensors (any device, any layout: they are made contiguous on CPU) to one file.
void save_tensors(const std::string& path, const NamedTensors& tensors,
                  const std::map<std::string, std::string>& metadata = {});

// Saves a model directory's weights, sharded above max_shard_bytes (see write_weights).
void save_weights(const std::string& dir, const NamedTensors& tensors, uint64_t max_shard_bytes,
                  const std::map<std::string, std::string>& metadata = {});

}  // namespace halo
