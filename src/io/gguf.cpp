// The GGUF reader. The file is checked to be a regular file before it is opened (a FIFO would
// block the open), then mapped read-only. A Cursor walks the header: every fixed-size field,
// string length and element count is checked against the bytes that remain before it is used,
// and every count is bounded by how many of its smallest items those bytes could hold before
// anything is reserved, so a corrupt count fails at once instead of allocating. Tensor extents
// are computed with overflow-checked arithmetic and must be aligned, inside the file and
// disjoint. Names from the file are escaped in messages so that every error stays one line.
// Block sizes and type names come from gguf_dequantize.cpp, which owns the ggml type table.
#include "halo/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "halo/error.h"
#include "halo/file_system.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF fields are read as little-endian");

namespace halo {
namespace {

using Kind = GgufValue::Kind;

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMaxAlignment = uint64_t{1} << 31;  // the format stores it as a UINT32
constexpr uint32_t kMaxDims = 4;                       // GGML_MAX_DIMS
// The smallest possible encodings: a key/value pair (key length, type, one-byte value) and a
// tensor info (name length, n_dims, type, offset).
constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;
// Containers are reserved for at most this many items up front; past it they grow only as items
// are actually read, so even a count that fits the file cannot reserve a multiple of its size.
constexpr uint64_t kMaxReservedItems = 1 << 16;

// Indexed by GgufValue::Kind.
const char* const kKindNames[] = {"UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
                                  "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};

size_t initial_capacity(uint64_t count) {
  return static_cast<size_t>(std::min(count, kMaxReservedItems));
}

bool is_integer_kind(Kind kind) {
  switch (kind) {
    case Kind::UINT8:
    case Kind::INT8:
    case Kind::UINT16:
    case Kind::INT16:
    case Kind::UINT32:
    case Kind::INT32:
    case Kind::UINT64:
    case Kind::INT64:
      return true;
    default:
      return false;
  }
}
bool is_float_kind(Kind kind) {
  return kind == Kind::FLOAT32 || kind == Kind::FLOAT64;
}
bool is_number_kind(Kind kind) {
  return is_integer_kind(kind) || is_float_kind(kind);
}
bool is_string_kind(Kind kind) {
  return kind == Kind::STRING;
}
bool is_bool_kind(Kind kind) {
  return kind == Kind::BOOL;
}

// Bytes one element of `kind` takes in the file; strings take at least their 8-byte length.
uint64_t min_encoded_bytes(Kind kind) {
  switch (kind) {
    case Kind::UINT8:
    case Kind::INT8:
    case Kind::BOOL:
      return 1;
    case Kind::UINT16:
    case Kind::INT16:
      return 2;
    case Kind::UINT32:
    case Kind::INT32:
    case Kind::FLOAT32:
      return 4;
    default:
      return 8;
  }
}

std::string describe_kind(const GgufValue& value) {
  return value.is_array() ? cat("an array of ", gguf_kind_name(value.element_kind))
                          : cat("a ", gguf_kind_name(value.kind));
}

// Reads little-endian fields from the mapped header. Every read checks the bytes left first;
// `what` describes the field for the message (a callable, so it is only built on failure).
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* bytes, uint64_t size) : path_(path), bytes_(bytes), size_(size) {}

  uint64_t position() const { return position_; }
  uint64_t remaining() const { return size_ - position_; }

  template <class T, class What>
  T read(const What& what) {
    require(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_ + position_, sizeof value);
    position_ += sizeof value;
    return value;
  }

  template <class What>
  std::string read_string(const What& what) {
    const uint64_t length = read<uint64_t>([&] { return cat("the length of ", what()); });
    require(length, what);
    std::string text(reinterpret_cast<const char*>(bytes_ + position_), length);
    position_ += length;
    return text;
  }

