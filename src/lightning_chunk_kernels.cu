// Fused chunked lightning attention for 16-bit inputs (contract: lightning_chunk_kernels.h), in
// the shape of flash-linear-attention's chunk kernels, on tensor cores through mma.sync with
// ldmatrix loads (mma_fragments.cuh; bf16/fp16 operands, float32 accumulators). Three kernels:
// - recurrence: one block per (b,h, 64-row x BV-column tile of the state) walks the chunks in
//   order with its state tile in registers, writing the state entering each chunk (16-bit) and
//   adding (x_n . w)^T y_n; the next chunks' rows (2, or 5 for narrow tiles) arrive by cp.async
//   during this one's product. Run forward over (k, v) for S_n and in reverse over (q, dout) for G_{n+1}.
// - forward: one block per (chunk, b,h): q, k, v arrive by cp.async (v last, while q k^T runs)
//   and S_n is prefetched into L2; scores q k^T on chip, decayed causal mask, then
//   (masked scores) v + (q . a) S_n with S_n read from L2 straight into fragments, written into
//   the output's strides through a float32 staging tile.
// - backward: one block per (chunk, b,h): dout and v, then q and k arrive by cp.async, S_n and
//   G_{n+1} are prefetched into L2; both score matrices on chip, then dq, dk, dv in turn
//   through one float32 staging tile.
// Scores and states are rounded to the inputs' dtype before they meet the tensor cores, as in
// the reference's Triton kernels; the recurrences themselves accumulate in float32.
// Work, B=4 H=16 T=16384 D=128 (B*H*T = 2^20 tokens): forward per token 2*64*128 (q k^T,
// causal half counted whole) + 2*64*128 (p v) + 2*128*128 (k^T v) + 2*128*128 (q S) = 98 KFLOP,
// 103 GFLOP; backward ~2.5x; ~360 GFLOP in all, 0.45 ms at ~800 TFLOP/s. Bytes: q, k, v, out,
// dout, dq, dk, dv once each (2 bytes x 128 per token: 2.1 GB) plus the 16-bit states written
// three times and read twice (N x 32 KB per (b,h): 0.5 GB each, 2.7 GB) = 4.8 GB, 1.6 ms at
// ~3 TB/s: the problem is bound by memory, and the states are most of it.
#include "lightning_chunk_kernels.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "cuda_scalars.cuh"
#include "halo/error.h"
#include "mma_fragments.cuh"

