// safetensors without torch. Reading: the whole file is mmapped privately (writable pages are
// copy-on-write, so a stray write through a tensor never reaches the file or crashes), the
// JSON header is parsed with nlohmann::json, and every entry is checked (types, dtype, shape,
// bounds, byte count, overlap) before any pointer is handed out; every defect becomes one
// halo::Error line naming the file and tensor. Writing: tensors are streamed into a temp file
// beside the target, fsynced and renamed into place, so a crash never leaves a torn file and
// GB-sized checkpoints never sit in one string. Layout follows the Python reference writer:
// header padded with spaces to a multiple of 8 bytes, then the tensors back to back (Python
// rejects gaps), ordered by decreasing element size so each one starts aligned for its dtype.
// Directories are handled through file_system.h (never std::filesystem: see there).
#include "halo/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "halo/error.h"
#include "halo/file_system.h"

namespace halo {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the Python reference's limit
constexpr const char* kSingleFileName = "model.safetensors";
constexpr const char* kIndexFileName = "model.safetensors.index.json";

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4},   {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4},   {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

const DTypeInfo& info(DType dtype) {
  for (const DTypeInfo& candidate : kDTypes) {
    if (candidate.dtype == dtype) return candidate;
  }
  fail("invalid halo::DType value ", static_cast<int>(dtype));
}

bool is_control_byte(char c) {
  const unsigned char byte = static_cast<unsigned char>(c);
  return byte < 0x20 || byte == 0x7F;
}

// Bytes that `shape` of `dtype` occupies; false on a negative dimension or overflow.
bool shape_nbytes(const std::vector<int64_t>& shape, DType dtype, uint64_t* nbytes) {
  uint64_t total = dtype_size(dtype);
  for (int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(total, static_cast<uint64_t>(dim), &total)) return false;
  }
  *nbytes = total;
  return true;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? "," : "") + std::to_string(shape[i]);
  return text + "]";
}

// The parts of a header entry ({"dtype", "shape", "data_offsets"}), type-checked.
TensorEntry parse_entry(const std::string& name, const json& value, const std::string& context, uint64_t* begin,
                        uint64_t* end) {
  if (!value.is_object()) fail(context, ": entry is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key)) fail(context, ": entry has no \"", key, "\"");
  }
  const json& dtype = value["dtype"];
  const json& shape = value["shape"];
  const json& offsets = value["data_offsets"];
  if (!dtype.is_string()) fail(context, ": \"dtype\" is not a string");
  if (!shape.is_array()) fail(context, ": \"shape\" is not a list");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    fail(context, ": \"data_offsets\" is not a list of two non-negative integers");
  }
  TensorEntry entry{name, parse_dtype(dtype.get<std::string>(), context), {}, nullptr, 0, 0};
  for (const json& dim : shape) {
    // The bad value is described, not dumped: json::dump recurses once per level of nesting.
    if (!dim.is_number_integer()) fail(context, ": \"shape\" holds a non-integer (", dim.type_name(), ")");
    const bool too_large = dim.is_number_unsigned() && dim.get<uint64_t>() > INT64_MAX;
    if (too_large || dim.get<int64_t>() < 0) {
      fail(context, ": negative or too large dimension ", dim.dump(), " in \"shape\"");
    }
    entry.shape.push_back(dim.get<int64_t>());
  }
  *begin = offsets[0].get<uint64_t>();
  *end = offsets[1].get<uint64_t>();
  return entry;
}

