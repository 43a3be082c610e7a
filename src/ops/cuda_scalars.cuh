// Device-side conversions between float32 and the 16-bit storage types (bfloat16, float16) for
// halo's CUDA kernels: they load 16-bit values, compute in float32 and round once on the way out.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace halo {

__device__ __forceinline__ float to_float(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
__device__ __forceinline__ float to_float(__half x) {
  return __half2float(x);
}

// float32 -> T (bfloat16, float16, or float32 unchanged), rounding to nearest.
template <typename T>
__device__ __forceinline__ T from_float(float x) {
  if constexpr (std::is_same_v<T, __half>)
    return __float2half(x);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __float2bfloat16(x);
  else
    return x;
}

// Two 16-bit values packed in 32 bits (the first in the low half) <-> two floats.
template <typename T>
__device__ __forceinline__ float2 unpack_pair(uint32_t pair) {
  if constexpr (std::is_same_v<T, __half>)
    return __half22float2(*reinterpret_cast<const __half2*>(&pair));
  else
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&pair));
}
template <typename T>
__device__ __forceinline__ uint32_t pack_pair(float first, float second) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 v = __floats2half2_rn(first, second);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __nv_bfloat162 v = __floats2bfloat162_rn(first, second);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

}  // namespace halo
