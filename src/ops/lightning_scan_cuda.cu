// The chunk-state scan of chunked lightning attention on CUDA (contract: lightning_scan.h).
// Work split: one thread owns VEC consecutive elements (16 bytes; one element when Dk*Dv or an
// address does not allow it) of one (b,h) state and walks the N chunks in order, the state in
// registers; a block of 256 threads covers 256*VEC elements of one (b,h), the grid covers
// B*H*ceil(Dk*Dv / (256*VEC)) blocks. Every warp reads and writes 512 contiguous bytes per
// chunk. The walk is sequential per element, so each thread issues the loads of kDepth chunks
// before it stores the first of them, to keep enough bytes in flight when B*H is small.
// Bytes: every element of x is read once and written once, 2*B*H*N*Dk*Dv*sizeof(T) (plus the
// two [B,H,Dk,Dv] edges). With B=4, H=16, T=16384, chunk 64 (N=256), Dk=Dv=128, float32: 1.07 GB
// read + 1.07 GB written, a floor of ~0.64 ms at the H100's ~3.35 TB/s; B=8, T=512: 134 MB, ~40 us.
#include "ops/lightning_scan_cuda.h"

#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cstdint>

#include "halo/error.h"

namespace halo {
namespace {

constexpr int kThreads = 256;
constexpr int kDepth = 4;

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads)
    scan_kernel(T* __restrict__ x, const T* __restrict__ edge, T* __restrict__ last, const T* __restrict__ decay,
                int64_t heads, int64_t chunks, int64_t elements, int64_t tiles, bool reverse) {
  using P = Pack<T, VEC>;
  const int64_t bh = blockIdx.x / tiles;
  const int64_t e = ((blockIdx.x % tiles) * kThreads + threadIdx.x) * VEC;
  if (e >= elements) return;
  const T g = decay[bh % heads];
  P s = *reinterpret_cast<const P*>(edge + bh * elements + e);
  // Chunk i of the walk lives at first + i * step.
  const int64_t step = reverse ? -elements : elements;
  T* first = x + (bh * chunks + (reverse ? chunks - 1 : 0)) * elements + e;
  for (int64_t i0 = 0; i0 < chunks; i0 += kDepth) {
    P u[kDepth];
#pragma unroll
    for (int j = 0; j < kDepth; ++j)
      if (i0 + j < chunks) u[j] = *reinterpret_cast<const P*>(first + (i0 + j) * step);
#pragma unroll
    for (int j = 0; j < kDepth; ++j) {
      if (i0 + j >= chunks) break;
      *reinterpret_cast<P*>(first + (i0 + j) * step) = s;
#pragma unroll
      for (int c = 0; c < VEC; ++c) s.v[c] = g * s.v[c] + u[j].v[c];
    }
  }
  *reinterpret_cast<P*>(last + bh * elements + e) = s;
}

template <typename T, int VEC>
void launch(const at::Tensor& x, const at::Tensor& decay, const at::Tensor& edge, const at::Tensor& last,
            bool reverse) {
  const int64_t heads = x.size(1), chunks = x.size(2), elements = x.size(3) * x.size(4);
  const int64_t tiles = (elements / VEC + kThreads - 1) / kThreads;
  const int64_t blocks = x.size(0) * heads * tiles;
  scan_kernel<T, VEC><<<blocks, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      x.data_ptr<T>(), edge.data_ptr<T>(), last.data_ptr<T>(), decay.data_ptr<T>(), heads, chunks, elements, tiles,
      reverse);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

void lightning_scan_cuda(const at::Tensor& x, const at::Tensor& decay, const at::Tensor& edge, const at::Tensor& last,
                         bool reverse) {
  if (!x.is_cuda() || x.dim() != 5 || x.size(2) < 1 || !x.is_contiguous() || !edge.is_contiguous() ||
      !last.is_contiguous() || !decay.is_contiguous() || edge.scalar_type() != x.scalar_type() ||
      last.scalar_type() != x.scalar_type() || decay.scalar_type() != x.scalar_type())
    fail("lightning_scan_cuda: wants contiguous CUDA tensors of one dtype, x [B,H,N,Dk,Dv] with N >= 1, got ",
         x.sizes(), " ", x.scalar_type(), " on ", x.device());
  if (x.numel() == 0) return;  // Dk or Dv is 0: nothing to walk
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t elements = x.size(3) * x.size(4);
  auto aligned = [](const at::Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0; };
  const bool vectors = aligned(x) && aligned(edge) && aligned(last);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lightning_scan_cuda", [&] {
    constexpr int kVec = 16 / sizeof(scalar_t);
    if (vectors && elements % kVec == 0)
      launch<scalar_t, kVec>(x, decay, edge, last, reverse);
    else
      launch<scalar_t, 1>(x, decay, edge, last, reverse);
  });
}

}  // namespace halo
