// One lightning decode step in one kernel (contract: lightning_decode_cuda.h). Grid (D/32 column
// tiles, H, B), 128 threads: a block normalizes and rotates its head's q and k (D values, one
// thread each, block reductions for the two RMS), keeps them in shared memory, then walks the
// 32 state columns of its tile: lane j of warp w updates S[i][j] for the rows i = w, w+4, ...
// (each warp reads and writes 128 contiguous bytes per row) and accumulates q~_i S[i][j]; the
// four warps' sums meet in shared memory. Bytes per layer and token: the float32 state read and
// written once (B*H*D*D*8: 2 MiB for H=16, D=128), a few KB of q/k/v: ~1 us at the HBM's rate,
// so the kernel is bound by its own latency (~5 us on an H100), where the ATen form was 13 launches.
#include "ops/lightning_decode_cuda.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "halo/error.h"
#include "ops/cuda_scalars.cuh"

namespace halo {
namespace {

constexpr int kThreads = 128, kWarps = kThreads / 32, kTile = 32;

struct Params {
  const void *q, *k, *v, *q_norm, *k_norm, *cos, *sin;
  const float* decay;
  float* state;
  void* out;
  int heads, kv_heads;
  int64_t table_stride;  // elements between the batch rows of the RoPE tables (0: shared)
  float eps, scale;
};

// The sum over the block of one value per thread (every thread gets it).
__device__ __forceinline__ float block_sum(float x, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  __syncthreads();  // scratch may still be read by an earlier call
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  float total = 0;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) total += scratch[w];
  return total;
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) lightning_decode_kernel(const Params p) {
  __shared__ float qn[D], kn[D], qr[D], kr[D], scratch[kWarps], partial[kWarps][kTile];
  const int b = blockIdx.z, h = blockIdx.y, j0 = blockIdx.x * kTile;
  const int kv = h / (p.heads / p.kv_heads), i = threadIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const T* q = static_cast<const T*>(p.q) + (static_cast<int64_t>(b) * p.heads + h) * D;
  const T* k = static_cast<const T*>(p.k) + (static_cast<int64_t>(b) * p.kv_heads + kv) * D;
  const T* v = static_cast<const T*>(p.v) + (static_cast<int64_t>(b) * p.kv_heads + kv) * D;
  // RMSNorm (float32 inside, one rounding), as the fused kernel of the ATen path.
  const float qi = i < D ? to_float(q[i]) : 0.f, ki = i < D ? to_float(k[i]) : 0.f;
  const float q_ss = block_sum(qi * qi, scratch), k_ss = block_sum(ki * ki, scratch);
  if (i < D) {
    if (p.q_norm != nullptr) {
      qn[i] = to_float(from_float<T>(qi * rsqrtf(q_ss / D + p.eps) * to_float(static_cast<const T*>(p.q_norm)[i])));
      kn[i] = to_float(from_float<T>(ki * rsqrtf(k_ss / D + p.eps) * to_float(static_cast<const T*>(p.k_norm)[i])));
    } else {
      qn[i] = qi;
      kn[i] = ki;
    }
  }
  __syncthreads();
  // Rotate-half RoPE (float32, one rounding), then the scale folded into q as the recurrence does.
  if (i < D) {
    float qv = qn[i], kv_value = kn[i];
    if (p.cos != nullptr) {
      const int64_t t = b * p.table_stride + i;
      const float c = to_float(static_cast<const T*>(p.cos)[t]), s = to_float(static_cast<const T*>(p.sin)[t]);
      const int partner = i < D / 2 ? i + D / 2 : i - D / 2;
      const float sign = i < D / 2 ? -1.f : 1.f;
      qv = to_float(from_float<T>(qn[i] * c + sign * qn[partner] * s));
      kv_value = to_float(from_float<T>(kn[i] * c + sign * kn[partner] * s));
    }
    qr[i] = qv * p.scale;
    kr[i] = kv_value;
  }
  __syncthreads();
  const float gamma = p.decay[h], vj = to_float(v[j0 + lane]);
  float* rows = p.state + ((static_cast<int64_t>(b) * p.heads + h) * D) * D + j0 + lane;
  float acc = 0.f;
#pragma unroll 8
  for (int r = warp; r < D; r += kWarps) {
    const float s = kr[r] * vj + rows[static_cast<int64_t>(r) * D] * gamma;
    rows[static_cast<int64_t>(r) * D] = s;
    acc += qr[r] * s;
  }
  partial[warp][lane] = acc;
  __syncthreads();
  if (warp == 0) {
    float o = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) o += partial[w][lane];
    static_cast<T*>(p.out)[(static_cast<int64_t>(b) * p.heads + h) * D + j0 + lane] = from_float<T>(o);
  }
}