namespace halo {
namespace {

constexpr int kC = 64;    // tokens per chunk
constexpr int kPad = 8;   // 16-bit elements of padding per shared row: rows start 4 banks apart
constexpr int kFPad = 8;  // float padding per shared row: a half-warp's 8-byte accumulator stores hit 32 banks
constexpr int kLP = kC + kFPad;  // float score rows
constexpr int kLM = kC + kPad;   // 16-bit score rows

// [B,H,T,D] rows with the last dim contiguous.
template <typename T>
struct Rows {
  T* data;
  int64_t sb, sh, st;
  __device__ T* row(int b, int h, int64_t t) const { return data + b * sb + h * sh + t * st; }
};

// The 16x16 tile (row, col) of a logical matrix stored row-major or transposed (col-major).
template <typename Layout, typename T>
__device__ __forceinline__ const T* tile(const T* base, int ld, int row, int col) {
  if constexpr (std::is_same_v<Layout, RowMajor>) return base + 16 * row * ld + 16 * col;
  else return base + 16 * col * ld + 16 * row;
}

// acc[j] += A(row tile rt, k tiles [k0, k1)) x B(those k tiles, col tile c0 + j), j < N.
template <typename LA, typename LB, int N, typename T>
__device__ __forceinline__ void mma_tiles(Acc (&acc)[N], const T* a, int lda, const T* b, int ldb, int rt, int c0,
                                          int k0, int k1) {
  FragA<T, LA> fa;
  FragB<T, LB> fb;
  for (int kk = k0; kk < k1; ++kk) {
    load(fa, tile<LA>(a, lda, rt, kk), lda);
#pragma unroll
    for (int j = 0; j < N; ++j) {
      load(fb, tile<LB>(b, ldb, kk, c0 + j), ldb);
      mma(acc[j], fa, fb);
    }
  }
}

// cp.async of 16 bytes, zero-filled when `bytes` is 0 (rows past the sequence).
__device__ __forceinline__ void copy_async(void* dst, const void* src, int bytes) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void copy_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Rows [t0, t0 + valid) of x, columns [0, W), into shared dst [kC][ld] by cp.async (rows past
// valid are zeros); the caller commits and waits.
template <int W, int kThreads, typename T>
__device__ __forceinline__ void load_rows_async(T* dst, int ld, const Rows<T>& x, int b, int h, int64_t t0, int valid) {
  constexpr int kVecs = W / 8;
#pragma unroll
  for (int i = threadIdx.x; i < kC * kVecs; i += kThreads) {
    const int r = i / kVecs, c = (i % kVecs) * 8;
    copy_async(dst + r * ld + c, x.row(b, h, t0 + min(r, valid - 1)) + c, r < valid ? 16 : 0);
  }
}

// Asks L2 for a [D][D] 16-bit state (read later straight into fragments) while the rows load.
template <int D, int kThreads, typename T>
__device__ __forceinline__ void prefetch_state(const T* state) {
  constexpr int kLines = D * D * 2 / 128;
#pragma unroll
  for (int i = threadIdx.x; i < kLines; i += kThreads)
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(reinterpret_cast<const char*>(state) + 128 * i));
}

// x[r][c] *= weight(r) over a shared [kC][W] tile, 8 values (one weight) per 16-byte access.
template <int W, int kThreads, typename T, typename Weight>
__device__ __forceinline__ void scale_rows(T* x, int ld, Weight weight) {
  constexpr int kVecs = W / 8;
#pragma unroll
  for (int i = threadIdx.x; i < kC * kVecs; i += kThreads) {
    const int r = i / kVecs, c = (i % kVecs) * 8;
    const float w = weight(r);
    alignas(16) T v[8];
    *reinterpret_cast<uint4*>(v) = *reinterpret_cast<const uint4*>(x + r * ld + c);
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = from_float<T>(to_float(v[e]) * w);
    *reinterpret_cast<uint4*>(x + r * ld + c) = *reinterpret_cast<const uint4*>(v);
  }
}

// Shared float [rows][ld] -> 16-bit destination rows (row r at dst(r)), 8 values per store.
template <int W, int kThreads, typename T, typename Dst>
__device__ __forceinline__ void store_rows(Dst dst, int rows, const float* src, int ld) {
  constexpr int kVecs = W / 8;
  for (int i = threadIdx.x; i < rows * kVecs; i += kThreads) {
    const int r = i / kVecs, c = (i % kVecs) * 8;
    alignas(16) T v[8];
    const float4 lo = *reinterpret_cast<const float4*>(src + r * ld + c);
    const float4 hi = *reinterpret_cast<const float4*>(src + r * ld + c + 4);
    v[0] = from_float<T>(lo.x), v[1] = from_float<T>(lo.y), v[2] = from_float<T>(lo.z), v[3] = from_float<T>(lo.w);
    v[4] = from_float<T>(hi.x), v[5] = from_float<T>(hi.y), v[6] = from_float<T>(hi.z), v[7] = from_float<T>(hi.w);
    *reinterpret_cast<uint4*>(dst(r) + c) = *reinterpret_cast<const uint4*>(v);
  }
}

// Scores [kC][kLP] (float, the tiles on or below the diagonal written) -> masked 16-bit
// [kC][kLM]: scale g^(i-j) for j <= i, else 0.
template <int kThreads, typename T>
__device__ __forceinline__ void mask_scores(T* dst, const float* src, float scale, float log2g) {
  for (int i = threadIdx.x; i < kC * kC; i += kThreads) {
    const int r = i / kC, c = i % kC;
    dst[r * kLM + c] = from_float<T>(c <= r ? src[r * kLP + c] * scale * exp2f((r - c) * log2g) : 0.f);
  }
}

// Scores x y^T of one chunk into float [kC][kLP]: the 10 tiles on or below the diagonal, each
// warp of `warps` taking its share.
template <int D, typename T>
__device__ __forceinline__ void chunk_scores(float* dst, const T* x, const T* y, int ld, int warp, int warps) {
  for (int t = warp; t < 16; t += warps) {
    const int rt = t / 4, ct = t % 4;
    if (ct > rt) continue;
    Acc acc[1];
    zero(acc);
    mma_tiles<RowMajor, ColMajor>(acc, x, ld, y, ld, rt, ct, 0, D / 16);
    store(dst + 16 * rt * kLP + 16 * ct, kLP, acc[0]);
  }
}

template <int BV>
struct RecurrenceSmem {
  // The narrow tiles serve grids of at most two blocks per SM, each walking its chunks alone:
  // five chunks in flight there instead of two.
  static constexpr int kStages = BV == 32 ? 6 : 3, BK = 64, LX = BK + kPad, LY = BV + kPad, LH = BV + kFPad;
  static constexpr int x = 0, y = x + kStages * kC * LX * 2, hs = y + kStages * kC * LY * 2, bytes = hs + BK * LH * 4;
};

// The state tile walk. Chunk rows arrive through a kStages-deep cp.async pipeline (kStages - 1
// chunks in flight while one is multiplied); each thread scales the x rows it copied itself.
template <typename T, int D, int BV>
__global__ void __launch_bounds__(128)
    recurrence_kernel(Rows<T> x, Rows<T> y, const float* __restrict__ gamma, const float* __restrict__ edge,
                      float* __restrict__ last, T* __restrict__ states, int heads, int64_t len, int chunks,
                      float scale, bool reverse) {
  using S = RecurrenceSmem<BV>;
  constexpr int kThreads = 128, BK = S::BK, LX = S::LX, LY = S::LY, LH = S::LH, kStages = S::kStages;
  constexpr int kN = BV / 16;  // warp w owns row tile w of the state tile, all its column tiles
  constexpr int kVx = kC * BK / 8 / kThreads, kVy = kC * BV / 8 / kThreads;
  extern __shared__ __align__(128) unsigned char smem[];
  T* xbuf = reinterpret_cast<T*>(smem + S::x);
  T* ybuf = reinterpret_cast<T*>(smem + S::y);
  float* hs = reinterpret_cast<float*>(smem + S::hs);
  const int bh = blockIdx.z, b = bh / heads, h = bh % heads;
  const int k0 = blockIdx.y * BK, v0 = blockIdx.x * BV, warp = threadIdx.x / 32;
  const float log2g = log2f(gamma[h]);
  const int64_t state_offset = static_cast<int64_t>(bh) * D * D + static_cast<int64_t>(k0 + 16 * warp) * D + v0;
  Acc acc[kN];
#pragma unroll
  for (int j = 0; j < kN; ++j) load(acc[j], edge + state_offset + 16 * j, D);

  auto chunk_at = [&](int step) { return reverse ? chunks - 1 - step : step; };
  auto valid_in = [&](int n) { return static_cast<int>(min(static_cast<int64_t>(kC), len - static_cast<int64_t>(n) * kC)); };
  auto issue = [&](int step) {
    if (step < chunks) {
      const int n = chunk_at(step), valid = valid_in(n);
      const int64_t t0 = static_cast<int64_t>(n) * kC;
      T* xs = xbuf + (step % kStages) * kC * LX;
      T* ys = ybuf + (step % kStages) * kC * LY;
#pragma unroll
      for (int q = 0; q < kVx; ++q) {
        const int i = threadIdx.x + q * kThreads, r = i / (BK / 8), c = (i % (BK / 8)) * 8;
        copy_async(xs + r * LX + c, x.row(b, h, t0 + min(r, valid - 1)) + k0 + c, r < valid ? 16 : 0);
      }
#pragma unroll
      for (int q = 0; q < kVy; ++q) {
        const int i = threadIdx.x + q * kThreads, r = i / (BV / 8), c = (i % (BV / 8)) * 8;
        copy_async(ys + r * LY + c, y.row(b, h, t0 + min(r, valid - 1)) + v0 + c, r < valid ? 16 : 0);
      }
    }
    copy_async_commit();
  };

  for (int step = 0; step < kStages - 1; ++step) issue(step);
  for (int step = 0; step < chunks; ++step) {
    const int n = chunk_at(step), valid = valid_in(n);
    T* xs = xbuf + (step % kStages) * kC * LX;
    const T* ys = ybuf + (step % kStages) * kC * LY;
    copy_async_wait<kStages - 2>();
    scale_rows<BK, kThreads>(xs, LX, [&](int r) {  // the vectors this thread copied, in issue's order
      return reverse ? scale * exp2f((r + 1) * log2g) : exp2f((valid - 1 - r) * log2g);
    });
#pragma unroll
    for (int j = 0; j < kN; ++j) store(hs + 16 * warp * LH + 16 * j, LH, acc[j]);
    __syncthreads();
    issue(step + kStages - 1);  // into the stage of the previous step, whose product is done
    T* slot = states + (static_cast<int64_t>(bh) * chunks + n) * D * D + static_cast<int64_t>(k0) * D + v0;
    store_rows<BV, kThreads, T>([&](int r) { return slot + r * D; }, BK, hs, LH);
    const float carry = exp2f(valid * log2g);
#pragma unroll
    for (int j = 0; j < kN; ++j) {
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[j].x[e] *= carry;
    }
    mma_tiles<ColMajor, RowMajor>(acc, xs, LX, ys, LY, warp, 0, 0, kC / 16);
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < kN; ++j) store(last + state_offset + 16 * j, D, acc[j]);
}

// Masks the float scores [kC][kLP] into 16-bit [kC][kLM] over the same bytes (through registers).
template <int kThreads, typename T>
__device__ __forceinline__ void mask_scores_in_place(unsigned char* region, float scale, float log2g) {
  constexpr int kEach = kC * kC / kThreads;
  float v[kEach];
#pragma unroll
  for (int e = 0; e < kEach; ++e) {
    const int i = threadIdx.x + e * kThreads, r = i / kC, c = i % kC;
    v[e] = c <= r ? reinterpret_cast<const float*>(region)[r * kLP + c] * scale * exp2f((r - c) * log2g) : 0.f;
  }
  __syncthreads();
#pragma unroll
  for (int e = 0; e < kEach; ++e) {
    const int i = threadIdx.x + e * kThreads, r = i / kC, c = i % kC;
    reinterpret_cast<T*>(region)[r * kLM + c] = from_float<T>(v[e]);
  }
}

// Writes a [kC][D] result held as accumulator tiles (rt, ct) by the warps through a float
// staging tile of 64 columns, one 64-column half at a time: tile j of this warp sits at row
// tile rows[j], column tile cols[j].
template <int D, int kThreads, int N, typename T>
__device__ __forceinline__ void write_tiles(const Acc (&acc)[N], const int (&rows)[N], const int (&cols)[N], float* stage,
                                           const Rows<T>& dst, int b, int h, int64_t t0, int valid) {
  for (int half = 0; half < D / 64; ++half) {
    __syncthreads();  // the staging tile is free
#pragma unroll
    for (int j = 0; j < N; ++j) {
      if (cols[j] / 4 == half)
        store(stage + 16 * rows[j] * kLP + 16 * (cols[j] % 4), kLP, acc[j]);
    }
    __syncthreads();
    store_rows<64, kThreads, T>([&](int r) { return dst.row(b, h, t0 + r) + 64 * half; }, valid, stage, kLP);
  }
}

template <int D>
struct ForwardSmem {
  static constexpr int L = D + kPad;
  // p: float scores, then the masked 16-bit scores in place, then the output staging
  static constexpr int q = 0, k = q + kC * L * 2, v = k + kC * L * 2, p = v + kC * L * 2, bytes = p + kC * kLP * 4;
};

// Warp w owns output columns [w D/4, (w+1) D/4) of all four row tiles, so each element of S_n
// is read from memory (L2) by one warp only, straight into the tensor-core fragments.
template <typename T, int D>
__global__ void __launch_bounds__(128)
    forward_kernel(Rows<T> q, Rows<T> k, Rows<T> v, const T* __restrict__ states, Rows<T> out,
                   const float* __restrict__ gamma, int heads, int64_t len, int chunks, float scale) {
  using S = ForwardSmem<D>;
  constexpr int kThreads = 128, L = S::L, kCT = D / 64;  // column tiles per warp
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem + S::q);
  T* ks = reinterpret_cast<T*>(smem + S::k);
  T* vs = reinterpret_cast<T*>(smem + S::v);
  float* ps = reinterpret_cast<float*>(smem + S::p);
  T* pm = reinterpret_cast<T*>(smem + S::p);
  const int n = blockIdx.x, bh = blockIdx.y, b = bh / heads, h = bh % heads, warp = threadIdx.x / 32;
  const int64_t t0 = static_cast<int64_t>(n) * kC;
  const int valid = static_cast<int>(min(static_cast<int64_t>(kC), len - t0));
  const float log2g = log2f(gamma[h]);
  const T* state = states + (static_cast<int64_t>(bh) * chunks + n) * D * D;
  load_rows_async<D, kThreads>(qs, L, q, b, h, t0, valid);
  load_rows_async<D, kThreads>(ks, L, k, b, h, t0, valid);
  copy_async_commit();
  load_rows_async<D, kThreads>(vs, L, v, b, h, t0, valid);
  copy_async_commit();
  prefetch_state<D, kThreads>(state);
  copy_async_wait<1>();  // q and k; v still on its way
  __syncthreads();
  chunk_scores<D>(ps, qs, ks, L, warp, 4);
  __syncthreads();
  mask_scores_in_place<kThreads, T>(smem + S::p, scale, log2g);
  scale_rows<D, kThreads>(qs, L, [&](int r) { return scale * exp2f((r + 1) * log2g); });
  copy_async_wait<0>();
  __syncthreads();
  Acc acc[4 * kCT];
  int rows[4 * kCT], cols[4 * kCT];
#pragma unroll
  for (int j = 0; j < 4 * kCT; ++j) rows[j] = j / kCT, cols[j] = warp * kCT + j % kCT;
  zero(acc);
  FragA<T, RowMajor> fa;
  FragB<T, RowMajor> fb[kCT];
  for (int kk = 0; kk < kC / 16; ++kk) {  // (masked scores) v: row tile rt needs k tiles <= rt
#pragma unroll
    for (int c = 0; c < kCT; ++c) load(fb[c], vs + 16 * kk * L + 16 * (warp * kCT + c), L);
#pragma unroll
    for (int rt = 0; rt < 4; ++rt) {
      if (kk > rt) continue;
      load(fa, pm + 16 * rt * kLM + 16 * kk, kLM);
#pragma unroll
      for (int c = 0; c < kCT; ++c) mma(acc[rt * kCT + c], fa, fb[c]);
    }
  }
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {  // (q . a) S_n
#pragma unroll
    for (int c = 0; c < kCT; ++c) load_global(fb[c], state + 16 * kk * D + 16 * (warp * kCT + c), D);
#pragma unroll
    for (int c = 0; c < kCT; ++c) finish_global(fb[c]);
#pragma unroll
    for (int rt = 0; rt < 4; ++rt) {
      load(fa, qs + 16 * rt * L + 16 * kk, L);
#pragma unroll
      for (int c = 0; c < kCT; ++c) mma(acc[rt * kCT + c], fa, fb[c]);
    }
  }
  write_tiles<D, kThreads>(acc, rows, cols, ps, out, b, h, t0, valid);
}

template <int D>
struct BackwardSmem {
  static constexpr int L = D + kPad, tile = kC * L * 2;
  static constexpr int q = 0, k = q + tile, v = k + tile, dout = v + tile, pm = dout + tile, dpm = pm + kC * kLM * 2,
                       stage = dpm + kC * kLM * 2, bytes = stage + kC * kLP * 4;
};

// acc[j] (row tile r0 + j, column tile ct) += A(row tile, k tiles) x B(k tiles, ct) over the k
// tiles [lo(rt), hi(rt)) of the chunk (4 tiles); A and B in shared memory.
template <typename LA, typename LB, int N, typename T, typename Lo, typename Hi>
__device__ __forceinline__ void mma_column(Acc (&acc)[N], const T* a, int lda, const T* b, int ldb, int r0, int ct,
                                           Lo lo, Hi hi) {
  FragA<T, LA> fa;
  FragB<T, LB> fb;
#pragma unroll
  for (int kk = 0; kk < kC / 16; ++kk) {
    if (kk < lo(r0) || kk >= hi(r0 + N - 1)) continue;
    load(fb, tile<LB>(b, ldb, kk, ct), ldb);
#pragma unroll
    for (int j = 0; j < N; ++j) {
      if (kk < lo(r0 + j) || kk >= hi(r0 + j)) continue;
      load(fa, tile<LA>(a, lda, r0 + j, kk), lda);
      mma(acc[j], fa, fb);
    }
  }
}

// acc[j] (row tile r0 + j, column tile ct) += A(row tile, all D/16 k tiles) x B(those, ct); A in
// shared memory, B a [D][D] state in global memory (L2), its fragments loaded four k tiles ahead.
template <int D, typename LB, int N, typename T>
__device__ __forceinline__ void mma_column_state(Acc (&acc)[N], const T* a, int lda, const T* b, int r0, int ct) {
  FragA<T, RowMajor> fa;
  FragB<T, LB> fb[4];
#pragma unroll
  for (int k0 = 0; k0 < D / 16; k0 += 4) {
#pragma unroll
    for (int i = 0; i < 4; ++i) load_global(fb[i], tile<LB>(b, D, k0 + i, ct), D);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      finish_global(fb[i]);
#pragma unroll
      for (int j = 0; j < N; ++j) {
        load(fa, tile<RowMajor>(a, lda, r0 + j, k0 + i), lda);
        mma(acc[j], fa, fb[i]);
      }
    }
  }
}

