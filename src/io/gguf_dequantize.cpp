// ggml tensor types: their names, block layouts, and dequantization to float32. One table row per
// type gives its name and, for the types halo reads, the block size in elements and bytes and a
// kernel that decodes a run of whole blocks. Each kernel follows ggml's block struct (ggml-common.h)
// byte by byte and evaluates ggml's formulas (dequantize_row_* in ggml-quants.c) in the same
// order, so results match llama.cpp's; fields are read with memcpy because blocks sit at any byte
// alignment in the file. dequantize() splits the blocks into contiguous runs, one per std::thread.
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "halo/error.h"
#include "halo/gguf.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF blocks are read as little-endian");

namespace halo {
namespace {

constexpr int kMaxDefaultThreads = 16;
constexpr int64_t kMinElementsPerThread = 1 << 16;  // below this a thread costs more than it saves
constexpr int kSuperBlock = 256;                    // QK_K: elements per K-quant block

uint16_t load_u16(const uint8_t* bytes) {
  uint16_t value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

uint32_t load_u32(const uint8_t* bytes) {
  uint32_t value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

float float_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// IEEE half to float, exact for every input (subnormals, infinities, NaN payloads).
float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1Fu;
  const uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0x1F) return float_from_bits(sign | 0x7F800000u | (mantissa << 13));
  if (exponent != 0) return float_from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13));
  const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // m * 2^-24
  return sign ? -magnitude : magnitude;
}

float load_half(const uint8_t* bytes) {
  return half_to_float(load_u16(bytes));
}

// Kernels: decode `blocks` consecutive blocks starting at `in` into `out`.
using Kernel = void (*)(const uint8_t* in, int64_t blocks, float* out);

void dequantize_f32(const uint8_t* in, int64_t blocks, float* out) {
  std::memcpy(out, in, static_cast<size_t>(blocks) * sizeof(float));
}

void dequantize_f16(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t i = 0; i < blocks; ++i) out[i] = load_half(in + 2 * i);
}

void dequantize_bf16(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t i = 0; i < blocks; ++i) out[i] = float_from_bits(uint32_t{load_u16(in + 2 * i)} << 16);
}

