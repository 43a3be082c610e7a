// Device and dtype parsing; CUDA presence is asked of ATen's CUDA hooks.
#include "halo/device.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "halo/error.h"

namespace halo {

c10::Device parse_device(const std::string& name) {
  const bool has_cuda = at::hasCUDA() && at::getNumGPUs() > 0;
  if (name == "auto") return has_cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!has_cuda) usage_fail("--device ", name, ": no CUDA GPU is available here; use --device cpu");
    int index = 0;
    if (name.size() > 5) {
      try {
        index = std::stoi(name.substr(5));
      } catch (const std::exception&) {
        usage_fail("--device ", name, ": expected cuda:N with N a GPU index");
      }
    }
    if (index < 0 || index >= static_cast<int>(at::getNumGPUs())) {
      usage_fail("--device ", name, ": GPU index out of range (", at::getNumGPUs(), " GPUs present)");
    }
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  usage_fail("--device ", name, ": unknown device; use cpu, cuda, cuda:N or auto");
}

c10::ScalarType parse_compute_dtype(const std::string& name, const std::string& stored_dtype,
                                    const c10::Device& device) {
  std::string n = name;
  if (n == "auto") n = device.is_cuda() ? stored_dtype : "float32";
  if (n == "float32" || n == "fp32") return c10::kFloat;
  if (n == "bfloat16" || n == "bf16") return c10::kBFloat16;
  if (n == "float16" || n == "fp16") return c10::kHalf;
  usage_fail("--dtype ", name, ": unknown dtype; use float32, bfloat16, float16 or auto");
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) at::detail::getCUDAHooks().deviceSynchronize(device.index());
}

const char* scalar_type_name(c10::ScalarType type) {
  switch (type) {
    case c10::kFloat:
      return "float32";
    case c10::kBFloat16:
      return "bfloat16";
    case c10::kHalf:
      return "float16";
    case c10::kDouble:
      return "float64";
    default:
      return c10::toString(type);
  }
}

}  // namespace halo