// Warp w owns column tile w % (D/16) of the row tiles r0 .. r0 + kR - 1; S_n and G_{n+1} go
// from memory (L2) straight into fragments, each element read by one warp.
template <typename T, int D>
__global__ void __launch_bounds__(256, 2)
    backward_kernel(Rows<T> q, Rows<T> k, Rows<T> v, Rows<T> dout, const T* __restrict__ states,
                    const T* __restrict__ grad_states, Rows<T> dq, Rows<T> dk, Rows<T> dv,
                    const float* __restrict__ gamma, int heads, int64_t len, int chunks, float scale) {
  using S = BackwardSmem<D>;
  constexpr int kThreads = 256, L = S::L, kR = 4 * D / 128;  // row tiles per warp
  extern __shared__ __align__(128) unsigned char smem[];
  T* qs = reinterpret_cast<T*>(smem + S::q);
  T* ks = reinterpret_cast<T*>(smem + S::k);
  T* vs = reinterpret_cast<T*>(smem + S::v);
  T* dos = reinterpret_cast<T*>(smem + S::dout);
  T* pm = reinterpret_cast<T*>(smem + S::pm);
  T* dpm = reinterpret_cast<T*>(smem + S::dpm);
  float* stage = reinterpret_cast<float*>(smem + S::stage);
  const int n = blockIdx.x, bh = blockIdx.y, b = bh / heads, h = bh % heads, warp = threadIdx.x / 32;
  const int ct = warp % (D / 16), r0 = (warp / (D / 16)) * kR;
  const int64_t t0 = static_cast<int64_t>(n) * kC;
  const int valid = static_cast<int>(min(static_cast<int64_t>(kC), len - t0));
  const float log2g = log2f(gamma[h]);
  const T* state = states + (static_cast<int64_t>(bh) * chunks + n) * D * D;
  const T* grad = grad_states + (static_cast<int64_t>(bh) * chunks + n) * D * D;
  load_rows_async<D, kThreads>(dos, L, dout, b, h, t0, valid);
  load_rows_async<D, kThreads>(vs, L, v, b, h, t0, valid);
  copy_async_commit();
  load_rows_async<D, kThreads>(qs, L, q, b, h, t0, valid);
  load_rows_async<D, kThreads>(ks, L, k, b, h, t0, valid);
  copy_async_commit();
  prefetch_state<D, kThreads>(state);
  prefetch_state<D, kThreads>(grad);
  copy_async_wait<1>();  // dout and v; q and k still on their way
  __syncthreads();
  chunk_scores<D>(stage, dos, vs, L, warp, 8);  // dP = dout v^T
  __syncthreads();
  mask_scores<kThreads>(dpm, stage, scale, log2g);
  copy_async_wait<0>();
  __syncthreads();
  chunk_scores<D>(stage, qs, ks, L, warp, 8);  // P = q k^T
  __syncthreads();
  mask_scores<kThreads>(pm, stage, scale, log2g);
  __syncthreads();

  int rows[kR], cols[kR];
#pragma unroll
  for (int j = 0; j < kR; ++j) rows[j] = r0 + j, cols[j] = ct;
  const auto all = [](int) { return 0; };
  const auto upto = [](int rt) { return rt + 1; };      // k tiles <= rt (causal, row side)
  const auto from = [](int rt) { return rt; };          // k tiles >= rt (causal, transposed)
  const auto chunk_end = [](int) { return kC / 16; };
  Acc dv_acc[kR], acc[kR];
  zero(dv_acc);
  mma_column<ColMajor, RowMajor>(dv_acc, pm, kLM, dos, L, r0, ct, from, chunk_end);  // (P . M)^T dout
  zero(acc);
  mma_column<RowMajor, RowMajor>(acc, dpm, kLM, ks, L, r0, ct, all, upto);  // (dP . M) k
  __syncthreads();  // dout and k are read unscaled no more
  scale_rows<D, kThreads>(dos, L, [&](int r) { return scale * exp2f((r + 1) * log2g); });
  const auto key_weight = [&](int r) { return exp2f((valid - 1 - r) * log2g); };
  scale_rows<D, kThreads>(ks, L, key_weight);
  scale_rows<D, kThreads>(vs, L, key_weight);
  __syncthreads();
  mma_column_state<D, ColMajor>(acc, dos, L, state, r0, ct);  // + (dout . a) S^T
  write_tiles<D, kThreads>(acc, rows, cols, stage, dq, b, h, t0, valid);
  zero(acc);
  mma_column<ColMajor, RowMajor>(acc, dpm, kLM, qs, L, r0, ct, from, chunk_end);  // (dP . M)^T q
  mma_column_state<D, ColMajor>(acc, vs, L, grad, r0, ct);                               // + (v . b) G^T
  write_tiles<D, kThreads>(acc, rows, cols, stage, dk, b, h, t0, valid);
  mma_column_state<D, RowMajor>(dv_acc, ks, L, grad, r0, ct);  // + (k . b) G
  write_tiles<D, kThreads>(dv_acc, rows, cols, stage, dv, b, h, t0, valid);
}