  // A count of items that each take at least `min_item_bytes`; more than the remaining bytes
  // could hold means the file is corrupt, and fails before anyone reserves memory for them.
  template <class What>
  uint64_t read_count(uint64_t min_item_bytes, const What& what) {
    const uint64_t count = read<uint64_t>(what);
    if (count > remaining() / min_item_bytes) {
      fail(path_, ": ", what(), " is ", count, " but only ", remaining(), " bytes remain in the file (size ", size_,
           "); the file is truncated or corrupt");
    }
    return count;
  }

 private:
  template <class What>
  void require(uint64_t bytes, const What& what) const {
    if (bytes > remaining()) {
      fail(path_, ": ", what(), " (", bytes, " bytes at offset ", position_, ") runs past the end of the file (size ",
           size_, "); the file is truncated or corrupt");
    }
  }

  const std::string& path_;
  const uint8_t* bytes_;
  uint64_t size_;
  uint64_t position_ = 0;
};

// Appends one element of scalar `kind` to `value`.
template <class What>
void read_element(Cursor& cursor, Kind kind, GgufValue& value, const What& what) {
  switch (kind) {
    case Kind::UINT8:
      value.integers.push_back(cursor.read<uint8_t>(what));
      break;
    case Kind::INT8:
      value.integers.push_back(cursor.read<int8_t>(what));
      break;
    case Kind::UINT16:
      value.integers.push_back(cursor.read<uint16_t>(what));
      break;
    case Kind::INT16:
      value.integers.push_back(cursor.read<int16_t>(what));
      break;
    case Kind::UINT32:
      value.integers.push_back(cursor.read<uint32_t>(what));
      break;
    case Kind::INT32:
      value.integers.push_back(cursor.read<int32_t>(what));
      break;
    case Kind::UINT64:
      value.integers.push_back(static_cast<int64_t>(cursor.read<uint64_t>(what)));
      break;
    case Kind::INT64:
      value.integers.push_back(cursor.read<int64_t>(what));
      break;
    case Kind::FLOAT32:
      value.floats.push_back(cursor.read<float>(what));
      break;
    case Kind::FLOAT64:
      value.floats.push_back(cursor.read<double>(what));
      break;
    case Kind::BOOL:
      value.integers.push_back(cursor.read<uint8_t>(what) != 0);
      break;
    case Kind::STRING:
      value.strings.push_back(cursor.read_string(what));
      break;
    case Kind::ARRAY:
      break;  // callers never pass ARRAY
  }
}

// The value of metadata key `key` (its type already read as `raw_kind`).
GgufValue read_value(Cursor& cursor, const std::string& path, const std::string& key, uint32_t raw_kind) {
  auto check_kind = [&](uint32_t kind, const char* role) {
    if (kind > static_cast<uint32_t>(Kind::FLOAT64)) {
      fail(path, ": metadata key '", printable(key), "' has ", role, " ", kind,
           ", which is not a GGUF type; the file is corrupt");
    }
    return static_cast<Kind>(kind);
  };
  GgufValue value;
  value.kind = value.element_kind = check_kind(raw_kind, "value type");
  auto what = [&] { return cat("the value of metadata key '", printable(key), "'"); };
  if (!value.is_array()) {
    read_element(cursor, value.kind, value, what);
    return value;
  }
  value.element_kind =
      check_kind(cursor.read<uint32_t>([&] { return cat("the element type of metadata key '", printable(key), "'"); }),
                 "array element type");
  if (value.element_kind == Kind::ARRAY) {
    fail(path, ": metadata key '", printable(key), "' is an array of arrays, which halo does not read");
  }
  const uint64_t count = cursor.read_count(min_encoded_bytes(value.element_kind), [&] {
    return cat("the element count of metadata key '", printable(key), "'");
  });
  if (is_string_kind(value.element_kind)) {
    value.strings.reserve(initial_capacity(count));
  } else if (is_float_kind(value.element_kind)) {
    value.floats.reserve(initial_capacity(count));
  } else {
    value.integers.reserve(initial_capacity(count));
  }
  for (uint64_t i = 0; i < count; ++i) {
    read_element(cursor, value.element_kind, value,
                 [&] { return cat("element ", i, " of metadata key '", printable(key), "'"); });
  }
  return value;
}

// The alignment the file declares, validated.
uint64_t read_alignment(const std::string& path, const std::map<std::string, GgufValue>& values) {
  auto found = values.find("general.alignment");
  if (found == values.end()) return kDefaultAlignment;
  const GgufValue& value = found->second;
  if (value.is_array() || !is_integer_kind(value.kind)) {
    fail(path, ": metadata key 'general.alignment' holds ", describe_kind(value),
         ", expected an integer; the file is corrupt");
  }
  const int64_t alignment = value.integers[0];
  if (alignment <= 0 || static_cast<uint64_t>(alignment) > kMaxAlignment || (alignment & (alignment - 1)) != 0) {
    fail(path, ": general.alignment is ", alignment,
         ", which is not a power of two between 1 and 2^31; the file is corrupt");
  }
  return static_cast<uint64_t>(alignment);
}

}  // namespace

