// Fused chunked lightning attention for 16-bit inputs (contract: lightning_chunk_cuda.h), in
// the shape of flash-linear-attention's chunk kernels, on tensor cores through mma.sync with
// ldmatrix loads (mma_fragments.cuh; bf16/fp16 operands, float32 accumulators). Three kernels:
// - recurrence: one block per (b,h, 64-row x BV-column tile of the state) walks the chunks in
//   order with its state tile in registers, writing the state entering each chunk (16-bit,
//   straight from the accumulators) and adding (x_n . w)^T y_n, the weights w applied to the
//   A fragments in registers; the next chunks' rows (3, or 8 for narrow tiles) arrive by
//   cp.async during this one's product, one barrier per chunk. Run forward over (k, v) for S_n
//   and in reverse over (q, dout) for G_{n+1}.
// - forward: one block per (chunk, b,h): q, k, v arrive by cp.async (v last, while q k^T runs)
//   and S_n is prefetched into L2; scores q k^T on chip with the decayed causal mask applied in
//   registers, then (masked scores) v + (q . a) S_n with S_n read from L2 straight into
//   fragments, rounded into a 16-bit staging tile and written out in 16-byte stores.
// - backward: one block per (chunk, b,h): dout and v, then q and k arrive by cp.async, S_n and
//   G_{n+1} are prefetched into L2; both masked score matrices on chip, then dq, dk, dv in turn
//   through one 16-bit staging tile.
// Scores and states are rounded to the inputs' dtype before they meet the tensor cores, as in
// the reference's Triton kernels; the recurrences themselves accumulate in float32.
// Work, B=4 H=16 T=16384 D=128 (B*H*T = 2^20 tokens): forward per token 2*64*128 (q k^T,
// causal half counted whole) + 2*64*128 (p v) + 2*128*128 (k^T v) + 2*128*128 (q S) = 98 KFLOP,
// 103 GFLOP; backward ~2.5x; ~360 GFLOP in all, 0.45 ms at ~800 TFLOP/s. Bytes: q, k, v, out,
// dout, dq, dk, dv once each (2 bytes x 128 per token: 2.1 GB) plus the 16-bit states written
// three times and read twice (N x 32 KB per (b,h): 0.5 GB each, 2.7 GB) = 4.8 GB, 1.6 ms at
// ~3 TB/s: the problem is bound by memory, and the states are most of it.
#include "ops/lightning_chunk_cuda.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "halo/error.h"
#include "ops/cuda_scalars.cuh"
#include "ops/mma_fragments.cuh"

