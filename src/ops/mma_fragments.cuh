// 16x16x16 tensor-core tiles for 16-bit operands (bfloat16, float16) with float32 accumulators,
// on the PTX warp-level instructions themselves: ldmatrix to load operand tiles from shared
// memory (one instruction per tile, its own .trans for the other layout), two
// mma.sync.m16n8k16 per tile product, and plain 32-bit loads (plus movmatrix where the layout
// needs the transpose) for tiles read from global memory. WMMA's bfloat16 loads take generic
// addresses and compile to several loads and MOVM transposes per tile on the load/store path;
// these are what the chunk kernels' profiles showed their warps waiting on.
// Register layouts are those of the PTX ISA's mma.m16n8k16 fragments, lane l = threadIdx.x % 32:
// - A (16 rows m x 16 k): x[0] rows 0-7 k 0-7, x[1] rows 8-15 k 0-7, x[2] rows 0-7 k 8-15,
//   x[3] rows 8-15 k 8-15; each register holds (row l/4, k 2(l%4) and 2(l%4)+1).
// - B (16 k x 16 columns n): x[0] k 0-7 and x[1] k 8-15 of columns 0-7, x[2], x[3] the same for
//   columns 8-15; each register holds (k 2(l%4) and 2(l%4)+1, column l/4).
// - accumulator: x[4h .. 4h+3] columns 8h .. 8h+7: (row l/4, columns 2(l%4), +1), then row + 8.
// Layout tags say how a tile is stored: RowMajor A is [m][k], ColMajor A is [k][m]; RowMajor B
// is [k][n], ColMajor B is [n][k].
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "ops/cuda_scalars.cuh"

namespace halo {

struct RowMajor {};
struct ColMajor {};

template <typename T, typename Layout>
struct FragA {
  uint32_t x[4];
};
template <typename T, typename Layout>
struct FragB {
  uint32_t x[4];
};
struct Acc {
  float x[8];
};

__device__ __forceinline__ int lane_id() {
  return static_cast<int>(threadIdx.x % 32);
}

// Four 8x8 16-bit matrices from shared memory (transposed with kTrans), lane l giving the
// address of row l%8 of matrix l/8.
template <bool kTrans>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&x)[4], const void* shared) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  if constexpr (kTrans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(x[0]), "=r"(x[1]), "=r"(x[2]), "=r"(x[3])
                 : "r"(addr));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(x[0]), "=r"(x[1]), "=r"(x[2]), "=r"(x[3])
                 : "r"(addr));
}
__device__ __forceinline__ uint32_t transpose_8x8(uint32_t x) {
  uint32_t y;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
  return y;
}

// Offset of the 8x8 block m (0..3) of a 16x16 tile of row pitch ld, the blocks taken down the
// rows first (top left, bottom left, top right, bottom right) or across the columns first.
__device__ __forceinline__ int block_offset(int m, int ld, bool down_first) {
  return down_first ? 8 * (m & 1) * ld + 8 * (m >> 1) : 8 * (m >> 1) * ld + 8 * (m & 1);
}

// Tiles from shared memory; `p` is the tile's first element, `ld` its row pitch in elements
// (rows 16-byte aligned). Lane l hands ldmatrix row l%8 of the 8x8 block l/8.
template <typename T>
__device__ __forceinline__ const T* ldmatrix_row(const T* p, int ld, bool down_first) {
  const int l = lane_id();
  return p + (l % 8) * ld + block_offset(l / 8, ld, down_first);
}

// A RowMajor tile's 8x8 blocks are those of its storage, a ColMajor one's their transposes;
// for B the other way round.
template <typename T, typename Layout>
__device__ __forceinline__ void load(FragA<T, Layout>& a, const T* p, int ld) {
  constexpr bool kRow = std::is_same_v<Layout, RowMajor>;
  ldmatrix_x4<!kRow>(a.x, ldmatrix_row(p, ld, kRow));
}
template <typename T, typename Layout>
__device__ __forceinline__ void load(FragB<T, Layout>& b, const T* p, int ld) {
  constexpr bool kRow = std::is_same_v<Layout, RowMajor>;
  ldmatrix_x4<kRow>(b.x, ldmatrix_row(p, ld, kRow));
}