// A file being written: a temp file beside `path` that becomes `path` on commit() and is
// removed if the writer is destroyed before that (an error midway).
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path)
      : path_(std::move(path)), tmp_(path_ + ".tmp." + std::to_string(::getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(tmp_, ": cannot create (", std::strerror(errno), ")");
  }
  ~AtomicFileWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t nbytes) {
    const char* bytes = static_cast<const char*>(data);
    while (nbytes > 0) {
      ssize_t written = ::write(fd_, bytes, nbytes);
      if (written < 0) {
        if (errno == EINTR) continue;
        fail(tmp_, ": write failed (", std::strerror(errno), ")");
      }
      bytes += written;
      nbytes -= static_cast<size_t>(written);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) fail(tmp_, ": cannot flush to disk (", std::strerror(errno), ")");
    int closed = ::close(fd_);
    fd_ = -1;
    if (closed != 0) fail(tmp_, ": cannot close (", std::strerror(errno), ")");
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      fail(path_, ": cannot rename temporary file into place (", std::strerror(errno), ")");
    }
    committed_ = true;
  }

 private:
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// Fails unless the entry's byte count matches its shape and the name is usable.
void check_tensor_to_write(const std::string& path, const TensorToWrite& tensor) {
  const std::string context = cat(path, ": tensor '", tensor.name, "'");
  if (tensor.name == "__metadata__") fail(context, ": the name is reserved for metadata");
  uint64_t expected = 0;
  if (!shape_nbytes(tensor.shape, tensor.dtype, &expected)) {
    fail(context, ": invalid shape ", shape_string(tensor.shape));
  }
  if (expected != tensor.nbytes) {
    fail(context, ": ", tensor.nbytes, " bytes given but shape ", shape_string(tensor.shape), " of ",
         dtype_name(tensor.dtype), " needs ", expected);
  }
}

bool is_weight_file_name(const std::string& name) {
  static const std::regex shard_name(R"(model-\d+-of-\d+\.safetensors)");
  return name == kSingleFileName || name == kIndexFileName || std::regex_match(name, shard_name);
}

std::string shard_file_name(size_t index, size_t count) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", index + 1, count);
  return name;
}

// Removes weight files in `dir` that the save just finished did not write.
void remove_stale_weight_files(const std::string& dir, const std::set<std::string>& written) {
  std::vector<std::string> stale;
  for (const std::string& name : list_directory(dir)) {
    if (is_weight_file_name(name) && !written.count(name)) stale.push_back(join_path(dir, name));
  }
  for (const std::string& file : stale) {
    if (::unlink(file.c_str()) != 0) {
      fail(file, ": cannot remove stale weight file (", std::strerror(errno), ")");
    }
  }
}

}  // namespace

size_t dtype_size(DType dtype) {
  return info(dtype).size;
}

const char* dtype_name(DType dtype) {
  return info(dtype).name;
}