namespace halo {
namespace {

constexpr int kC = 64;          // tokens per chunk
constexpr int kPad = 8;         // 16-bit elements of padding per shared row: rows start 4 banks apart
constexpr int kLM = kC + kPad;  // 16-bit score rows

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
  if constexpr (std::is_same_v<Layout, RowMajor>)
    return base + 16 * row * ld + 16 * col;
  else
    return base + 16 * col * ld + 16 * row;
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
__device__ __forceinline__ void copy_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
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

// The masked scores of one chunk, M . (x y^T) with M_ij = scale g^(i-j) for j <= i (else 0),
// rounded into the 16-bit [kC][kLM] dst: the 10 tiles on or below the diagonal (the only ones
// read later), spread over the `warps`, masked in registers.
template <int D, typename T>
__device__ __forceinline__ void masked_scores(T* dst, const T* x, const T* y, int ld, int warp, int warps, float scale,
                                              float log2g) {
  for (int t = warp; t < 10; t += warps) {
    const int rt = t < 1 ? 0 : t < 3 ? 1 : t < 6 ? 2 : 3, ct = t - rt * (rt + 1) / 2;
    Acc acc[1];
    zero(acc);
    mma_tiles<RowMajor, ColMajor>(acc, x, ld, y, ld, rt, ct, 0, D / 16);
    transform(acc[0], [&](int r, int c, float v) {
      const int i = 16 * rt + r, j = 16 * ct + c;
      return j <= i ? v * scale * exp2f((i - j) * log2g) : 0.f;
    });
    store_rounded(dst + 16 * rt * kLM + 16 * ct, kLM, acc[0]);
  }
}

template <int BV>
struct RecurrenceSmem {
  // The narrow tiles serve grids of at most two blocks per SM, each walking its chunks alone:
  // eight chunks in flight there (2x8K fwd+bwd 0.98 against 1.12 ms with five); three for the
  // wide tiles (two blocks per SM; 8x512 0.30 against 0.33 ms with two).
  static constexpr int kStages = BV == 32 ? 9 : 4, BK = 64, LX = BK + kPad, LY = BV + kPad;
  // out: each warp's 16 rows of the state tile, rounded, on their way to memory
  static constexpr int x = 0, y = x + kStages * kC * LX * 2, out = y + kStages * kC * LY * 2, bytes = out + BK * LY * 2;
};

// The state tile walk, one barrier per chunk. Chunk rows arrive through a kStages-deep cp.async
// pipeline (kStages - 1 chunks in flight while one is multiplied); the decay weights of the x
// rows are applied to the A fragments in registers. Each warp rounds the state rows it owns into
// its own staging rows and writes them out in 16-byte pieces (4-byte stores straight from the
// fragments measured slower at 4x16K: 4.9 against 4.25 ms fwd+bwd).
template <typename T, int D, int BV, bool kReverse>
__global__ void __launch_bounds__(128)
    recurrence_kernel(Rows<T> x, Rows<T> y, const float* __restrict__ gamma, const float* __restrict__ edge,
                      float* __restrict__ last, T* __restrict__ states, int heads, int64_t len, int chunks,
                      float scale) {
  using S = RecurrenceSmem<BV>;
  constexpr int kThreads = 128, BK = S::BK, LX = S::LX, LY = S::LY, kStages = S::kStages;
  constexpr int kN = BV / 16;  // warp w owns row tile w of the state tile, all its column tiles
  constexpr int kVx = kC * BK / 8 / kThreads, kVy = kC * BV / 8 / kThreads;
  extern __shared__ __align__(128) unsigned char smem[];
  T* xbuf = reinterpret_cast<T*>(smem + S::x);
  T* ybuf = reinterpret_cast<T*>(smem + S::y);
  const int bh = blockIdx.z, b = bh / heads, h = bh % heads;
  const int k0 = blockIdx.y * BK, v0 = blockIdx.x * BV, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int quad = lane % 4;
  T* out = reinterpret_cast<T*>(smem + S::out) + 16 * warp * LY;
  const float log2g = log2f(gamma[h]);
  const int64_t tile_offset = static_cast<int64_t>(k0 + 16 * warp) * D + v0;  // in a [D][D] state
  const float* first = edge + static_cast<int64_t>(bh) * D * D + tile_offset;
  Acc acc[kN];
#pragma unroll
  for (int j = 0; j < kN; ++j) load(acc[j], first + 16 * j, D);
  const T* x0 = x.row(b, h, 0) + k0;
  const T* y0 = y.row(b, h, 0) + v0;

  auto chunk_at = [&](int step) { return kReverse ? chunks - 1 - step : step; };
  auto valid_in = [&](int n) {
    return static_cast<int>(min(static_cast<int64_t>(kC), len - static_cast<int64_t>(n) * kC));
  };
  auto issue = [&](int step) {
    if (step < chunks) {
      const int n = chunk_at(step), valid = valid_in(n);
      const int64_t t0 = static_cast<int64_t>(n) * kC;
      T* xs = xbuf + (step % kStages) * kC * LX;
      T* ys = ybuf + (step % kStages) * kC * LY;
#pragma unroll
      for (int q = 0; q < kVx; ++q) {
        const int i = threadIdx.x + q * kThreads, r = i / (BK / 8), c = (i % (BK / 8)) * 8;
        copy_async(xs + r * LX + c, x0 + (t0 + min(r, valid - 1)) * x.st + c, r < valid ? 16 : 0);
      }
#pragma unroll
      for (int q = 0; q < kVy; ++q) {
        const int i = threadIdx.x + q * kThreads, r = i / (BV / 8), c = (i % (BV / 8)) * 8;
        copy_async(ys + r * LY + c, y0 + (t0 + min(r, valid - 1)) * y.st + c, r < valid ? 16 : 0);
      }
    }
    copy_async_commit();
  };

  // The weights of the tokens this lane's A registers hold, token 16 kk + 8 hi + 2 quad + e at
  // w[4 kk + 2 hi + e]; they change only for a short chunk (the walk's first or last).
  float w[16], carry = 0.f;
  int weights_for = -1;
  for (int step = 0; step < kStages - 1; ++step) issue(step);
  for (int step = 0; step < chunks; ++step) {
    const int n = chunk_at(step), valid = valid_in(n);
    if (valid != weights_for) {
      weights_for = valid;
      carry = exp2f(valid * log2g);
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        const int r = 16 * (i / 4) + 8 * ((i / 2) % 2) + 2 * quad + i % 2;
        w[i] = r >= valid ? 0.f : kReverse ? scale * exp2f((r + 1) * log2g) : exp2f((valid - 1 - r) * log2g);
      }
    }
    copy_async_wait<kStages - 2>();
    __syncthreads();            // chunk n's rows are in; every warp is done with the previous chunk's stage
    issue(step + kStages - 1);  // into that stage
    T* slot = states + (static_cast<int64_t>(bh) * chunks + n) * D * D + tile_offset;
#pragma unroll
    for (int j = 0; j < kN; ++j) {
      store_rounded(out + 16 * j, LY, acc[j]);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[j].x[e] *= carry;
    }
    __syncwarp();
#pragma unroll
    for (int i = lane; i < 16 * BV / 8; i += 32) {
      const int r = i / (BV / 8), c = (i % (BV / 8)) * 8;
      *reinterpret_cast<uint4*>(slot + r * D + c) = *reinterpret_cast<const uint4*>(out + r * LY + c);
    }
    const T* xs = xbuf + (step % kStages) * kC * LX;
    const T* ys = ybuf + (step % kStages) * kC * LY;
#pragma unroll
    for (int kk = 0; kk < kC / 16; ++kk) {
      FragA<T, ColMajor> fa;
      load(fa, tile<ColMajor>(xs, LX, warp, kk), LX);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 v = unpack_pair<T>(fa.x[j]);
        fa.x[j] = pack_pair<T>(v.x * w[4 * kk + 2 * (j / 2)], v.y * w[4 * kk + 2 * (j / 2) + 1]);
      }
#pragma unroll
      for (int c = 0; c < kN; ++c) {
        FragB<T, RowMajor> fb;
        load(fb, tile<RowMajor>(ys, LY, kk, c), LY);
        mma(acc[c], fa, fb);
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kN; ++j) store(last + static_cast<int64_t>(bh) * D * D + tile_offset + 16 * j, D, acc[j]);
}

// Writes a [kC][D] result held as accumulator tiles by the warps (tile j of this warp at row
// tile rows[j], column tile cols[j]), rounded, through the 16-bit staging tile [kC][D + kPad]
// into the destination rows in 16-byte stores.
template <int D, int kThreads, int N, typename T>
__device__ __forceinline__ void write_tiles(const Acc (&acc)[N], const int (&rows)[N], const int (&cols)[N], T* stage,
                                            const Rows<T>& dst, int b, int h, int64_t t0, int valid) {
  constexpr int L = D + kPad, kVecs = D / 8;
  __syncthreads();  // the staging tile is free
#pragma unroll
  for (int j = 0; j < N; ++j) store_rounded(stage + 16 * rows[j] * L + 16 * cols[j], L, acc[j]);
  __syncthreads();
  for (int i = threadIdx.x; i < valid * kVecs; i += kThreads) {
    const int r = i / kVecs, c = (i % kVecs) * 8;
    *reinterpret_cast<uint4*>(dst.row(b, h, t0 + r) + c) = *reinterpret_cast<const uint4*>(stage + r * L + c);
  }
}

template <int D>
struct ForwardSmem {
  static constexpr int L = D + kPad;
  // p: the masked scores, then the output staging
  static constexpr int q = 0, k = q + kC * L * 2, v = k + kC * L * 2, p = v + kC * L * 2, bytes = p + kC * L * 2;
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
  masked_scores<D>(pm, qs, ks, L, warp, 4, scale, log2g);
  __syncthreads();  // q is read unscaled no more
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
  write_tiles<D, kThreads>(acc, rows, cols, pm, out, b, h, t0, valid);
}

template <int D>
struct BackwardSmem {
  static constexpr int L = D + kPad, tile = kC * L * 2;
  static constexpr int q = 0, k = q + tile, v = k + tile, dout = v + tile, pm = dout + tile, dpm = pm + kC * kLM * 2,
                       stage = dpm + kC * kLM * 2, bytes = stage + tile;
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
  T* stage = reinterpret_cast<T*>(smem + S::stage);
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
  masked_scores<D>(dpm, dos, vs, L, warp, 8, scale, log2g);  // dP = dout v^T
  copy_async_wait<0>();
  __syncthreads();
  masked_scores<D>(pm, qs, ks, L, warp, 8, scale, log2g);  // P = q k^T
  __syncthreads();