const char* gguf_kind_name(GgufValue::Kind kind) {
  const uint32_t index = static_cast<uint32_t>(kind);
  if (index < sizeof kKindNames / sizeof kKindNames[0]) return kKindNames[index];
  return "unknown kind";
}

size_t GgufValue::size() const {
  if (is_string_kind(element_kind)) return strings.size();
  if (is_float_kind(element_kind)) return floats.size();
  return integers.size();
}

std::vector<int64_t> GgufTensorInfo::shape() const {
  return {ne.rbegin(), ne.rend()};
}

GgufFile::GgufFile(const std::string& path) : path_(path) {
  require_regular_file(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open (", std::strerror(errno), ")");
  struct stat status {};
  if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(status.st_size);
  if (size == 0) {
    ::close(fd);
    fail(path, ": the file is empty, not a GGUF file");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) fail(path, ": cannot map (", std::strerror(map_errno), ")");
  map_ = map;
  map_size_ = size;
  // From here on the destructor will not run if we throw: unmap by hand.
  try {
    const uint8_t* bytes = static_cast<const uint8_t*>(map_);
    Cursor cursor(path_, bytes, size);

    if (size < sizeof kMagic || std::memcmp(bytes, kMagic, sizeof kMagic) != 0) {
      fail(path, ": not a GGUF file (it does not start with \"GGUF\")");
    }
    cursor.read<uint32_t>([] { return std::string("the magic"); });
    version_ = cursor.read<uint32_t>([] { return std::string("the version"); });
    if (version_ != 2 && version_ != 3) {
      if ((version_ & 0xFFFF) == 0 && (version_ >> 24) >= 1 && (version_ >> 24) <= 3) {
        fail(path, ": a big-endian GGUF file; halo reads little-endian files only");
      }
      fail(path, ": GGUF version ", version_,
           ", which halo does not read (supported: 2 and 3; re-convert it with a recent llama.cpp)");
    }
    const uint64_t tensor_count =
        cursor.read_count(kMinTensorInfoBytes, [] { return std::string("the tensor count"); });
    const uint64_t key_count =
        cursor.read_count(kMinKeyValueBytes, [] { return std::string("the metadata key count"); });

    keys_.reserve(initial_capacity(key_count));
    for (uint64_t i = 0; i < key_count; ++i) {
      std::string key = cursor.read_string([&] { return cat("the name of metadata key ", i); });
      const uint32_t kind =
          cursor.read<uint32_t>([&] { return cat("the value type of metadata key '", printable(key), "'"); });
      GgufValue value = read_value(cursor, path, key, kind);
      if (!values_.emplace(key, std::move(value)).second) {
        fail(path, ": metadata key '", printable(key), "' appears twice; the file is corrupt");
      }
      keys_.push_back(std::move(key));
    }
    alignment_ = read_alignment(path, values_);

    // Tensor infos; their extents are checked once the data section's start is known.
    tensors_.reserve(initial_capacity(tensor_count));
    std::vector<uint64_t> offsets;
    offsets.reserve(initial_capacity(tensor_count));
    for (uint64_t i = 0; i < tensor_count; ++i) {
      GgufTensorInfo tensor{};
      tensor.name = cursor.read_string([&] { return cat("the name of tensor ", i); });
      const std::string context = cat(path, ": tensor '", printable(tensor.name), "'");
      auto what = [&](const char* field) {
        return [&, field] { return cat("the ", field, " of tensor '", printable(tensor.name), "'"); };
      };
      const uint32_t dims = cursor.read<uint32_t>(what("dimension count"));
      if (dims > kMaxDims) {
        fail(context, " has ", dims, " dimensions; GGUF allows at most ", kMaxDims, "; the file is corrupt");
      }
      tensor.elements = 1;
      for (uint32_t d = 0; d < dims; ++d) {
        const uint64_t extent = cursor.read<uint64_t>(what("dimensions"));
        if (extent > static_cast<uint64_t>(INT64_MAX) ||
            __builtin_mul_overflow(tensor.elements, static_cast<int64_t>(extent), &tensor.elements)) {
          fail(context, " has dimensions too large to be real; the file is corrupt");
        }
        tensor.ne.push_back(static_cast<int64_t>(extent));
      }
      const uint32_t type = cursor.read<uint32_t>(what("ggml type"));
      if (!ggml_type_supported(type)) {
        const std::string name = ggml_type_name(type);
        const std::string known_name = name == cat("type ", type) ? "" : " (" + name + ")";
        fail(context, " has ggml type ", type, known_name,
             ", which halo cannot dequantize; supported: ", ggml_supported_type_names());
      }
      tensor.type = static_cast<GgmlType>(type);
      const int64_t block = ggml_block_elements(tensor.type);
      const int64_t row = tensor.ne.empty() ? 1 : tensor.ne[0];
      if (row % block != 0) {
        fail(context, " has rows of ", row, " elements, not a multiple of the ", ggml_type_name(type), " block size ",
             block, "; the file is corrupt");
      }
      uint64_t nbytes = 0;
      if (__builtin_mul_overflow(static_cast<uint64_t>(tensor.elements / block),
                                 static_cast<uint64_t>(ggml_block_bytes(tensor.type)), &nbytes)) {
        fail(context, " is too large to be real; the file is corrupt");
      }
      tensor.nbytes = nbytes;
      offsets.push_back(cursor.read<uint64_t>(what("data offset")));
      if (!tensor_index_.emplace(tensor.name, tensors_.size()).second) {
        fail(context, " appears twice; the file is corrupt");
      }
      tensors_.push_back(std::move(tensor));
    }

    // The data section starts at the end of the tensor infos, rounded up to the alignment (no
    // overflow: the position is at most the file size, below 2^63, and the alignment at most 2^31).
    const uint64_t header_end = cursor.position();
    data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
    struct Extent {
      uint64_t begin, end;
      size_t index;
    };
    std::vector<Extent> extents;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      GgufTensorInfo& tensor = tensors_[i];
      const std::string context = cat(path, ": tensor '", printable(tensor.name), "'");
      if (offsets[i] % alignment_ != 0) {
        fail(context, " data offset ", offsets[i], " is not a multiple of the alignment ", alignment_,
             "; the file is corrupt");
      }
      uint64_t begin = 0, end = 0;
      if (__builtin_add_overflow(data_offset_, offsets[i], &begin) ||
          __builtin_add_overflow(begin, tensor.nbytes, &end)) {
        fail(context, " data offset ", offsets[i], " is too large to be real; the file is corrupt");
      }
      if (end > size) {
        fail(context, " data [", begin, ", ", end, ") runs past the end of the file (size ", size,
             "); the file is truncated or corrupt");
      }
      tensor.data = bytes + begin;
      tensor.file_offset = begin;
      if (end > begin) extents.push_back({begin, end, i});
    }
    std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
    for (size_t i = 1; i < extents.size(); ++i) {
      if (extents[i].begin < extents[i - 1].end) {
        fail(path, ": tensors '", printable(tensors_[extents[i - 1].index].name), "' and '",
             printable(tensors_[extents[i].index].name), "' overlap in the data section; the file is corrupt");
      }
    }
  } catch (...) {
    ::munmap(map_, map_size_);
    throw;
  }
}

