// Flash-decoding attention on CUDA (contract: decode_attention.h). Two kernels:
// 1. split: grid (B*KV, splits). Block (b, kv head, split) walks the keys of its fixed range
//    [split*chunk, (split+1)*chunk) clipped to [padding[b], length), for all G = H/KV query heads
//    of its KV head at once, so each key and value row is read from memory exactly once (GQA
//    without repeating K/V). A key row is split over L lanes (L = D*sizeof(T)/16, at most 32),
//    each loading 16 bytes, so a warp reads 32/L whole consecutive rows (512 contiguous bytes)
//    per load; each lane issues the K and V loads of kUnroll rows before using any, and those of
//    its next kUnroll rows before computing with these (loads in flight during the math). Scores are
//    reduced over the L lanes by shuffles; softmax is online in float32 (log2 domain, scale*log2e
//    folded into q), per lane group, then merged across the groups of a warp (shuffles) and the
//    warps of the block (shared memory). It writes the normalized partial output [B,H,splits,D]
//    and its log-sum-exp [B,H,splits] (float32); a block whose range holds no valid key writes
//    lse = -inf only.
// 2. combine: one block per (b, h), one thread per element of D, merges the splits by their lse.
// `splits` depends only on the capacity and the SM count (about kBlocksPerSm blocks per SM when
// the cache is full, each at least kMinKeysPerSplit keys), so one CUDA graph serves every length;
// blocks past `length` exit after one store.
// Bytes: every valid K and V row once, 2*B*KV*length*D*sizeof(T); partials are B*H*splits*(D+1)*4
// bytes written and read (~0.5 MB at the sizes below). Qwen3-1.7B / HypeNet attention layers
// (KV = 8, D = 128, bf16), batch 1, 131072 keys: 8*131072*128*2*2 = 512 MiB per layer, a floor of
// ~0.16 ms per layer at the H100's ~3.35 TB/s: 28 layers (Qwen3-1.7B) 15.0 GB, ~4.5 ms per token;
// 7 layers (HypeNet-2B) 3.8 GB, ~1.1 ms. At 1M keys 4 GiB per layer: HypeNet-2B 30 GB, ~9 ms.
// Measured (H100, HypeNet-2B decode at 128K, docs/benchmarks.md): the 7 split kernels take 1.22 ms,
// 92 % of bandwidth (1.90 ms, 59 %, when each lane waited for its loads between tiles). The next
// tile's loads cost registers: 128 a thread for bf16, D = 128, G = 2 (78 before); only float32 with
// D = 256 and G = 8 spills.
#include "ops/decode_attention_cuda.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/clone.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "halo/error.h"