  int rows[kR], cols[kR];
#pragma unroll
  for (int j = 0; j < kR; ++j) rows[j] = r0 + j, cols[j] = ct;
  const auto all = [](int) { return 0; };
  const auto upto = [](int rt) { return rt + 1; };  // k tiles <= rt (causal, row side)
  const auto from = [](int rt) { return rt; };      // k tiles >= rt (causal, transposed)
  const auto chunk_end = [](int) { return kC / 16; };
  Acc dv_acc[kR], acc[kR];
  zero(dv_acc);
  mma_column<ColMajor, RowMajor>(dv_acc, pm, kLM, dos, L, r0, ct, from, chunk_end);  // (P . M)^T dout
  zero(acc);
  mma_column<RowMajor, RowMajor>(acc, dpm, kLM, ks, L, r0, ct, all, upto);  // (dP . M) k
  __syncthreads();                                                          // dout and k are read unscaled no more
  scale_rows<D, kThreads>(dos, L, [&](int r) { return scale * exp2f((r + 1) * log2g); });
  const auto key_weight = [&](int r) { return exp2f((valid - 1 - r) * log2g); };
  scale_rows<D, kThreads>(ks, L, key_weight);
  scale_rows<D, kThreads>(vs, L, key_weight);
  __syncthreads();
  mma_column_state<D, ColMajor>(acc, dos, L, state, r0, ct);  // + (dout . a) S^T
  write_tiles<D, kThreads>(acc, rows, cols, stage, dq, b, h, t0, valid);
  zero(acc);
  mma_column<ColMajor, RowMajor>(acc, dpm, kLM, qs, L, r0, ct, from, chunk_end);  // (dP . M)^T q
  mma_column_state<D, ColMajor>(acc, vs, L, grad, r0, ct);                        // + (v . b) G^T
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
  if (dtype == at::kBFloat16)
    f(__nv_bfloat16{});
  else
    f(__half{});
}

template <typename Kernel>
void allow_shared(Kernel kernel, int bytes) {
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

int chunks_of(const at::Tensor& x) {
  return static_cast<int>((x.size(2) + kC - 1) / kC);
}

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

bool lightning_chunk_cuda_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
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
  if (!lightning_chunk_cuda_supported(a, b, b)) fail("lightning_chunk_recurrence_cuda: unsupported inputs ", a.sizes());
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
      kernel<<<grid, 128, bytes, stream>>>(rows_of<T>(a), rows_of<T>(b), decay.data_ptr<float>(),
                                           edge.data_ptr<float>(), last.data_ptr<float>(),
                                           reinterpret_cast<T*>(states.data_ptr()), static_cast<int>(a.size(1)),
                                           a.size(2), chunks_of(a), static_cast<float>(scale));
    };
    auto walk = [&](auto direction) {
      constexpr bool kReverse = decltype(direction)::value;
      constexpr int kNarrow = RecurrenceSmem<32>::bytes, kWide = RecurrenceSmem<64>::bytes;
      if (d == 128)
        narrow ? launch(recurrence_kernel<T, 128, 32, kReverse>, 32, kNarrow)
               : launch(recurrence_kernel<T, 128, 64, kReverse>, 64, kWide);
      else
        narrow ? launch(recurrence_kernel<T, 64, 32, kReverse>, 32, kNarrow)
               : launch(recurrence_kernel<T, 64, 64, kReverse>, 64, kWide);
    };
    reverse ? walk(std::true_type{}) : walk(std::false_type{});
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void lightning_chunk_forward_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& states, const at::Tensor& decay, double scale,
                                  const at::Tensor& out) {
  if (!lightning_chunk_cuda_supported(q, k, v) || !lightning_chunk_cuda_supported(out, out, out))
    fail("lightning_chunk_forward_cuda: unsupported inputs ", q.sizes());
  check_states(states, q);
  const c10::cuda::CUDAGuard guard(q.device());
  const dim3 grid = chunk_grid(q);
  auto stream = at::cuda::getCurrentCUDAStream();
  dispatch_16bit(q.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    auto launch = [&](auto kernel, int bytes) {
      allow_shared(kernel, bytes);
      kernel<<<grid, 128, bytes, stream>>>(
          rows_of<T>(q), rows_of<T>(k), rows_of<T>(v), reinterpret_cast<const T*>(states.data_ptr()), rows_of<T>(out),
          decay.data_ptr<float>(), static_cast<int>(q.size(1)), q.size(2), chunks_of(q), static_cast<float>(scale));
    };
    if (q.size(3) == 128)
      launch(forward_kernel<T, 128>, ForwardSmem<128>::bytes);
    else
      launch(forward_kernel<T, 64>, ForwardSmem<64>::bytes);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void lightning_chunk_backward_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& dout, const at::Tensor& states, const at::Tensor& grad_states,
                                   const at::Tensor& decay, double scale, const at::Tensor& dq, const at::Tensor& dk,
                                   const at::Tensor& dv) {
  if (!lightning_chunk_cuda_supported(q, k, v) || !lightning_chunk_cuda_supported(dout, dq, dk) ||
      !lightning_chunk_cuda_supported(dv, dv, dv))
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
      kernel<<<grid, 256, bytes, stream>>>(
          rows_of<T>(q), rows_of<T>(k), rows_of<T>(v), rows_of<T>(dout), reinterpret_cast<const T*>(states.data_ptr()),
          reinterpret_cast<const T*>(grad_states.data_ptr()), rows_of<T>(dq), rows_of<T>(dk), rows_of<T>(dv),
          decay.data_ptr<float>(), static_cast<int>(q.size(1)), q.size(2), chunks_of(q), static_cast<float>(scale));
    };
    if (q.size(3) == 128)
      launch(backward_kernel<T, 128>, BackwardSmem<128>::bytes);
    else
      launch(backward_kernel<T, 64>, BackwardSmem<64>::bytes);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace halo