GgufFile::~GgufFile() {
  ::munmap(map_, map_size_);
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto found = values_.find(key);
  return found == values_.end() ? nullptr : &found->second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto found = tensor_index_.find(name);
  return found == tensor_index_.end() ? nullptr : &tensors_[found->second];
}

const GgufValue& GgufFile::typed(const std::string& key, bool array, const char* wanted,
                                 bool (*accepts)(GgufValue::Kind)) const {
  const GgufValue* value = find(key);
  if (value == nullptr) fail(path_, ": metadata key '", printable(key), "' is missing");
  if (value->is_array() != array || !accepts(value->element_kind)) {
    fail(path_, ": metadata key '", printable(key), "' holds ", describe_kind(*value), ", expected ", wanted);
  }
  return *value;
}

namespace {

// An integer element as int64, failing for UINT64 values past INT64_MAX (stored wrapped).
int64_t checked_integer(const std::string& path, const std::string& key, const GgufValue& value, size_t i) {
  const int64_t integer = value.integers[i];
  if (value.element_kind == Kind::UINT64 && integer < 0) {
    fail(path, ": metadata key '", printable(key), "' holds ", static_cast<uint64_t>(integer),
         ", which does not fit in a signed 64-bit integer");
  }
  return integer;
}

// A number element (float or integer) as double.
double number_as_double(const GgufValue& value, size_t i) {
  if (is_float_kind(value.element_kind)) return value.floats[i];
  if (value.element_kind == Kind::UINT64) {
    return static_cast<double>(static_cast<uint64_t>(value.integers[i]));
  }
  return static_cast<double>(value.integers[i]);
}

}  // namespace

