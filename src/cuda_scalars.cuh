// Device-side conversions between float32 and the 16-bit storage types (bfloat16, float16) for
// halo's CUDA kernels: they load 16-bit values, compute in float32 and round once on the way out.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace halo {

__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

// float32 -> T (bfloat16, float16, or float32 unchanged), rounding to nearest.
template <typename T>
__device__ __forceinline__ T from_float(float x) {
  if constexpr (std::is_same_v<T, __half>) return __float2half(x);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16(x);
  else return x;
}

}  // namespace halo