DType parse_dtype(const std::string& name, const std::string& context) {
  for (const DTypeInfo& candidate : kDTypes) {
    if (name == candidate.name) return candidate.dtype;
  }
  fail(context, ": unknown dtype \"", printable(name),
       "\" (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  require_regular_file(path);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open (", std::strerror(errno), ")");
  struct stat status {};
  if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(status.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail(path, ": file is ", file_size, " bytes, too short for a safetensors header");
  }
  // MAP_NORESERVE: the private writable mapping needs no swap reserved for pages never written.
  void* map = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
  int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) fail(path, ": cannot map (", std::strerror(map_errno), ")");
  map_ = map;
  map_size_ = file_size;
  // From here on the destructor will not run if we throw: unmap by hand.
  try {
    const unsigned char* bytes = static_cast<const unsigned char*>(map_);
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
    if (header_size > kMaxHeaderBytes) {
      fail(path, ": header length ", header_size, " exceeds the 100 MB limit (not a safetensors file?)");
    }
    if (header_size > file_size - 8) {
      fail(path, ": header length ", header_size, " runs past the end of the file (", file_size, " bytes; truncated?)");
    }
    const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
    json header;
    try {
      header = json::parse(header_begin, header_begin + header_size);
    } catch (const json::parse_error& error) {
      fail(path, ": header is not valid JSON (error at byte ", error.byte, " of the header)");
    } catch (const json::out_of_range&) {  // a number past double's range, such as 1e309
      fail(path, ": header holds a number too large for JSON's doubles; the file is corrupt");
    }
    if (!header.is_object()) fail(path, ": header is not a JSON object");

    const uint64_t data_start = 8 + header_size;
    const uint64_t data_size = file_size - data_start;
    struct Range {
      uint64_t begin, end;
      size_t index;
    };
    std::vector<Range> ranges;
    for (const auto& [name, value] : header.items()) {
      if (name == "__metadata__") {
        if (!value.is_object()) fail(path, ": \"__metadata__\" is not a JSON object");
        for (const auto& [key, text] : value.items()) {
          if (!text.is_string()) fail(path, ": metadata \"", printable(key), "\" is not a string");
          metadata_[key] = text.get<std::string>();
        }
        continue;
      }
      const std::string context = cat(path, ": tensor '", printable(name), "'");
      uint64_t begin = 0, end = 0;
      TensorEntry entry = parse_entry(name, value, context, &begin, &end);
      if (begin > end) fail(context, ": data_offsets [", begin, ", ", end, "] begin after end");
      if (end > data_size) {
        fail(context, ": data_offsets [", begin, ", ", end, "] run past the end of the data (", data_size,
             " bytes; truncated?)");
      }
      uint64_t expected = 0;
      if (!shape_nbytes(entry.shape, entry.dtype, &expected)) {
        fail(context, ": shape ", shape_string(entry.shape), " is too large");
      }
      if (expected != end - begin) {
        fail(context, ": data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes but shape ",
             shape_string(entry.shape), " of ", dtype_name(entry.dtype), " needs ", expected);
      }
      entry.data = bytes + data_start + begin;
      entry.nbytes = end - begin;
      entry.file_offset = data_start + begin;
      ranges.push_back({begin, end, tensors_.size()});
      tensors_.push_back(std::move(entry));
    }

    std::sort(ranges.begin(), ranges.end(),
              [](const Range& a, const Range& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
    for (size_t i = 1; i < ranges.size(); ++i) {
      if (ranges[i].begin < ranges[i - 1].end) {
        fail(path, ": tensors '", printable(tensors_[ranges[i - 1].index].name), "' and '",
             printable(tensors_[ranges[i].index].name), "' overlap in the data section");
      }
    }
    std::vector<TensorEntry> in_file_order;
    for (const Range& range : ranges) in_file_order.push_back(std::move(tensors_[range.index]));
    tensors_ = std::move(in_file_order);
    for (size_t i = 0; i < tensors_.size(); ++i) by_name_[tensors_[i].name] = i;
  } catch (...) {
    ::munmap(map_, map_size_);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  ::munmap(map_, map_size_);
}

const TensorEntry* SafetensorsFile::find(const std::string& name) const {
  auto found = by_name_.find(name);
  return found == by_name_.end() ? nullptr : &tensors_[found->second];
}

WeightFiles::WeightFiles(const std::string& dir_or_file) {
  struct stat status {};
  if (::stat(dir_or_file.c_str(), &status) != 0) {
    fail(dir_or_file, ": cannot access (", std::strerror(errno), ")");
  }

  std::string index_path;
  if (S_ISDIR(status.st_mode)) {
    const std::string single = join_path(dir_or_file, kSingleFileName);
    index_path = join_path(dir_or_file, kIndexFileName);
    if (path_exists(single)) {
      index_path.clear();
      source_ = single;
    } else if (!path_exists(index_path)) {
      fail(dir_or_file, ": no weights found (looked for ", kSingleFileName, " and ", kIndexFileName, ")");
    }
  } else if (dir_or_file.size() >= 5 && dir_or_file.compare(dir_or_file.size() - 5, 5, ".json") == 0) {
    index_path = dir_or_file;
  } else {
    source_ = dir_or_file;
  }

  if (index_path.empty()) {
    auto file = std::make_shared<const SafetensorsFile>(source_);
    for (const TensorEntry& tensor : file->tensors()) entries_[tensor.name] = {file, &tensor};
    return;
  }

  source_ = index_path;
  json index;
  try {
    index = json::parse(read_file(index_path));
  } catch (const json::parse_error& parse_error) {
    fail(index_path, ": not valid JSON (error at byte ", parse_error.byte, ")");
  } catch (const json::out_of_range&) {  // a number past double's range, such as 1e309
    fail(index_path, ": holds a number too large for JSON's doubles; fix or re-download the index");
  }
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    fail(index_path, ": no \"weight_map\" object");
  }
  const json& weight_map = index["weight_map"];
  const std::string dir = parent_directory(index_path);
  std::map<std::string, std::shared_ptr<const SafetensorsFile>> shards;
  for (const auto& [name, shard_name] : weight_map.items()) {
    if (!shard_name.is_string()) fail(index_path, ": weight_map entry '", printable(name), "' is not a string");
    const std::string shard = shard_name.get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == ".." ||
        std::any_of(shard.begin(), shard.end(), is_control_byte)) {
      fail(index_path, ": weight_map entry '", printable(name), "' names shard '", printable(shard),
           "', which is not a file name in the model directory; shards must sit beside the index");
    }
    auto& file = shards[shard];
    if (!file) {
      const std::string shard_path = join_path(dir, shard);
      if (!path_exists(shard_path)) {
        fail(index_path, ": shard ", shard_path, " (listed for tensor '", printable(name), "') does not exist");
      }
      file = std::make_shared<const SafetensorsFile>(shard_path);
    }
    if (!file->find(name)) {
      fail(index_path, ": tensor '", printable(name), "' is listed in shard ", file->path(),
           " but that file does not contain it");
    }
  }
  for (const auto& [shard, file] : shards) {
    for (const TensorEntry& tensor : file->tensors()) {
      auto [where, inserted] = entries_.emplace(tensor.name, WeightEntry{file, &tensor});
      if (!inserted) {
        fail(index_path, ": tensor '", printable(tensor.name), "' appears in both ", where->second.file->path(),
             " and ", file->path());
      }
    }
  }
}