namespace halo {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kUnroll = 4;       // key steps whose loads are issued before any is used
constexpr int kBlocksPerSm = 4;  // blocks per SM when the whole capacity is valid
constexpr int64_t kMinKeysPerSplit = 256;
constexpr float kLog2e = 1.4426950408889634f;

// 16 bytes of T widened to float, and float narrowed to T.
template <typename T>
struct Widen;
template <>
struct Widen<float> {
  static constexpr int kCount = 4;
  __device__ static void apply(const uint4& raw, float* out) {
    out[0] = __uint_as_float(raw.x);
    out[1] = __uint_as_float(raw.y);
    out[2] = __uint_as_float(raw.z);
    out[3] = __uint_as_float(raw.w);
  }
  __device__ static float narrow(float x) { return x; }
};
template <>
struct Widen<__nv_bfloat16> {
  static constexpr int kCount = 8;
  __device__ static void apply(const uint4& raw, float* out) {
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(pairs[i]);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  }
  __device__ static __nv_bfloat16 narrow(float x) {
    return __float2bfloat16(x);
  }
};
template <>
struct Widen<__half> {
  static constexpr int kCount = 8;
  __device__ static void apply(const uint4& raw, float* out) {
    const __half2* pairs = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(pairs[i]);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  }
  __device__ static __half narrow(float x) {
    return __float2half(x);
  }
};

// How a key row of D elements of T is spread over the lanes of a warp.
template <typename T, int D>
struct RowLayout {
  static constexpr int kVec = Widen<T>::kCount;  // elements per load
  static constexpr int kLoadsPerRow = D / kVec;
  static constexpr int kLanesPerKey = kLoadsPerRow < 32 ? kLoadsPerRow : 32;  // L
  static constexpr int kLoadsPerLane = kLoadsPerRow / kLanesPerKey;
  static constexpr int kElements = kLoadsPerLane * kVec;  // of D, per lane
  static constexpr int kKeysPerWarp = 32 / kLanesPerKey;
  static constexpr int kKeysPerStep = kKeysPerWarp * kWarps;
  // Lane `part` of a key holds the loads part, part + L, ...: element e of load i is at
  // column (part + i*L)*kVec + e.
  __device__ static int column(int part, int i) { return (part + i * kLanesPerKey) * kVec; }
};

struct SplitParams {
  const void* q;  // [B,H,D] contiguous
  const void* k;
  const void* v;
  const int64_t* length;
  const int64_t* padding;  // [B] or null
  float* part_out;         // [B,H,splits,D]
  float* part_lse;         // [B,H,splits], log2 domain
  int64_t heads, kv_heads, capacity, splits, keys_per_split;
  int64_t k_stride_b, k_stride_h, k_stride_t, v_stride_b, v_stride_h, v_stride_t;  // elements
  float scale_log2;                                                                // scale * log2(e)
};

// The raw K and V loads of kUnroll key steps of one lane.
template <typename T, int D>
struct KeyTile {
  uint4 k[kUnroll][RowLayout<T, D>::kLoadsPerLane], v[kUnroll][RowLayout<T, D>::kLoadsPerLane];
};

// Issues the loads of the key steps from `step`: this lane's key of step u is
// step + u*kKeysPerStep + key; keys at or past `end` read as zeros.
template <typename T, int D>
__device__ inline void load_tile(KeyTile<T, D>& tile, const T* keys, const T* values, const SplitParams& p,
                                 int64_t step, int64_t end, int key, int part) {
  using R = RowLayout<T, D>;
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t j = step + u * R::kKeysPerStep + key;
#pragma unroll
    for (int i = 0; i < R::kLoadsPerLane; ++i) {
      tile.k[u][i] = j < end ? *reinterpret_cast<const uint4*>(keys + j * p.k_stride_t + R::column(part, i))
                             : make_uint4(0, 0, 0, 0);
      tile.v[u][i] = j < end ? *reinterpret_cast<const uint4*>(values + j * p.v_stride_t + R::column(part, i))
                             : make_uint4(0, 0, 0, 0);
    }
  }
}

__device__ inline float exp2_or_zero(float x, float max) {
  return x == -INFINITY ? 0.f : exp2f(x - max);
}

