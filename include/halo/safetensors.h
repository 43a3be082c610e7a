// The safetensors format without torch: an 8-byte little-endian header length N, N bytes of
// JSON ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}), then raw
// little-endian data with offsets relative to the end of the header.
// SafetensorsFile maps a file read-only (copy-on-write) and validates every entry before any
// tensor is handed out; WeightFiles opens a model directory (one file or the shards listed
// in model.safetensors.index.json). Writers are atomic (temp file + rename).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace halo {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType dtype);
// The safetensors spelling: "F32", "BF16", ...
const char* dtype_name(DType dtype);
// Parses a safetensors dtype string; fails naming `context` (file and tensor) when unknown.
DType parse_dtype(const std::string& name, const std::string& context);

struct TensorEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // points into the mapped file
  size_t nbytes;
  size_t file_offset;  // absolute byte offset of data in the file
};

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws halo::Error naming the file (and tensor) on any defect:
  // missing file, short or oversized header, bad JSON, unknown dtype, offsets past the end or
  // overlapping, byte count that does not match the shape.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Entries sorted by data offset (the order they sit in the file).
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  const TensorEntry* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorEntry> tensors_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

// Where one tensor of a model's weight files lives.
struct WeightEntry {
  std::shared_ptr<const SafetensorsFile> file;
  const TensorEntry* tensor;
};

// A model directory's weights: model.safetensors, or model.safetensors.index.json and its
// shards; a path to a single .safetensors file works too. Names are unique across shards.
class WeightFiles {
 public:
  explicit WeightFiles(const std::string& dir_or_file);
  const std::map<std::string, WeightEntry>& entries() const { return entries_; }
  const WeightEntry* find(const std::string& name) const;
  // Where the weights were found, for messages.
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::map<std::string, WeightEntry> entries_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};

// Writes one safetensors file atomically (streamed to a temp file beside it, fsync, rename).
// As in the Python reference: the header is padded with spaces to a multiple of 8 bytes and
// the tensors follow back to back (Python rejects gaps between them), ordered by decreasing
// element size (stable otherwise), so each tensor starts aligned for its dtype.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes a model directory's weights: one model.safetensors when the total is at most
// `max_shard_bytes` (0 = never shard), else model-0000i-of-0000n.safetensors shards plus
// model.safetensors.index.json ({"metadata": {"total_size": ...}, "weight_map": {...}}).
// Stale weight files from an earlier save in `dir` are removed after the new ones are in place.
void write_weights(const std::string& dir, const std::vector<TensorToWrite>& tensors, uint64_t max_shard_bytes,
                   const std::map<std::string, std::string>& metadata = {});

}  // namespace halo