const WeightEntry* WeightFiles::find(const std::string& name) const {
  auto found = entries_.find(name);
  return found == entries_.end() ? nullptr : &found->second;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::set<std::string> names;
  for (const TensorToWrite& tensor : tensors) {
    check_tensor_to_write(path, tensor);
    if (!names.insert(tensor.name).second) fail(path, ": tensor '", tensor.name, "' given twice");
  }
  std::vector<const TensorToWrite*> layout;
  for (const TensorToWrite& tensor : tensors) layout.push_back(&tensor);
  std::stable_sort(layout.begin(), layout.end(), [](const TensorToWrite* a, const TensorToWrite* b) {
    return dtype_size(a->dtype) > dtype_size(b->dtype);
  });

  ordered_json header = ordered_json::object();
  std::map<std::string, std::string> meta = metadata;
  meta.emplace("format", "pt");  // what torch's save_file writes; some loaders require it
  header["__metadata__"] = meta;
  uint64_t offset = 0;
  for (const TensorToWrite* tensor : layout) {
    header[tensor->name] = {{"dtype", dtype_name(tensor->dtype)},
                            {"shape", tensor->shape},
                            {"data_offsets", {offset, offset + tensor->nbytes}}};
    offset += tensor->nbytes;
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const ordered_json::type_error&) {
    fail(path, ": tensor names and metadata must be valid UTF-8");
  }
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(header_text.size() >> (8 * i));
  AtomicFileWriter out(path);
  out.write(length, sizeof length);
  out.write(header_text.data(), header_text.size());
  for (const TensorToWrite* tensor : layout) out.write(tensor->data, tensor->nbytes);
  out.commit();
}

void write_weights(const std::string& dir, const std::vector<TensorToWrite>& tensors, uint64_t max_shard_bytes,
                   const std::map<std::string, std::string>& metadata) {
  create_directories(dir);

  uint64_t total_size = 0;
  std::set<std::string> names;
  for (const TensorToWrite& tensor : tensors) {
    if (!names.insert(tensor.name).second) fail(dir, ": tensor '", tensor.name, "' given twice");
    total_size += tensor.nbytes;
  }
  if (max_shard_bytes == 0 || total_size <= max_shard_bytes) {
    write_safetensors(join_path(dir, kSingleFileName), tensors, metadata);
    remove_stale_weight_files(dir, {kSingleFileName});
    return;
  }

  // Greedy in the given order: a shard closes when the next tensor would overflow it; a tensor
  // larger than max_shard_bytes gets a shard of its own.
  std::vector<std::vector<TensorToWrite>> shards(1);
  uint64_t shard_bytes = 0;
  for (const TensorToWrite& tensor : tensors) {
    if (!shards.back().empty() && shard_bytes + tensor.nbytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(tensor);
    shard_bytes += tensor.nbytes;
  }

  std::set<std::string> written;
  ordered_json weight_map = ordered_json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = shard_file_name(i, shards.size());
    write_safetensors(join_path(dir, name), shards[i], metadata);
    written.insert(name);
    for (const TensorToWrite& tensor : shards[i]) weight_map[tensor.name] = name;
  }
  ordered_json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  write_file_atomic(join_path(dir, kIndexFileName), index.dump(2) + "\n");
  written.insert(kIndexFileName);
  remove_stale_weight_files(dir, written);
}

}  // namespace halo