template <typename T, int D, int G>
__global__ void __launch_bounds__(kThreads) split_kernel(const SplitParams p) {
  using R = RowLayout<T, D>;
  constexpr int L = R::kLanesPerKey;
  const int64_t b = blockIdx.x / p.kv_heads, kv_head = blockIdx.x % p.kv_heads;
  const int64_t split = blockIdx.y;
  const int64_t length = min(*p.length, p.capacity);
  const int64_t begin = max(split * p.keys_per_split, p.padding != nullptr ? p.padding[b] : int64_t{0});
  const int64_t end = min((split + 1) * p.keys_per_split, length);
  const int64_t first_head = b * p.heads + kv_head * G;  // heads first_head .. first_head+G-1
  if (begin >= end) {
    if (threadIdx.x < G) p.part_lse[(first_head + threadIdx.x) * p.splits + split] = -INFINITY;
    return;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int slot = lane / L, part = lane % L;

  float q[G][R::kElements];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const T* row = static_cast<const T*>(p.q) + (first_head + g) * D;
#pragma unroll
    for (int i = 0; i < R::kLoadsPerLane; ++i) {
      Widen<T>::apply(*reinterpret_cast<const uint4*>(row + R::column(part, i)), &q[g][i * R::kVec]);
    }
#pragma unroll
    for (int e = 0; e < R::kElements; ++e) q[g][e] *= p.scale_log2;
  }
  float m[G], l[G], acc[G][R::kElements];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < R::kElements; ++e) acc[g][e] = 0.f;
  }

  const T* keys = static_cast<const T*>(p.k) + b * p.k_stride_b + kv_head * p.k_stride_h;
  const T* values = static_cast<const T*>(p.v) + b * p.v_stride_b + kv_head * p.v_stride_h;
  // `step` is uniform over the block, so every lane reaches every shuffle.
  const int key = warp * R::kKeysPerWarp + slot;
  constexpr int64_t kStride = kUnroll * R::kKeysPerStep;
  KeyTile<T, D> next;
  load_tile(next, keys, values, p, begin, end, key, part);
  for (int64_t step = begin; step < end; step += kStride) {
    const KeyTile<T, D> tile = next;
    if (step + kStride < end) load_tile(next, keys, values, p, step + kStride, end, key, part);
    bool valid[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) valid[u] = step + u * R::kKeysPerStep + key < end;
    float s[kUnroll][G];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float dot[G];
#pragma unroll
      for (int g = 0; g < G; ++g) dot[g] = 0.f;
#pragma unroll
      for (int i = 0; i < R::kLoadsPerLane; ++i) {
        float kf[R::kVec];
        Widen<T>::apply(tile.k[u][i], kf);
#pragma unroll
        for (int g = 0; g < G; ++g) {
#pragma unroll
          for (int e = 0; e < R::kVec; ++e) dot[g] = fmaf(q[g][i * R::kVec + e], kf[e], dot[g]);
        }
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
#pragma unroll
        for (int o = L / 2; o > 0; o /= 2) dot[g] += __shfl_xor_sync(0xffffffffu, dot[g], o);
        s[u][g] = valid[u] ? dot[g] : -INFINITY;
      }
    }
    float m_new[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      m_new[g] = m[g];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) m_new[g] = fmaxf(m_new[g], s[u][g]);
      const float correction = exp2_or_zero(m[g], m_new[g]);
      l[g] *= correction;
#pragma unroll
      for (int e = 0; e < R::kElements; ++e) acc[g][e] *= correction;
      m[g] = m_new[g];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float weight[G];
#pragma unroll
      for (int g = 0; g < G; ++g) {
        weight[g] = exp2_or_zero(s[u][g], m[g]);
        l[g] += weight[g];
      }
#pragma unroll
      for (int i = 0; i < R::kLoadsPerLane; ++i) {
        float vf[R::kVec];
        Widen<T>::apply(tile.v[u][i], vf);
#pragma unroll
        for (int g = 0; g < G; ++g) {
#pragma unroll
          for (int e = 0; e < R::kVec; ++e) acc[g][i * R::kVec + e] = fmaf(weight[g], vf[e], acc[g][i * R::kVec + e]);
        }
      }
    }
  }

  // Merge the key slots of the warp (lanes L apart hold the same columns).
#pragma unroll
  for (int o = L; o < 32; o *= 2) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float m_other = __shfl_xor_sync(0xffffffffu, m[g], o);
      const float l_other = __shfl_xor_sync(0xffffffffu, l[g], o);
      const float m_new = fmaxf(m[g], m_other);
      const float mine = exp2_or_zero(m[g], m_new), theirs = exp2_or_zero(m_other, m_new);
      l[g] = l[g] * mine + l_other * theirs;
#pragma unroll
      for (int e = 0; e < R::kElements; ++e) {
        const float other = __shfl_xor_sync(0xffffffffu, acc[g][e], o);
        acc[g][e] = acc[g][e] * mine + other * theirs;
      }
      m[g] = m_new;
    }
  }
  // Then the warps of the block.
  __shared__ float warp_max[kWarps][G], warp_sum[kWarps][G], warp_acc[kWarps][G][D];
  if (slot == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
#pragma unroll
      for (int i = 0; i < R::kLoadsPerLane; ++i) {
#pragma unroll
        for (int e = 0; e < R::kVec; ++e) warp_acc[warp][g][R::column(part, i) + e] = acc[g][i * R::kVec + e];
      }
      if (part == 0) {
        warp_max[warp][g] = m[g];
        warp_sum[warp][g] = l[g];
      }
    }
  }
  __syncthreads();
  for (int index = threadIdx.x; index < G * D; index += kThreads) {
    const int g = index / D, d = index % D;
    float max = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) max = fmaxf(max, warp_max[w][g]);
    float sum = 0.f, out = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float f = exp2_or_zero(warp_max[w][g], max);
      sum += warp_sum[w][g] * f;
      out += warp_acc[w][g][d] * f;
    }
    const int64_t slot_index = (first_head + g) * p.splits + split;
    p.part_out[slot_index * D + d] = out / sum;
    if (d == 0) p.part_lse[slot_index] = max + log2f(sum);
  }
}