std::string GgufFile::string_value(const std::string& key) const {
  return typed(key, false, "a string", is_string_kind).strings[0];
}

int64_t GgufFile::int_value(const std::string& key) const {
  return checked_integer(path_, key, typed(key, false, "an integer", is_integer_kind), 0);
}

double GgufFile::float_value(const std::string& key) const {
  return number_as_double(typed(key, false, "a number", is_number_kind), 0);
}

bool GgufFile::bool_value(const std::string& key) const {
  return typed(key, false, "a BOOL", is_bool_kind).integers[0] != 0;
}

std::vector<std::string> GgufFile::string_array(const std::string& key) const {
  return typed(key, true, "an array of STRING", is_string_kind).strings;
}

std::vector<int64_t> GgufFile::int_array(const std::string& key) const {
  const GgufValue& value = typed(key, true, "an array of integers", is_integer_kind);
  std::vector<int64_t> integers(value.size());
  for (size_t i = 0; i < integers.size(); ++i) integers[i] = checked_integer(path_, key, value, i);
  return integers;
}

std::vector<double> GgufFile::float_array(const std::string& key) const {
  const GgufValue& value = typed(key, true, "an array of numbers", is_number_kind);
  std::vector<double> numbers(value.size());
  for (size_t i = 0; i < numbers.size(); ++i) numbers[i] = number_as_double(value, i);
  return numbers;
}

std::optional<std::string> GgufFile::optional_string(const std::string& key) const {
  if (find(key) == nullptr) return std::nullopt;
  return string_value(key);
}

std::optional<int64_t> GgufFile::optional_int(const std::string& key) const {
  if (find(key) == nullptr) return std::nullopt;
  return int_value(key);
}

std::optional<double> GgufFile::optional_float(const std::string& key) const {
  if (find(key) == nullptr) return std::nullopt;
  return float_value(key);
}

std::optional<bool> GgufFile::optional_bool(const std::string& key) const {
  if (find(key) == nullptr) return std::nullopt;
  return bool_value(key);
}

}  // namespace halo