// B tiles from global memory (read once, through L2): a 32-bit load per register, transposed
// in registers where the pairs a register holds are not adjacent in memory (RowMajor: the lane
// loads its pair from the block's transpose position).
template <typename T, typename Layout>
__device__ __forceinline__ void load_global(FragB<T, Layout>& b, const T* p, int ld) {
  const int l = lane_id();
  const T* base = p + (l / 4) * ld + 2 * (l % 4);
#pragma unroll
  for (int j = 0; j < 4; ++j)
    b.x[j] = __ldg(reinterpret_cast<const unsigned*>(base + block_offset(j, ld, std::is_same_v<Layout, RowMajor>)));
}

// The transposes of load_global(FragB<T, RowMajor>), kept apart so that the loads of several
// tiles can be in flight before the first transpose waits on them.
template <typename T>
__device__ __forceinline__ void finish_global(FragB<T, RowMajor>& b) {
#pragma unroll
  for (int j = 0; j < 4; ++j) b.x[j] = transpose_8x8(b.x[j]);
}
template <typename T>
__device__ __forceinline__ void finish_global(FragB<T, ColMajor>&) {}

template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float* d, const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// acc += a b
template <typename T, typename LA, typename LB>
__device__ __forceinline__ void mma(Acc& acc, const FragA<T, LA>& a, const FragB<T, LB>& b) {
  mma_m16n8k16<T>(acc.x, a.x, b.x[0], b.x[1]);
  mma_m16n8k16<T>(acc.x + 4, a.x, b.x[2], b.x[3]);
}

template <int N>
__device__ __forceinline__ void zero(Acc (&acc)[N]) {
#pragma unroll
  for (int j = 0; j < N; ++j) {
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[j].x[e] = 0.f;
  }
}

// acc value <- f(row, col, value) for each of this lane's values, row and col within the tile.
template <typename F>
__device__ __forceinline__ void transform(Acc& acc, F f) {
  const int l = lane_id();
#pragma unroll
  for (int e = 0; e < 8; ++e) acc.x[e] = f(l / 4 + 8 * ((e / 2) % 2), 8 * (e / 4) + 2 * (l % 4) + e % 2, acc.x[e]);
}

// A float accumulator tile to or from row-major float memory (shared or global) of pitch `ld`
// (even), two values per access.
__device__ __forceinline__ void store(float* p, int ld, const Acc& acc) {
  const int l = lane_id();
  float* base = p + (l / 4) * ld + 2 * (l % 4);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    *reinterpret_cast<float2*>(base + 8 * h) = make_float2(acc.x[4 * h], acc.x[4 * h + 1]);
    *reinterpret_cast<float2*>(base + 8 * ld + 8 * h) = make_float2(acc.x[4 * h + 2], acc.x[4 * h + 3]);
  }
}
// The accumulator tile rounded to 16 bits into row-major memory of pitch `ld`, two values per store.
template <typename T>
__device__ __forceinline__ void store_rounded(T* p, int ld, const Acc& acc) {
  const int l = lane_id();
  T* base = p + (l / 4) * ld + 2 * (l % 4);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    *reinterpret_cast<uint32_t*>(base + 8 * h) = pack_pair<T>(acc.x[4 * h], acc.x[4 * h + 1]);
    *reinterpret_cast<uint32_t*>(base + 8 * ld + 8 * h) = pack_pair<T>(acc.x[4 * h + 2], acc.x[4 * h + 3]);
  }
}
__device__ __forceinline__ void load(Acc& acc, const float* p, int ld) {
  const int l = lane_id();
  const float* base = p + (l / 4) * ld + 2 * (l % 4);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float2 top = *reinterpret_cast<const float2*>(base + 8 * h);
    const float2 bottom = *reinterpret_cast<const float2*>(base + 8 * ld + 8 * h);
    acc.x[4 * h] = top.x, acc.x[4 * h + 1] = top.y, acc.x[4 * h + 2] = bottom.x, acc.x[4 * h + 3] = bottom.y;
  }
}

}  // namespace halo