// One block per (b, h), one thread per column: the splits merged by their log-sum-exp.
template <typename T, int D>
__global__ void __launch_bounds__(D)
    combine_kernel(const float* __restrict__ part_out, const float* __restrict__ part_lse, T* __restrict__ out,
                   int64_t splits) {
  const int64_t row = blockIdx.x;
  const float* lse = part_lse + row * splits;
  float max = -INFINITY;
  for (int64_t s = 0; s < splits; ++s) max = fmaxf(max, lse[s]);
  float sum = 0.f, value = 0.f;
  for (int64_t s = 0; s < splits; ++s) {
    if (lse[s] == -INFINITY) continue;  // an empty split: its partial output was never written
    const float w = exp2f(lse[s] - max);
    sum += w;
    value = fmaf(w, part_out[(row * splits + s) * D + threadIdx.x], value);
  }
  out[row * D + threadIdx.x] = Widen<T>::narrow(sum > 0.f ? value / sum : 0.f);
}

int64_t split_count(int64_t rows, int64_t capacity) {
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t wanted = (kBlocksPerSm * sms + rows - 1) / rows;
  const int64_t most = (capacity + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  return std::max<int64_t>(1, std::min(wanted, most));
}

template <typename T, int D, int G>
void launch(const SplitParams& p, const at::Tensor& out) {
  const int64_t rows = out.size(0) * p.kv_heads;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  split_kernel<T, D, G><<<dim3(static_cast<unsigned>(rows), static_cast<unsigned>(p.splits)), kThreads, 0, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  combine_kernel<T, D><<<static_cast<unsigned>(out.size(0) * p.heads), D, 0, stream>>>(
      p.part_out, p.part_lse, static_cast<T*>(out.data_ptr()), p.splits);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T, int D>
void launch_for_groups(int64_t groups, const SplitParams& p, const at::Tensor& out) {
  switch (groups) {
    case 1:
      return launch<T, D, 1>(p, out);
    case 2:
      return launch<T, D, 2>(p, out);
    case 4:
      return launch<T, D, 4>(p, out);
    case 8:
      return launch<T, D, 8>(p, out);
  }
}

template <typename T>
void launch_for_shape(int64_t head_dim, int64_t groups, const SplitParams& p, const at::Tensor& out) {
  switch (head_dim) {
    case 32:
      return launch_for_groups<T, 32>(groups, p, out);
    case 64:
      return launch_for_groups<T, 64>(groups, p, out);
    case 128:
      return launch_for_groups<T, 128>(groups, p, out);
    case 256:
      return launch_for_groups<T, 256>(groups, p, out);
  }
}

bool rows_aligned(const at::Tensor& x) {
  const int64_t bytes = static_cast<int64_t>(x.element_size());
  return reinterpret_cast<std::uintptr_t>(x.data_ptr()) % 16 == 0 && x.stride(-1) == 1 &&
         (x.stride(0) * bytes) % 16 == 0 && (x.stride(1) * bytes) % 16 == 0 && (x.stride(2) * bytes) % 16 == 0;
}

}  // namespace

bool decode_attention_cuda_supported(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache) {
  if (!q.is_cuda() || q.dim() != 3 || k_cache.dim() != 4 || k_cache.device() != q.device() ||
      v_cache.device() != q.device() || v_cache.sizes() != k_cache.sizes())
    return false;
  const at::ScalarType type = q.scalar_type();
  if (k_cache.scalar_type() != type || v_cache.scalar_type() != type ||
      (type != at::kFloat && type != at::kHalf && type != at::kBFloat16))
    return false;
  const int64_t d = q.size(2), heads = q.size(1), kv = k_cache.size(1);
  if (d != k_cache.size(3) || (d != 32 && d != 64 && d != 128 && d != 256)) return false;
  if (kv < 1 || heads % kv != 0) return false;
  const int64_t groups = heads / kv;
  if (groups != 1 && groups != 2 && groups != 4 && groups != 8) return false;
  return q.size(0) >= 1 && k_cache.size(0) == q.size(0) && k_cache.size(2) >= 1 && rows_aligned(k_cache) &&
         rows_aligned(v_cache);
}

at::Tensor decode_attention_cuda(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                 const at::Tensor& length, const at::Tensor& padding, double scale) {
  if (!decode_attention_cuda_supported(q, k_cache, v_cache))
    fail("decode_attention_cuda: unsupported shapes q ", q.sizes(), ", k ", k_cache.sizes(), ", v ", v_cache.sizes(),
         " (", q.scalar_type(), ")");
  if (length.numel() != 1 || length.scalar_type() != at::kLong || length.device() != q.device())
    fail("decode_attention_cuda: length must be one int64 on ", q.device(), ", got ", length.sizes(), " ",
         length.scalar_type(), " on ", length.device());
  const int64_t batch = q.size(0), heads = q.size(1), d = q.size(2), kv = k_cache.size(1);
  if (padding.defined() && (padding.dim() != 1 || padding.size(0) != batch || padding.scalar_type() != at::kLong ||
                            padding.device() != q.device() || !padding.is_contiguous()))
    fail("decode_attention_cuda: padding must be contiguous int64 [", batch, "] on ", q.device(), ", got ",
         padding.sizes(), " ", padding.scalar_type(), " on ", padding.device());
  const c10::cuda::CUDAGuard guard(q.device());
  // A contiguous q whose rows are 16-byte aligned (D >= 32 makes every row so once the base is).
  const bool base_aligned = reinterpret_cast<std::uintptr_t>(q.data_ptr()) % 16 == 0;
  const at::Tensor query = q.is_contiguous() && base_aligned ? q : q.clone(at::MemoryFormat::Contiguous);
  const at::Tensor count = length.contiguous();
  const int64_t capacity = k_cache.size(2);
  SplitParams p{};
  p.q = query.data_ptr();
  p.k = k_cache.data_ptr();
  p.v = v_cache.data_ptr();
  p.length = count.data_ptr<int64_t>();
  p.padding = padding.defined() ? padding.data_ptr<int64_t>() : nullptr;
  p.heads = heads;
  p.kv_heads = kv;
  p.capacity = capacity;
  p.splits = split_count(batch * kv, capacity);
  p.keys_per_split = (capacity + p.splits - 1) / p.splits;
  p.k_stride_b = k_cache.stride(0);
  p.k_stride_h = k_cache.stride(1);
  p.k_stride_t = k_cache.stride(2);
  p.v_stride_b = v_cache.stride(0);
  p.v_stride_h = v_cache.stride(1);
  p.v_stride_t = v_cache.stride(2);
  p.scale_log2 = static_cast<float>(scale) * kLog2e;
  const auto f32 = q.options().dtype(at::kFloat);
  at::Tensor part_out = at::empty({batch, heads, p.splits, d}, f32);
  at::Tensor part_lse = at::empty({batch, heads, p.splits}, f32);
  p.part_out = part_out.data_ptr<float>();
  p.part_lse = part_lse.data_ptr<float>();
  at::Tensor out = at::empty({batch, heads, d}, q.options());
  const int64_t groups = heads / kv;
  switch (q.scalar_type()) {
    case at::kFloat:
      launch_for_shape<float>(d, groups, p, out);
      break;
    case at::kHalf:
      launch_for_shape<__half>(d, groups, p, out);
      break;
    default:
      launch_for_shape<__nv_bfloat16>(d, groups, p, out);
      break;
  }
  return out;
}

}  // namespace halo
