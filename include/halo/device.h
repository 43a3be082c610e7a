// Where and in which precision a model runs: parsing of --device and --dtype with clear errors.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace halo {

// "cpu", "cuda", "cuda:N" or "auto" (cuda when a GPU is present, else cpu). Fails with a usage
// error when CUDA is asked for and not available.
c10::Device parse_device(const std::string& name);

// "float32" | "fp32" | "bfloat16" | "bf16" | "float16" | "fp16"; "auto" picks the checkpoint's
// stored dtype on CUDA and float32 on CPU.
c10::ScalarType parse_compute_dtype(const std::string& name, const std::string& stored_dtype,
                                    const c10::Device& device);

const char* scalar_type_name(c10::ScalarType type);

// Waits for all work queued on `device` (no-op on the CPU), for timing.
void synchronize(const c10::Device& device);

}  // namespace halo