// block_q4_0 {half d; u8 qs[16]}: element j is low nibble of qs[j], j + 16 the high one; (q - 8) * d.
void dequantize_q4_0(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, in += 18, out += 32) {
    const float d = load_half(in);
    const uint8_t* qs = in + 2;
    for (int j = 0; j < 16; ++j) {
      out[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
      out[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

// block_q4_1 {half d, m; u8 qs[16]}: q * d + m, nibbles as in Q4_0.
void dequantize_q4_1(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, in += 20, out += 32) {
    const float d = load_half(in);
    const float m = load_half(in + 2);
    const uint8_t* qs = in + 4;
    for (int j = 0; j < 16; ++j) {
      out[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
      out[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

// block_q5_0 {half d; u32 qh; u8 qs[16]}: bit j of qh is the fifth bit of element j; (q - 16) * d.
void dequantize_q5_0(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, in += 22, out += 32) {
    const float d = load_half(in);
    const uint32_t qh = load_u32(in + 2);
    const uint8_t* qs = in + 6;
    for (int j = 0; j < 16; ++j) {
      const int low = static_cast<int>((qs[j] & 0x0F) | (((qh >> j) & 1u) << 4));
      const int high = static_cast<int>((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
      out[j] = static_cast<float>(low - 16) * d;
      out[j + 16] = static_cast<float>(high - 16) * d;
    }
  }
}

// block_q5_1 {half d, m; u32 qh; u8 qs[16]}: q * d + m, bits as in Q5_0.
void dequantize_q5_1(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, in += 24, out += 32) {
    const float d = load_half(in);
    const float m = load_half(in + 2);
    const uint32_t qh = load_u32(in + 4);
    const uint8_t* qs = in + 8;
    for (int j = 0; j < 16; ++j) {
      const uint32_t low = (qs[j] & 0x0Fu) | (((qh >> j) & 1u) << 4);
      const uint32_t high = (qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4);
      out[j] = static_cast<float>(low) * d + m;
      out[j + 16] = static_cast<float>(high) * d + m;
    }
  }
}

// block_q8_0 {half d; i8 qs[32]}: q * d.
void dequantize_q8_0(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, in += 34, out += 32) {
    const float d = load_half(in);
    for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(static_cast<int8_t>(in[2 + j])) * d;
  }
}

// block_q2_K {u8 scales[16]; u8 qs[64]; half d, dmin}: 16 groups of 16; scales byte g holds the
// group's scale (low nibble) and min (high nibble); value = d*scale * q - dmin*min. Each 128-element
// half reads 32 qs bytes four times, two bits deeper each time.
void dequantize_q2_k(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, in += 84) {
    const uint8_t* scales = in;
    const float d = load_half(in + 80);
    const float dmin = load_half(in + 82);
    int group = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* qs = in + 16 + 32 * half;
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part, ++group) {
          const float dl = d * static_cast<float>(scales[group] & 0x0F);
          const float ml = dmin * static_cast<float>(scales[group] >> 4);
          for (int l = 0; l < 16; ++l) {
            *out++ = dl * static_cast<float>((qs[16 * part + l] >> shift) & 3) - ml;
          }
        }
      }
    }
  }
}

// block_q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d}: 16 groups of 16 with signed 6-bit
// scales (low 4 bits in nibbles of bytes 0..7, high 2 bits in bytes 8..11), minus 32. The 3-bit
// quant is 2 bits from qs (as in Q2_K) minus 4 when its hmask bit is clear.
void dequantize_q3_k(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, in += 110) {
    const uint8_t* hmask = in;
    const uint8_t* packed = in + 96;
    const float d = load_half(in + 108);
    int group = 0;
    int mask_bit = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* qs = in + 32 + 32 * half;
      for (int shift = 0; shift < 8; shift += 2, ++mask_bit) {
        for (int part = 0; part < 2; ++part, ++group) {
          const int low = group < 8 ? packed[group] & 0x0F : packed[group - 8] >> 4;
          const int high = (packed[8 + group % 4] >> (2 * (group / 4))) & 3;
          const float dl = d * static_cast<float>((low | (high << 4)) - 32);
          for (int l = 0; l < 16; ++l) {
            const int i = 16 * part + l;
            const int q = ((qs[i] >> shift) & 3) - ((hmask[i] >> mask_bit) & 1 ? 0 : 4);
            *out++ = dl * static_cast<float>(q);
          }
        }
      }
    }
  }
}

// The 6-bit scale and min of sub-block j (0..7) of Q4_K/Q5_K, packed into 12 bytes (ggml's
// get_scale_min_k4): j < 4 in the low 6 bits of bytes j and j + 4; j >= 4 split between the
// nibbles of byte j + 4 and the top 2 bits of bytes j - 4 and j.
void k4_scale_min(int j, const uint8_t* packed, int* scale, int* min) {
  if (j < 4) {
    *scale = packed[j] & 63;
    *min = packed[j + 4] & 63;
  } else {
    *scale = (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4);
    *min = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
  }
}

// block_q4_K {half d, dmin; u8 scales[12]; u8 qs[128]}: 8 sub-blocks of 32; each 64 elements read
// 32 qs bytes, low nibbles first; value = d*scale * q - dmin*min.
void dequantize_q4_k(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, in += 144) {
    const float d = load_half(in);
    const float dmin = load_half(in + 2);
    const uint8_t* packed = in + 4;
    for (int pair = 0; pair < 4; ++pair) {
      const uint8_t* qs = in + 16 + 32 * pair;
      for (int nibble = 0; nibble < 2; ++nibble) {
        int scale = 0, min = 0;
        k4_scale_min(2 * pair + nibble, packed, &scale, &min);
        const float d1 = d * static_cast<float>(scale);
        const float m1 = dmin * static_cast<float>(min);
        for (int l = 0; l < 32; ++l) {
          *out++ = d1 * static_cast<float>((qs[l] >> (4 * nibble)) & 0x0F) - m1;
        }
      }
    }
  }
}