bool is_16bit(const at::Tensor& x) {
  return x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf;
}

}  // namespace

bool lightning_decode_cuda_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const at::Tensor& q_norm, const at::Tensor& k_norm, const at::Tensor& state,
                                     const at::Tensor& cos) {
  if (!q.is_cuda() || !is_16bit(q) || q.dim() != 2 || state.dim() != 4 || !state.is_contiguous() ||
      state.scalar_type() != at::kFloat || state.device() != q.device())
    return false;
  const int64_t b = state.size(0), h = state.size(1), d = state.size(2);
  if ((d != 64 && d != 128) || state.size(3) != d || q.size(0) != b || q.size(1) != h * d) return false;
  for (const at::Tensor* x : {&k, &v}) {
    if (x->dim() != 2 || x->scalar_type() != q.scalar_type() || x->device() != q.device() || x->size(0) != b ||
        x->size(1) % d != 0)
      return false;
  }
  const int64_t kv = k.size(1) / d;
  if (v.size(1) != k.size(1) || h % kv != 0 || !q.is_contiguous() || !k.is_contiguous() || !v.is_contiguous())
    return false;
  for (const at::Tensor* w : {&q_norm, &k_norm}) {
    if (w->defined() &&
        (w->numel() != d || w->scalar_type() != q.scalar_type() || w->device() != q.device() || !w->is_contiguous()))
      return false;
  }
  return !cos.defined() || (cos.scalar_type() == q.scalar_type() && cos.device() == q.device() && cos.is_contiguous() &&
                            (cos.numel() == d || cos.numel() == b * d));
}

at::Tensor lightning_decode_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& q_norm, const at::Tensor& k_norm, double eps, const at::Tensor& cos,
                                 const at::Tensor& sin, const at::Tensor& decay, double scale,
                                 const at::Tensor& state) {
  if (!lightning_decode_cuda_supported(q, k, v, q_norm, k_norm, state, cos))
    fail("lightning_decode_cuda: unsupported inputs q ", q.sizes(), ", k ", k.sizes(), ", state ", state.sizes());
  const int64_t b = state.size(0), h = state.size(1), d = state.size(2);
  if (q_norm.defined() != k_norm.defined() || cos.defined() != sin.defined() ||
      (sin.defined() && (!sin.is_contiguous() || sin.numel() != cos.numel() || sin.scalar_type() != cos.scalar_type())))
    fail("lightning_decode_cuda: give both q/k norms and both RoPE tables, or neither");
  if (decay.numel() != h || decay.scalar_type() != at::kFloat || !decay.is_contiguous())
    fail("lightning_decode_cuda: decay must be [", h, "] float32");
  const c10::cuda::CUDAGuard guard(q.device());
  at::Tensor out = at::empty({b, h * d}, q.options());
  Params p{q.data_ptr(),
           k.data_ptr(),
           v.data_ptr(),
           q_norm.defined() ? q_norm.data_ptr() : nullptr,
           k_norm.defined() ? k_norm.data_ptr() : nullptr,
           cos.defined() ? cos.data_ptr() : nullptr,
           sin.defined() ? sin.data_ptr() : nullptr,
           decay.data_ptr<float>(),
           state.data_ptr<float>(),
           out.data_ptr(),
           static_cast<int>(h),
           static_cast<int>(k.size(1) / d),
           cos.defined() && cos.numel() == b * d && b > 1 ? d : 0,
           static_cast<float>(eps),
           static_cast<float>(scale)};
  const dim3 grid(static_cast<unsigned>(d / kTile), static_cast<unsigned>(h), static_cast<unsigned>(b));
  auto stream = at::cuda::getCurrentCUDAStream();
  auto launch = [&](auto tag, auto dim) {
    using T = decltype(tag);
    lightning_decode_kernel<T, decltype(dim)::value><<<grid, kThreads, 0, stream>>>(p);
  };
  const bool bf16 = q.scalar_type() == at::kBFloat16;
  if (d == 128) {
    bf16 ? launch(__nv_bfloat16{}, std::integral_constant<int, 128>{})
         : launch(__half{}, std::integral_constant<int, 128>{});
  } else {
    bf16 ? launch(__nv_bfloat16{}, std::integral_constant<int, 64>{})
         : launch(__half{}, std::integral_constant<int, 64>{});
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace halo
