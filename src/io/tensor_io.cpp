// torch tensors over the torch-free safetensors layer. A loaded tensor views the mapped file
// directly (at::from_blob, with a deleter that owns a reference to the SafetensorsFile, so the
// mapping lives as long as any tensor over it) when its data pointer is aligned for the dtype;
// otherwise, and for tensors with no elements, it gets its own CPU storage. Saving makes each
// tensor a contiguous CPU tensor and hands raw pointers to the writer.
#include "halo/tensor_io.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <cstring>

#include "halo/error.h"

namespace halo {
namespace {

// Contiguous CPU versions of `tensors` (kept alive by the caller) and writer entries over them;
// `destination` names the file or directory in messages.
std::vector<TensorToWrite> to_write(const std::string& destination, const NamedTensors& tensors,
                                    std::vector<at::Tensor>* storage) {
  storage->reserve(tensors.size());
  std::vector<TensorToWrite> entries;
  for (const auto& [name, tensor] : tensors) {
    const std::string context = cat(destination, ": tensor '", name, "'");
    if (!tensor.defined()) fail(context, ": undefined tensor");
    DType dtype;
    try {
      dtype = to_dtype(tensor.scalar_type());
    } catch (const Error& error) {
      fail(context, ": ", error.what());
    }
    const at::Tensor& cpu = storage->emplace_back(tensor.contiguous().cpu());
    entries.push_back(
        {name, dtype, std::vector<int64_t>(cpu.sizes().begin(), cpu.sizes().end()), cpu.data_ptr(), cpu.nbytes()});
  }
  return entries;
}

}  // namespace

at::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::F64:
      return at::kDouble;
    case DType::F32:
      return at::kFloat;
    case DType::F16:
      return at::kHalf;
    case DType::BF16:
      return at::kBFloat16;
    case DType::I64:
      return at::kLong;
    case DType::I32:
      return at::kInt;
    case DType::I16:
      return at::kShort;
    case DType::I8:
      return at::kChar;
    case DType::U8:
      return at::kByte;
    case DType::BOOL:
      return at::kBool;
  }
  fail("invalid halo::DType value ", static_cast<int>(dtype));
}

DType to_dtype(at::ScalarType type) {
  switch (type) {
    case at::kDouble:
      return DType::F64;
    case at::kFloat:
      return DType::F32;
    case at::kHalf:
      return DType::F16;
    case at::kBFloat16:
      return DType::BF16;
    case at::kLong:
      return DType::I64;
    case at::kInt:
      return DType::I32;
    case at::kShort:
      return DType::I16;
    case at::kChar:
      return DType::I8;
    case at::kByte:
      return DType::U8;
    case at::kBool:
      return DType::BOOL;
    default:
      fail("torch dtype ", type, " cannot be stored in safetensors by halo");
  }
}

at::Tensor entry_to_tensor(const WeightEntry& entry) {
  const TensorEntry& tensor = *entry.tensor;
  const auto options = at::TensorOptions().dtype(to_scalar_type(tensor.dtype)).device(at::kCPU);
  const size_t element_size = dtype_size(tensor.dtype);
  const bool aligned = reinterpret_cast<uintptr_t>(tensor.data) % element_size == 0;
  if (tensor.nbytes == 0 || !aligned) {
    at::Tensor copy = at::empty(tensor.shape, options);
    if (tensor.nbytes > 0) std::memcpy(copy.data_ptr(), tensor.data, tensor.nbytes);
    return copy;
  }
  // The mapping is private and writable, so handing out a non-const pointer is safe: writes
  // through the tensor copy the page instead of touching the file.
  std::shared_ptr<const SafetensorsFile> keep_mapped = entry.file;
  return at::from_blob(
      const_cast<void*>(tensor.data), tensor.shape, [keep_mapped](void*) {}, options);
}

std::map<std::string, at::Tensor> load_tensors(const std::string& dir_or_file) {
  WeightFiles files(dir_or_file);
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, entry] : files.entries()) tensors.emplace(name, entry_to_tensor(entry));
  return tensors;
}

void save_tensors(const std::string& path, const NamedTensors& tensors,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> storage;
  write_safetensors(path, to_write(path, tensors, &storage), metadata);
}

void save_weights(const std::string& dir, const NamedTensors& tensors, uint64_t max_shard_bytes,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> storage;
  write_weights(dir, to_write(dir, tensors, &storage), max_shard_bytes, metadata);
}

}  // namespace halo