template <typename T>
Rows<T> rows_of(const at::Tensor& x) {
  return {reinterpret_cast<T*>(x.data_ptr()), x.stride(0), x.stride(1), x.stride(2)};
}

// Calls f with a value of the CUDA type of `dtype` (bfloat16 or float16).
template <typename F>
void dispatch_16bit(at::ScalarType dtype, F f) {
  if (dtype == at::kBFloat16) f(__nv_bfloat16{});
  else f(__half{});
}

template <typename Kernel>
void allow_shared(Kernel kernel, int bytes) {
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

int chunks_of(const at::Tensor& x) { return static_cast<int>((x.size(2) + kC - 1) / kC); }

// One block per (chunk, b*h).
dim3 chunk_grid(const at::Tensor& q) {
  return dim3(static_cast<unsigned>(chunks_of(q)), static_cast<unsigned>(q.size(0) * q.size(1)));
}

void check_states(const at::Tensor& states, const at::Tensor& q) {
  const int64_t d = q.size(3);
  if (!states.is_contiguous() || states.scalar_type() != q.scalar_type() || states.dim() != 5 ||
      states.size(2) != chunks_of(q) || states.size(3) != d || states.size(4) != d)
    fail("lightning chunk kernels: states must be contiguous [B,H,N,D,D] of the inputs' dtype, got ", states.sizes());
}

}  // namespace

