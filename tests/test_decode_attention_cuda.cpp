// The flash-decoding kernel (src/decode_attention_cuda.cu; label "cuda", built with HALO_CUDA only,
// skipped without a GPU) against a float64 CPU reference on the same rounded inputs: softmax over
// each row's valid keys padding[b] <= j < length, the query heads of a KV head sharing its keys.
// Every cache slot outside the valid range holds NaN, so a single read of one would show in the
// output. Errors are ||got - want|| / ||want||: at most 1e-4 in float32, 1e-2 in half types.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "halo/causal_lm.h"
#include "ops/decode_attention.h"
#include "ops/decode_attention_cuda.h"

namespace halo {
namespace {

struct Case {
  int64_t batch, heads, kv_heads, head_dim, capacity, length;
  std::vector<int64_t> padding;  // empty: none
  int64_t spare_slots = 0;       // the cache as a view of a longer buffer (other strides)
};

std::string describe(const Case& c, at::ScalarType dtype) {
  std::string s = std::string(c10::toString(dtype)) + " B " + std::to_string(c.batch) + " H " +
                  std::to_string(c.heads) + " KV " + std::to_string(c.kv_heads) + " D " + std::to_string(c.head_dim) +
                  " capacity " + std::to_string(c.capacity) + " length " + std::to_string(c.length) + " padding";
  for (int64_t p : c.padding) s += " " + std::to_string(p);
  return s;
}

// q [B,H,D], k, v [B,KV,S,D] float64 on the CPU.
at::Tensor reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t length,
                     const std::vector<int64_t>& padding, double scale) {
  const int64_t groups = q.size(1) / k.size(1);
  const int64_t end = std::min(length, k.size(2));
  at::Tensor out = at::zeros_like(q);
  for (int64_t b = 0; b < q.size(0); ++b) {
    const int64_t begin = padding.empty() ? 0 : padding[b];
    if (begin >= end) continue;                                                         // no valid key: zeros
    at::Tensor keys = k[b].narrow(1, begin, end - begin).repeat_interleave(groups, 0);  // [H, n, D]
    at::Tensor values = v[b].narrow(1, begin, end - begin).repeat_interleave(groups, 0);
    at::Tensor weights = at::softmax(at::matmul(q[b].unsqueeze(1), keys.transpose(1, 2)) * scale, -1);
    out[b] = at::matmul(weights, values).squeeze(1);
  }
  return out;
}

void check(const Case& c, at::ScalarType dtype) {
  SCOPED_TRACE(describe(c, dtype));
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Device gpu(at::kCUDA, 0);
  at::Tensor q = at::randn({c.batch, c.heads, c.head_dim}, f64).to(dtype);
  const std::vector<int64_t> shape = {c.batch, c.kv_heads, c.capacity + c.spare_slots, c.head_dim};
  at::Tensor k = at::full(shape, NAN, f64).to(dtype), v = at::full(shape, NAN, f64).to(dtype);
  const int64_t end = std::min(c.length, c.capacity);
  for (int64_t b = 0; b < c.batch; ++b) {
    const int64_t begin = c.padding.empty() ? 0 : c.padding[b];
    if (begin >= end) continue;
    k[b].narrow(1, begin, end - begin).copy_(at::randn({c.kv_heads, end - begin, c.head_dim}, f64) * 2);
    v[b].narrow(1, begin, end - begin).copy_(at::randn({c.kv_heads, end - begin, c.head_dim}, f64));
  }
  // Moved whole, then narrowed: to() would make a narrowed view contiguous.
  at::Tensor k_gpu = k.to(gpu).narrow(2, 0, c.capacity), v_gpu = v.to(gpu).narrow(2, 0, c.capacity);
  at::Tensor q_gpu = q.to(gpu);
  k = k.narrow(2, 0, c.capacity);
  v = v.narrow(2, 0, c.capacity);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  const at::Tensor want =
      reference(q.to(at::kDouble), k.to(at::kDouble), v.to(at::kDouble), c.length, c.padding, scale);

  ASSERT_TRUE(decode_attention_cuda_supported(q_gpu, k_gpu, v_gpu));
  at::Tensor length = at::full({1}, c.length, at::TensorOptions().dtype(at::kLong).device(gpu));
  at::Tensor padding = c.padding.empty() ? at::Tensor() : at::tensor(c.padding, at::kLong).to(gpu);
  at::Tensor got = decode_attention_cuda(q_gpu, k_gpu, v_gpu, length, padding, scale).cpu();
  ASSERT_EQ(got.scalar_type(), dtype);
  ASSERT_EQ(got.sizes(), q.sizes());
  EXPECT_TRUE(at::isfinite(got).all().item<bool>());
  const double tolerance = dtype == at::kFloat ? 1e-4 : 1e-2;
  const double norm = want.norm().item<double>();
  EXPECT_LE((got.to(at::kDouble) - want).norm().item<double>(), tolerance * norm);
  // Rows with no valid key are exactly zero.
  for (int64_t b = 0; b < c.batch; ++b) {
    if (!c.padding.empty() && c.padding[b] >= end) EXPECT_EQ(got[b].abs().max().item<double>(), 0.0) << "row " << b;
  }
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {1, 16, 8, 128, 5000, 1, {}},            // one key
      {1, 16, 8, 128, 5000, 4097, {}},         // not a multiple of the split size
      {2, 16, 8, 128, 3000, 3000, {0, 1234}},  // length == capacity, padding
      {2, 4, 2, 32, 300, 257, {0, 100}, 12},   // the fixtures' shape, a strided cache
      {3, 8, 1, 64, 1000, 999, {0, 5, 998}},   // 8 heads on one KV head; a row with one key
      {2, 8, 8, 256, 700, 650, {3, 650}},      // D = 256; a row with no valid key
      {1, 4, 4, 128, 40, 100, {}},             // length past the capacity: clamped
      {1, 16, 8, 128, 131072, 100003, {}},     // 128K cache, many splits
  };
  return all;
}

TEST(DecodeAttentionCuda, MatchesFloat64Reference) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(7);
  for (const Case& c : cases()) {
    for (at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) check(c, dtype);
  }
}

TEST(DecodeAttentionCuda, UnsupportedShapesFallBackToAten) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const auto options = at::TensorOptions().device(at::Device(at::kCUDA, 0));
  // 3 query heads per KV head and D = 80: not kernel shapes; decode_attention still answers.
  for (auto [heads, kv, d] : {std::tuple<int64_t, int64_t, int64_t>{6, 2, 32}, {4, 2, 80}}) {
    at::Tensor q = at::randn({2, heads, d}, options);
    at::Tensor k = at::randn({2, kv, 50, d}, options), v = at::randn({2, kv, 50, d}, options);
    EXPECT_FALSE(decode_attention_cuda_supported(q, k, v));
    at::Tensor length = at::full({1}, 30, options.dtype(at::kLong));
    at::Tensor got = decode_attention(q, k, v, length, {}, 0.1);
    at::Tensor want = reference(q.cpu().to(at::kDouble), k.cpu().to(at::kDouble), v.cpu().to(at::kDouble), 30, {}, 0.1);
    EXPECT_LE((got.cpu().to(at::kDouble) - want).norm().item<double>(), 1e-4 * want.norm().item<double>());
  }
}

}  // namespace
}  // namespace halo