// block_q5_K {half d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: Q4_K plus a fifth bit per
// element, bit s of qh[l] for sub-block s.
void dequantize_q5_k(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, in += 176) {
    const float d = load_half(in);
    const float dmin = load_half(in + 2);
    const uint8_t* packed = in + 4;
    const uint8_t* qh = in + 16;
    for (int pair = 0; pair < 4; ++pair) {
      const uint8_t* qs = in + 48 + 32 * pair;
      for (int nibble = 0; nibble < 2; ++nibble) {
        const int sub_block = 2 * pair + nibble;
        int scale = 0, min = 0;
        k4_scale_min(sub_block, packed, &scale, &min);
        const float d1 = d * static_cast<float>(scale);
        const float m1 = dmin * static_cast<float>(min);
        for (int l = 0; l < 32; ++l) {
          const int q = ((qs[l] >> (4 * nibble)) & 0x0F) + ((qh[l] >> sub_block) & 1 ? 16 : 0);
          *out++ = d1 * static_cast<float>(q) - m1;
        }
      }
    }
  }
}

// block_q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; half d}: per 128-element half, element
// 32*k + l (k = 0..3) takes a nibble of ql[l] (k even) or ql[l + 32] (k odd), low for k < 2, and
// bits 2k..2k+1 of qh[l]; value = d * scale[group] * (q - 32).
void dequantize_q6_k(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, in += 210, out += kSuperBlock) {
    const int8_t* scales = reinterpret_cast<const int8_t*>(in + 192);
    const float d = load_half(in + 208);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = in + 64 * half;
      const uint8_t* qh = in + 128 + 32 * half;
      const int8_t* sc = scales + 8 * half;
      float* y = out + 128 * half;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

// block_q8_K {float d; i8 qs[256]; i16 bsums[16]}: q * d (the block sums only serve dot products).
void dequantize_q8_k(const uint8_t* in, int64_t blocks, float* out) {
  for (int64_t b = 0; b < blocks; ++b, in += 292, out += kSuperBlock) {
    const float d = float_from_bits(load_u32(in));
    for (int j = 0; j < kSuperBlock; ++j) out[j] = static_cast<float>(static_cast<int8_t>(in[4 + j])) * d;
  }
}

struct TypeTraits {
  GgmlType type;
  const char* name;
  int64_t block_elements;  // 0: halo cannot read the type
  size_t block_bytes;
  Kernel kernel;
};

constexpr TypeTraits kTypes[] = {
    {GgmlType::F32, "F32", 1, 4, dequantize_f32},
    {GgmlType::F16, "F16", 1, 2, dequantize_f16},
    {GgmlType::BF16, "BF16", 1, 2, dequantize_bf16},
    {GgmlType::Q4_0, "Q4_0", 32, 18, dequantize_q4_0},
    {GgmlType::Q4_1, "Q4_1", 32, 20, dequantize_q4_1},
    {GgmlType::Q5_0, "Q5_0", 32, 22, dequantize_q5_0},
    {GgmlType::Q5_1, "Q5_1", 32, 24, dequantize_q5_1},
    {GgmlType::Q8_0, "Q8_0", 32, 34, dequantize_q8_0},
    {GgmlType::Q2_K, "Q2_K", kSuperBlock, 84, dequantize_q2_k},
    {GgmlType::Q3_K, "Q3_K", kSuperBlock, 110, dequantize_q3_k},
    {GgmlType::Q4_K, "Q4_K", kSuperBlock, 144, dequantize_q4_k},
    {GgmlType::Q5_K, "Q5_K", kSuperBlock, 176, dequantize_q5_k},
    {GgmlType::Q6_K, "Q6_K", kSuperBlock, 210, dequantize_q6_k},
    {GgmlType::Q8_K, "Q8_K", kSuperBlock, 292, dequantize_q8_k},
    {GgmlType::Q8_1, "Q8_1", 0, 0, nullptr},
    {GgmlType::IQ2_XXS, "IQ2_XXS", 0, 0, nullptr},
    {GgmlType::IQ2_XS, "IQ2_XS", 0, 0, nullptr},
    {GgmlType::IQ3_XXS, "IQ3_XXS", 0, 0, nullptr},
    {GgmlType::IQ1_S, "IQ1_S", 0, 0, nullptr},
    {GgmlType::IQ4_NL, "IQ4_NL", 0, 0, nullptr},
    {GgmlType::IQ3_S, "IQ3_S", 0, 0, nullptr},
    {GgmlType::IQ2_S, "IQ2_S", 0, 0, nullptr},
    {GgmlType::IQ4_XS, "IQ4_XS", 0, 0, nullptr},
    {GgmlType::I8, "I8", 0, 0, nullptr},
    {GgmlType::I16, "I16", 0, 0, nullptr},
    {GgmlType::I32, "I32", 0, 0, nullptr},
    {GgmlType::I64, "I64", 0, 0, nullptr},
    {GgmlType::F64, "F64", 0, 0, nullptr},
    {GgmlType::IQ1_M, "IQ1_M", 0, 0, nullptr},
    {GgmlType::TQ1_0, "TQ1_0", 0, 0, nullptr},
    {GgmlType::TQ2_0, "TQ2_0", 0, 0, nullptr},
    {GgmlType::MXFP4, "MXFP4", 0, 0, nullptr},
};

const TypeTraits* find_traits(uint32_t type) {
  for (const TypeTraits& traits : kTypes) {
    if (static_cast<uint32_t>(traits.type) == type) return &traits;
  }
  return nullptr;
}

const TypeTraits& supported_traits(GgmlType type) {
  const TypeTraits* traits = find_traits(static_cast<uint32_t>(type));
  if (traits == nullptr) {
    fail("ggml type ", static_cast<uint32_t>(type),
         " is unknown to halo and cannot be dequantized; supported: ", ggml_supported_type_names());
  }
  if (traits->kernel == nullptr) {
    fail("ggml type ", static_cast<uint32_t>(type), " (", traits->name,
         ") cannot be dequantized by halo; supported: ", ggml_supported_type_names());
  }
  return *traits;
}

int default_thread_count(int64_t elements) {
  const int hardware = std::max(1u, std::thread::hardware_concurrency());
  const int64_t by_size = std::max<int64_t>(1, elements / kMinElementsPerThread);
  return static_cast<int>(std::min<int64_t>({hardware, kMaxDefaultThreads, by_size}));
}

}  // namespace

