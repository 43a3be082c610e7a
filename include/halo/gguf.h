// GGUF files (llama.cpp's single-file model format) without torch. A file is a header (magic
// "GGUF", version, tensor and metadata counts), typed metadata key/value pairs, tensor infos
// (name, dims in ggml order, ggml type, offset), padding to `general.alignment`, then the data.
// GgufFile maps a little-endian version 2 or 3 file read-only and validates every count, length
// and offset against the file size before anything is handed out, so a truncated or corrupt file
// is one halo::Error line naming the file, never a crash or a huge allocation. Metadata is decoded
// eagerly into GgufValue; tensor data stay in the map. dequantize() turns ggml blocks (F32, F16,
// BF16, Q4_0..Q8_0 and the K-quants) into float32 with ggml's own formulas.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace halo {

// ggml's tensor types, numbered as in ggml.h. Only those ggml_type_supported() accepts can be
// read and dequantized; the rest are named so that errors can say what a file holds.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

// "Q4_1", "IQ4_XS", ...; "type 99" for a number ggml does not define (as far as halo knows).
const char* ggml_type_name(uint32_t type);
// Whether dequantize() handles the type: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
// Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
bool ggml_type_supported(uint32_t type);
// The supported type names, comma-separated, for messages.
std::string ggml_supported_type_names();
// Elements per block (1 for F32/F16/BF16, 32 for Q4_0..Q8_0, 256 for K-quants) and bytes per
// block; both fail for unsupported types.
int64_t ggml_block_elements(GgmlType type);
size_t ggml_block_bytes(GgmlType type);

// One metadata value: a scalar, or an array of scalars of one kind (arrays of arrays are
// rejected when reading). Kinds are numbered as in the file. Elements are stored by family:
// integer kinds and BOOL (0 or 1) in `integers` (UINT64 values above INT64_MAX wrap: cast back
// to uint64_t to read them), FLOAT32/FLOAT64 in `floats`, STRING in `strings`. A scalar is one
// element, so `integers[0]` is the value of a UINT32 key.
struct GgufValue {
  enum class Kind : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12,
  };
  Kind kind = Kind::UINT8;
  Kind element_kind = Kind::UINT8;  // kind of each element: equals `kind` for a scalar
  std::vector<int64_t> integers;
  std::vector<double> floats;
  std::vector<std::string> strings;

  bool is_array() const { return kind == Kind::ARRAY; }
  size_t size() const;  // element count: 1 for a scalar
};

// "UINT32", "STRING", ... ; "kind 13" for numbers the format does not define.
const char* gguf_kind_name(GgufValue::Kind kind);

struct GgufTensorInfo {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;  // GGUF order: ne[0] is the fastest-varying (row length)
  // Row-major (PyTorch/HF) order: ne reversed. Empty for a 0-dimensional tensor.
  std::vector<int64_t> shape() const;
  int64_t elements;
  const uint8_t* data;  // into the map
  size_t nbytes;
  uint64_t file_offset;  // absolute byte offset of the data in the file
};

class GgufFile {
 public:
  // Maps and validates `path`; throws halo::Error naming the file (and key or tensor) on any
  // defect: not a regular file, wrong magic, unsupported version, big-endian file, truncation,
  // absurd counts or lengths, duplicate keys or tensor names, bad alignment, misaligned, out of
  // range or overlapping tensor data, tensor types halo cannot dequantize.
  explicit GgufFile(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  // Absolute byte offset where the data section starts (tensor offsets are relative to it).
  uint64_t data_offset() const { return data_offset_; }

  const std::vector<std::string>& keys() const { return keys_; }  // in file order
  const GgufValue* find(const std::string& key) const;

  // Typed getters: each fails naming the file and key when the key is missing or holds another
  // kind. Integer getters accept every integer kind (not BOOL); float getters also accept
  // integers.
  std::string string_value(const std::string& key) const;
  int64_t int_value(const std::string& key) const;
  double float_value(const std::string& key) const;
  bool bool_value(const std::string& key) const;
  std::vector<std::string> string_array(const std::string& key) const;
  std::vector<int64_t> int_array(const std::string& key) const;
  std::vector<double> float_array(const std::string& key) const;
  // The same, returning nullopt for an absent key (a key of the wrong kind still fails).
  std::optional<std::string> optional_string(const std::string& key) const;
  std::optional<int64_t> optional_int(const std::string& key) const;
  std::optional<double> optional_float(const std::string& key) const;
  std::optional<bool> optional_bool(const std::string& key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }  // in file order
  const GgufTensorInfo* find_tensor(const std::string& name) const;

 private:
  // The value of `key` checked to be a scalar (or array) of an accepted family; fails otherwise.
  const GgufValue& typed(const std::string& key, bool array, const char* wanted,
                         bool (*accepts)(GgufValue::Kind)) const;

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  uint32_t version_ = 0;
  size_t alignment_ = 0;
  uint64_t data_offset_ = 0;
  std::vector<std::string> keys_;
  std::map<std::string, GgufValue> values_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Dequantizes `elements` values (a multiple of the type's block size) of `type` from `data` into
// float32 `out`, split across `threads` threads (0 = hardware concurrency, at most 16, and fewer
// for small inputs); fails for unsupported types, a bad element count or a negative thread count.
void dequantize(GgmlType type, const void* data, int64_t elements, float* out, int threads = 0);

}  // namespace halo