bool fused_lightning_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t d = q.size(3);
  if (!q.is_cuda() || (q.scalar_type() != at::kBFloat16 && q.scalar_type() != at::kHalf)) return false;
  if ((d != 64 && d != 128) || k.size(3) != d || v.size(3) != d) return false;
  if (q.size(0) * q.size(1) > 65535) return false;
  for (const at::Tensor* x : {&q, &k, &v}) {
    if (x->stride(3) != 1 || reinterpret_cast<std::uintptr_t>(x->data_ptr()) % 16 != 0) return false;
    for (int i = 0; i < 3; ++i)
      if (x->stride(i) % 8 != 0) return false;
  }
  return true;
}

void lightning_chunk_recurrence_cuda(const at::Tensor& a, const at::Tensor& b, const at::Tensor& decay,
                                     const at::Tensor& edge, const at::Tensor& last, const at::Tensor& states,
                                     double scale, bool reverse) {
  if (!fused_lightning_supported(a, b, b)) fail("lightning_chunk_recurrence_cuda: unsupported inputs ", a.sizes());
  check_states(states, a);
  if (!edge.is_contiguous() || !last.is_contiguous() || edge.scalar_type() != at::kFloat ||
      last.scalar_type() != at::kFloat || decay.scalar_type() != at::kFloat)
    fail("lightning_chunk_recurrence_cuda: edge, last and decay must be contiguous float32");
  const c10::cuda::CUDAGuard guard(a.device());
  const int64_t d = a.size(3), bh = a.size(0) * a.size(1);
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  // 32-column tiles: twice the blocks (and k read twice as often). 16-column tiles measured
  // slower still (1x64K fwd+bwd on an H100: 7.6 against 6.5 ms).
  const bool narrow = bh * (d / 64) * (d / 64) < sms;
  auto stream = at::cuda::getCurrentCUDAStream();
  dispatch_16bit(a.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    auto launch = [&](auto kernel, int bv, int bytes) {
      allow_shared(kernel, bytes);
      const dim3 grid(static_cast<unsigned>(d / bv), static_cast<unsigned>(d / 64), static_cast<unsigned>(bh));
      kernel<<<grid, 128, bytes, stream>>>(rows_of<T>(a), rows_of<T>(b), decay.data_ptr<float>(), edge.data_ptr<float>(),
                                       last.data_ptr<float>(), reinterpret_cast<T*>(states.data_ptr()),
                                       static_cast<int>(a.size(1)), a.size(2), chunks_of(a), static_cast<float>(scale),
                                       reverse);
    };
    constexpr int kNarrow = RecurrenceSmem<32>::bytes, kWide = RecurrenceSmem<64>::bytes;
    if (d == 128) narrow ? launch(recurrence_kernel<T, 128, 32>, 32, kNarrow) : launch(recurrence_kernel<T, 128, 64>, 64, kWide);
    else narrow ? launch(recurrence_kernel<T, 64, 32>, 32, kNarrow) : launch(recurrence_kernel<T, 64, 64>, 64, kWide);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void lightning_chunk_forward_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& states, const at::Tensor& decay, double scale,
                                  const at::Tensor& out) {
  if (!fused_lightning_supported(q, k, v) || !fused_lightning_supported(out, out, out))
    fail("lightning_chunk_forward_cuda: unsupported inputs ", q.sizes());
  check_states(states, q);
  const c10::cuda::CUDAGuard guard(q.device());
  const dim3 grid = chunk_grid(q);
  auto stream = at::cuda::getCurrentCUDAStream();
  dispatch_16bit(q.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    auto launch = [&](auto kernel, int bytes) {
      allow_shared(kernel, bytes);
      kernel<<<grid, 128, bytes, stream>>>(rows_of<T>(q), rows_of<T>(k), rows_of<T>(v),
                                           reinterpret_cast<const T*>(states.data_ptr()), rows_of<T>(out),
                                           decay.data_ptr<float>(), static_cast<int>(q.size(1)), q.size(2),
                                           chunks_of(q), static_cast<float>(scale));
    };
    if (q.size(3) == 128) launch(forward_kernel<T, 128>, ForwardSmem<128>::bytes);
    else launch(forward_kernel<T, 64>, ForwardSmem<64>::bytes);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void lightning_chunk_backward_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& dout, const at::Tensor& states,
                                   const at::Tensor& grad_states, const at::Tensor& decay, double scale,
                                   const at::Tensor& dq, const at::Tensor& dk, const at::Tensor& dv) {
  if (!fused_lightning_supported(q, k, v) || !fused_lightning_supported(dout, dq, dk) ||
      !fused_lightning_supported(dv, dv, dv))
    fail("lightning_chunk_backward_cuda: unsupported inputs ", q.sizes());
  check_states(states, q);
  check_states(grad_states, q);
  const c10::cuda::CUDAGuard guard(q.device());
  const dim3 grid = chunk_grid(q);
  auto stream = at::cuda::getCurrentCUDAStream();
  dispatch_16bit(q.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    auto launch = [&](auto kernel, int bytes) {
      allow_shared(kernel, bytes);
      kernel<<<grid, 256, bytes, stream>>>(rows_of<T>(q), rows_of<T>(k), rows_of<T>(v), rows_of<T>(dout),
                                           reinterpret_cast<const T*>(states.data_ptr()),
                                           reinterpret_cast<const T*>(grad_states.data_ptr()), rows_of<T>(dq),
                                           rows_of<T>(dk), rows_of<T>(dv), decay.data_ptr<float>(),
                                           static_cast<int>(q.size(1)), q.size(2), chunks_of(q),
                                           static_cast<float>(scale));
    };
    if (q.size(3) == 128) launch(backward_kernel<T, 128>, BackwardSmem<128>::bytes);
    else launch(backward_kernel<T, 64>, BackwardSmem<64>::bytes);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace halo