const char* ggml_type_name(uint32_t type) {
  if (const TypeTraits* traits = find_traits(type)) return traits->name;
  // An unknown number's name is built on first use and kept for the life of the program, so the
  // pointer stays valid like the table's names (one entry per distinct number ever asked about).
  static std::mutex mutex;
  static std::map<uint32_t, std::string> unknown_names;
  std::lock_guard<std::mutex> lock(mutex);
  auto [where, inserted] = unknown_names.emplace(type, std::string());
  if (inserted) where->second = cat("type ", type);
  return where->second.c_str();
}

bool ggml_type_supported(uint32_t type) {
  const TypeTraits* traits = find_traits(type);
  return traits != nullptr && traits->kernel != nullptr;
}

std::string ggml_supported_type_names() {
  std::string names;
  for (const TypeTraits& traits : kTypes) {
    if (traits.kernel != nullptr) names += (names.empty() ? "" : ", ") + std::string(traits.name);
  }
  return names;
}

int64_t ggml_block_elements(GgmlType type) {
  return supported_traits(type).block_elements;
}

size_t ggml_block_bytes(GgmlType type) {
  return supported_traits(type).block_bytes;
}

void dequantize(GgmlType type, const void* data, int64_t elements, float* out, int threads) {
  const TypeTraits& traits = supported_traits(type);
  if (elements < 0 || elements % traits.block_elements != 0) {
    fail("cannot dequantize ", elements, " ", traits.name, " values: the count must be a multiple of ",
         traits.block_elements, " (the block size)");
  }
  if (threads < 0 || threads > kMaxWorkerThreads) {
    fail("cannot dequantize with ", threads, " threads (0 to ", kMaxWorkerThreads, ")");
  }
  const int64_t blocks = elements / traits.block_elements;
  if (blocks == 0) return;
  const uint8_t* in = static_cast<const uint8_t*>(data);
  const int64_t workers = std::min<int64_t>(threads > 0 ? threads : default_thread_count(elements), blocks);

  // Worker w decodes blocks [w * blocks / workers, (w + 1) * blocks / workers); the caller runs w = 0.
  auto run = [&](int64_t worker) {
    const int64_t begin = worker * blocks / workers;
    const int64_t end = (worker + 1) * blocks / workers;
    traits.kernel(in + static_cast<size_t>(begin) * traits.block_bytes, end - begin,
                  out + begin * traits.block_elements);
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(workers - 1));
  try {
    for (int64_t worker = 1; worker < workers; ++worker) pool.emplace_back(run, worker);
  } catch (...) {
    for (std::thread& thread : pool) thread.join();
    throw;
  }
  run(0);
  for (std::thread& thread : pool) thread.join();
}

}  // namespace halo
