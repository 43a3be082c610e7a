// GGUF reading and ggml dequantization, torch-free. A small GGUF writer below builds files byte by
// byte (versions 2 and 3, every metadata kind, custom alignment, several tensor types), so the
// tests cover round trips and, by editing single fields, every kind of corruption: each must be
// one halo::Error line naming the file, raised quickly, never a crash or a huge allocation.
// Dequantization is compared with a deliberately plain reference written here from the ggml block
// layouts (one element at a time), on several thread counts, and with hand-made blocks whose
// values are worked out by hand. Self-contained: gtest and halo headers only; temporary files
// live in a mkdtemp directory that each test removes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/gguf.h"
#include "test_support.h"

namespace halo {
namespace {

using Kind = GgufValue::Kind;

// ---------------------------------------------------------------------------------------------
// A minimal GGUF writer (tests only).

using test::put;
using test::put_string;

struct TensorSpec {
  std::string name;
  uint32_t type;
  std::vector<uint64_t> ne;
  std::string data;
  std::optional<uint64_t> offset;  // relative to the data section; default: next aligned spot
};

class GgufBuilder {
 public:
  explicit GgufBuilder(uint32_t version = 3) : version_(version) {}

  // A key with an already encoded value (everything after the type field).
  GgufBuilder& kv(const std::string& key, Kind kind, const std::string& payload) {
    put_string(kvs_, key);
    put<uint32_t>(kvs_, static_cast<uint32_t>(kind));
    kvs_ += payload;
    ++kv_count_;
    return *this;
  }
  template <class T>
  GgufBuilder& scalar(const std::string& key, Kind kind, T value) {
    std::string payload;
    put(payload, value);
    return kv(key, kind, payload);
  }
  GgufBuilder& string(const std::string& key, const std::string& value) {
    std::string payload;
    put_string(payload, value);
    return kv(key, Kind::STRING, payload);
  }
  template <class T>
  GgufBuilder& array(const std::string& key, Kind element_kind, const std::vector<T>& values) {
    std::string payload;
    put<uint32_t>(payload, static_cast<uint32_t>(element_kind));
    put<uint64_t>(payload, values.size());
    for (const T& value : values) put(payload, value);
    return kv(key, Kind::ARRAY, payload);
  }
  GgufBuilder& string_array(const std::string& key, const std::vector<std::string>& values) {
    std::string payload;
    put<uint32_t>(payload, static_cast<uint32_t>(Kind::STRING));
    put<uint64_t>(payload, values.size());
    for (const std::string& value : values) put_string(payload, value);
    return kv(key, Kind::ARRAY, payload);
  }
  // Writes general.alignment and lays the data out with it.
  GgufBuilder& alignment(uint32_t alignment) {
    alignment_ = alignment;
    return scalar("general.alignment", Kind::UINT32, alignment);
  }
  GgufBuilder& tensor(TensorSpec spec) {
    tensors_.push_back(std::move(spec));
    return *this;
  }

  // The file's bytes; the last tensor's data end the file (no trailing padding), so cutting any
  // byte off leaves a tensor running past the end.
  std::string build() const {
    std::string out = "GGUF";
    put<uint32_t>(out, version_);
    put<uint64_t>(out, tensors_.size());
    put<uint64_t>(out, kv_count_);
    out += kvs_;
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const TensorSpec& spec : tensors_) {
      const uint64_t offset = spec.offset.value_or(align(next));
      offsets.push_back(offset);
      next = offset + spec.data.size();
      put_string(out, spec.name);
      put<uint32_t>(out, static_cast<uint32_t>(spec.ne.size()));
      for (uint64_t extent : spec.ne) put<uint64_t>(out, extent);
      put<uint32_t>(out, spec.type);
      put<uint64_t>(out, offset);
    }
    const uint64_t data_offset = align(out.size());
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const uint64_t begin = data_offset + offsets[i];
      if (offsets[i] > kMaxPlacedOffset) continue;  // an absurd offset under test: no data there
      if (out.size() < begin) out.resize(begin, '\0');
      out.replace(begin, tensors_[i].data.size(), tensors_[i].data);
    }
    if (tensors_.empty()) out.resize(data_offset, '\0');
    return out;
  }

 private:
  static constexpr uint64_t kMaxPlacedOffset = 1 << 20;

  uint64_t align(uint64_t offset) const { return (offset + alignment_ - 1) / alignment_ * alignment_; }

  uint32_t version_;
  uint64_t alignment_ = 32;
  std::string kvs_;
  uint64_t kv_count_ = 0;
  std::vector<TensorSpec> tensors_;
};

// The bytes of float32 values, for tensor data.
std::string f32_bytes(const std::vector<float>& values) {
  return {reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)};
}

// ---------------------------------------------------------------------------------------------
// Fixture and error checks.

class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/halo_gguf_test_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { remove_tree(dir_); }

  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(out.good()) << path;
    return path;
  }

  std::string dir_;
};

// Opening `path` must fail with one halo::Error line that names the file and contains `needle`,
// within a second (absurd counts must fail before any work proportional to them).
void expect_open_fails(const std::string& path, const std::string& needle) {
  const auto start = std::chrono::steady_clock::now();
  try {
    GgufFile file(path);
    ADD_FAILURE() << path << " opened; expected an error containing \"" << needle << "\"";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << message;
    EXPECT_EQ(error.exit_code(), kExitBadInput);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 1.0) << path;
}

template <class Function>
void expect_error(const Function& function, const std::string& needle) {
  try {
    function();
    ADD_FAILURE() << "no error; expected one containing \"" << needle << "\"";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << message;
  }
}

// A file with a bit of everything, for the round trip, the truncation sweep and the byte flips.
GgufBuilder full_builder(uint32_t version) {
  GgufBuilder builder(version);
  builder.string("general.architecture", "llama")
      .scalar<uint8_t>("u8", Kind::UINT8, 200)
      .scalar<int8_t>("i8", Kind::INT8, -100)
      .scalar<uint16_t>("u16", Kind::UINT16, 60000)
      .scalar<int16_t>("i16", Kind::INT16, -30000)
      .scalar<uint32_t>("u32", Kind::UINT32, 4000000000u)
      .scalar<int32_t>("i32", Kind::INT32, -2000000000)
      .scalar<float>("f32", Kind::FLOAT32, 1.5f)
      .scalar<uint8_t>("bool.true", Kind::BOOL, 1)
      .scalar<uint8_t>("bool.false", Kind::BOOL, 0)
      .scalar<uint64_t>("u64", Kind::UINT64, 1ull << 40)
      .scalar<uint64_t>("u64.huge", Kind::UINT64, 18000000000000000000ull)
      .scalar<int64_t>("i64", Kind::INT64, -(1ll << 50))
      .scalar<double>("f64", Kind::FLOAT64, -0.125)
      .alignment(64)
      .string_array("tokens", {"<s>", "", "hello world", std::string("nul\0byte", 8)})
      .array<int32_t>("token_type", Kind::INT32, {1, -2, 3})
      .array<uint8_t>("u8.array", Kind::UINT8, {0, 255})
      .array<uint64_t>("u64.array", Kind::UINT64, {7, 1ull << 63})
      .array<float>("f32.array", Kind::FLOAT32, {0.5f, -2.0f})
      .array<double>("f64.array", Kind::FLOAT64, {1e300})
      .array<uint8_t>("bool.array", Kind::BOOL, {1, 0, 1})
      .array<int16_t>("empty.array", Kind::INT16, {});
  std::vector<float> matrix = {1, 2, 3, 4, 5, 6};
  std::string halves;
  for (uint16_t half : {0x3C00, 0xC000, 0x0000, 0x7BFF}) put<uint16_t>(halves, half);  // 1, -2, 0, 65504
  std::string q8(2 * 34, '\0');
  q8[0] = 0x00;
  q8[1] = 0x38;  // d = 0.5 for the first block, 0 for the second
  q8[2] = 4;
  builder.tensor({"blk.0.attn_q.weight", 0, {3, 2}, f32_bytes(matrix), {}})
      .tensor({"scalar", 0, {}, f32_bytes({42.0f}), {}})
      .tensor({"halves", 1, {4}, halves, {}})
      .tensor({"q8", 8, {32, 2}, q8, {}})
      .tensor({"q4k", 12, {256}, std::string(144, '\x11'), {}});
  return builder;
}

// ---------------------------------------------------------------------------------------------
// Reading.

TEST_F(GgufTest, RoundTripsEveryMetadataKindAndTensorInfo) {
  for (uint32_t version : {2u, 3u}) {
    SCOPED_TRACE(version);
    const std::string bytes = full_builder(version).build();
    const std::string path = write(cat("full_v", version, ".gguf"), bytes);
    GgufFile file(path);
    EXPECT_EQ(file.path(), path);
    EXPECT_EQ(file.version(), version);
    EXPECT_EQ(file.alignment(), 64u);
    EXPECT_EQ(file.data_offset() % 64, 0u);

    const std::vector<std::string> expected_keys = {"general.architecture",
                                                    "u8",
                                                    "i8",
                                                    "u16",
                                                    "i16",
                                                    "u32",
                                                    "i32",
                                                    "f32",
                                                    "bool.true",
                                                    "bool.false",
                                                    "u64",
                                                    "u64.huge",
                                                    "i64",
                                                    "f64",
                                                    "general.alignment",
                                                    "tokens",
                                                    "token_type",
                                                    "u8.array",
                                                    "u64.array",
                                                    "f32.array",
                                                    "f64.array",
                                                    "bool.array",
                                                    "empty.array"};
    EXPECT_EQ(file.keys(), expected_keys);

    EXPECT_EQ(file.string_value("general.architecture"), "llama");
    EXPECT_EQ(file.int_value("u8"), 200);
    EXPECT_EQ(file.int_value("i8"), -100);
    EXPECT_EQ(file.int_value("u16"), 60000);
    EXPECT_EQ(file.int_value("i16"), -30000);
    EXPECT_EQ(file.int_value("u32"), 4000000000ll);
    EXPECT_EQ(file.int_value("i32"), -2000000000);
    EXPECT_EQ(file.float_value("f32"), 1.5);
    EXPECT_TRUE(file.bool_value("bool.true"));
    EXPECT_FALSE(file.bool_value("bool.false"));
    EXPECT_EQ(file.int_value("u64"), 1ll << 40);
    EXPECT_EQ(file.int_value("i64"), -(1ll << 50));
    EXPECT_EQ(file.float_value("f64"), -0.125);
    EXPECT_EQ(file.float_value("u32"), 4e9);  // integers are numbers too
    EXPECT_EQ(file.float_value("u64.huge"), 18000000000000000000.0);
    EXPECT_EQ(file.int_value("general.alignment"), 64);

    const GgufValue* huge = file.find("u64.huge");
    ASSERT_NE(huge, nullptr);
    EXPECT_EQ(huge->kind, Kind::UINT64);
    EXPECT_FALSE(huge->is_array());
    EXPECT_EQ(huge->size(), 1u);
    EXPECT_EQ(static_cast<uint64_t>(huge->integers[0]), 18000000000000000000ull);
    expect_error([&] { file.int_value("u64.huge"); }, "does not fit");

    EXPECT_EQ(file.string_array("tokens"),
              (std::vector<std::string>{"<s>", "", "hello world", std::string("nul\0byte", 8)}));
    EXPECT_EQ(file.int_array("token_type"), (std::vector<int64_t>{1, -2, 3}));
    EXPECT_EQ(file.int_array("u8.array"), (std::vector<int64_t>{0, 255}));
    EXPECT_EQ(file.float_array("f32.array"), (std::vector<double>{0.5, -2.0}));
    EXPECT_EQ(file.float_array("f64.array"), (std::vector<double>{1e300}));
    EXPECT_EQ(file.float_array("token_type"), (std::vector<double>{1, -2, 3}));
    EXPECT_TRUE(file.int_array("empty.array").empty());
    expect_error([&] { file.int_array("u64.array"); }, "does not fit");
    const GgufValue* bools = file.find("bool.array");
    ASSERT_NE(bools, nullptr);
    EXPECT_TRUE(bools->is_array());
    EXPECT_EQ(bools->element_kind, Kind::BOOL);
    EXPECT_EQ(bools->integers, (std::vector<int64_t>{1, 0, 1}));
    EXPECT_EQ(file.find("empty.array")->element_kind, Kind::INT16);

    // Optional getters, and typed getters on missing keys or the wrong kind.
    EXPECT_EQ(file.optional_string("general.architecture"), std::optional<std::string>("llama"));
    EXPECT_EQ(file.optional_string("absent"), std::nullopt);
    EXPECT_EQ(file.optional_int("i8"), std::optional<int64_t>(-100));
    EXPECT_EQ(file.optional_int("absent"), std::nullopt);
    EXPECT_EQ(file.optional_float("f64"), std::optional<double>(-0.125));
    EXPECT_EQ(file.optional_bool("bool.true"), std::optional<bool>(true));
    EXPECT_EQ(file.optional_bool("absent"), std::nullopt);
    EXPECT_EQ(file.find("absent"), nullptr);
    expect_error([&] { file.string_value("absent"); }, path + ": metadata key 'absent' is missing");
    expect_error([&] { file.int_value("general.architecture"); }, "holds a STRING, expected an integer");
    expect_error([&] { file.int_value("f32"); }, "holds a FLOAT32");
    expect_error([&] { file.int_value("bool.true"); }, "holds a BOOL");
    expect_error([&] { file.bool_value("u8"); }, "holds a UINT8");
    expect_error([&] { file.string_value("tokens"); }, "holds an array of STRING");
    expect_error([&] { file.string_array("token_type"); }, "holds an array of INT32");
    expect_error([&] { file.int_array("u8"); }, "holds a UINT8, expected an array of integers");
    expect_error([&] { file.optional_int("f64.array"); }, path);

    // Tensors: infos, shapes, and data pointers into the map at aligned offsets.
    ASSERT_EQ(file.tensors().size(), 5u);
    const GgufTensorInfo* matrix = file.find_tensor("blk.0.attn_q.weight");
    ASSERT_NE(matrix, nullptr);
    EXPECT_EQ(matrix, &file.tensors()[0]);
    EXPECT_EQ(matrix->type, GgmlType::F32);
    EXPECT_EQ(matrix->ne, (std::vector<int64_t>{3, 2}));
    EXPECT_EQ(matrix->shape(), (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(matrix->elements, 6);
    EXPECT_EQ(matrix->nbytes, 24u);
    EXPECT_EQ(std::memcmp(matrix->data, f32_bytes({1, 2, 3, 4, 5, 6}).data(), 24), 0);
    const GgufTensorInfo& scalar = file.tensors()[1];
    EXPECT_TRUE(scalar.ne.empty());
    EXPECT_TRUE(scalar.shape().empty());
    EXPECT_EQ(scalar.elements, 1);
    const GgufTensorInfo* q8 = file.find_tensor("q8");
    ASSERT_NE(q8, nullptr);
    EXPECT_EQ(q8->type, GgmlType::Q8_0);
    EXPECT_EQ(q8->shape(), (std::vector<int64_t>{2, 32}));
    EXPECT_EQ(q8->nbytes, 68u);
    const GgufTensorInfo* q4k = file.find_tensor("q4k");
    ASSERT_NE(q4k, nullptr);
    EXPECT_EQ(q4k->type, GgmlType::Q4_K);
    EXPECT_EQ(q4k->nbytes, 144u);
    EXPECT_EQ(file.find_tensor("absent"), nullptr);
    const uint8_t* base = file.tensors()[0].data - file.tensors()[0].file_offset;
    for (const GgufTensorInfo& tensor : file.tensors()) {
      SCOPED_TRACE(tensor.name);
      EXPECT_EQ(tensor.file_offset % 64, 0u);
      EXPECT_GE(tensor.file_offset, file.data_offset());
      EXPECT_EQ(tensor.data, base + tensor.file_offset);
      EXPECT_LE(tensor.file_offset + tensor.nbytes, bytes.size());
      EXPECT_EQ(std::memcmp(tensor.data, bytes.data() + tensor.file_offset, tensor.nbytes), 0);
    }
    EXPECT_EQ(file.tensors().back().file_offset + file.tensors().back().nbytes, bytes.size());

    std::vector<float> values(4);
    dequantize(file.find_tensor("halves")->type, file.find_tensor("halves")->data, 4, values.data());
    EXPECT_EQ(values, (std::vector<float>{1.0f, -2.0f, 0.0f, 65504.0f}));
    std::vector<float> q8_values(64);
    dequantize(q8->type, q8->data, q8->elements, q8_values.data());
    std::vector<float> q8_expected(64, 0.0f);
    q8_expected[0] = 2.0f;  // 4 * 0.5
    EXPECT_EQ(q8_values, q8_expected);
  }
}

TEST_F(GgufTest, DefaultAlignmentIs32AndFilesWithoutTensorsOpen) {
  GgufBuilder builder(3);
  builder.string("general.name", "x")
      .tensor({"a", 0, {1}, f32_bytes({1}), {}})
      .tensor({"b", 0, {2}, f32_bytes({2, 3}), {}});
  GgufFile file(write("default.gguf", builder.build()));
  EXPECT_EQ(file.alignment(), 32u);
  EXPECT_EQ(file.tensors()[1].file_offset - file.tensors()[0].file_offset, 32u);

  GgufFile empty(write("empty.gguf", GgufBuilder(2).build()));
  EXPECT_TRUE(empty.keys().empty());
  EXPECT_TRUE(empty.tensors().empty());
}

TEST_F(GgufTest, EveryTruncationIsAnError) {
  const std::string bytes = full_builder(3).build();
  const std::string path = write("cut.gguf", bytes);
  EXPECT_EQ(GgufFile(path).tensors().size(), 5u);  // the whole file is fine
  for (size_t cut = bytes.size(); cut-- > 0;) {
    SCOPED_TRACE(cut);
    ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(cut)), 0);
    expect_open_fails(path, cut == 0 ? "empty" : "");
  }
}

TEST_F(GgufTest, RandomByteCorruptionsNeverCrash) {
  const std::string bytes = full_builder(3).build();
  const std::string path = write("flip.gguf", bytes);
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  std::mt19937 random(7);
  std::uniform_int_distribution<size_t> position(0, bytes.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int trial = 0; trial < 1000; ++trial) {
    const size_t at = position(random);
    const char corrupt = static_cast<char>(byte(random));
    ASSERT_EQ(::pwrite(fd, &corrupt, 1, static_cast<off_t>(at)), 1);
    try {
      GgufFile file(path);  // a flip in data or in a value can leave a valid file: read it all
      for (const GgufTensorInfo& tensor : file.tensors()) {
        std::vector<float> values(static_cast<size_t>(tensor.elements));
        dequantize(tensor.type, tensor.data, tensor.elements, values.data(), 2);
      }
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
      EXPECT_NE(message.find(path), std::string::npos) << message;
    }
    ASSERT_EQ(::pwrite(fd, &bytes[at], 1, static_cast<off_t>(at)), 1);
  }
  ::close(fd);
}

TEST_F(GgufTest, TruncatedTensorDataNamesTheTensor) {
  const std::string bytes = full_builder(3).build();
  const std::string path = write("short.gguf", bytes.substr(0, bytes.size() - 1));
  expect_open_fails(path, "tensor 'q4k' data [");
  expect_open_fails(
      path, cat("runs past the end of the file (size ", bytes.size() - 1, "); the file is truncated or corrupt"));
}

TEST_F(GgufTest, AbsurdCountsFailBeforeAllocating) {
  std::string header = "GGUF";
  put<uint32_t>(header, 3);

  std::string tensors = header;
  put<uint64_t>(tensors, 1ull << 62);
  put<uint64_t>(tensors, 0);
  expect_open_fails(write("tensors.gguf", tensors), "tensor count is 4611686018427387904");

  std::string keys = header;
  put<uint64_t>(keys, 0);
  put<uint64_t>(keys, 1ull << 60);
  expect_open_fails(write("keys.gguf", keys), "metadata key count");

  std::string key_length = header;
  put<uint64_t>(key_length, 0);
  put<uint64_t>(key_length, 1);
  put<uint64_t>(key_length, 1ull << 63);
  key_length.append(16, '\0');
  expect_open_fails(write("key_length.gguf", key_length), "the name of metadata key 0");

  GgufBuilder long_value(3);
  std::string payload;
  put<uint64_t>(payload, 1ull << 63);
  payload += "abc";
  long_value.kv("name", Kind::STRING, payload);
  expect_open_fails(write("string_length.gguf", long_value.build()), "value of metadata key 'name'");

  GgufBuilder long_array(3);
  std::string elements;
  put<uint32_t>(elements, static_cast<uint32_t>(Kind::UINT8));
  put<uint64_t>(elements, 1ull << 60);
  elements += "abcd";
  long_array.kv("big", Kind::ARRAY, elements);
  expect_open_fails(write("array.gguf", long_array.build()), "element count of metadata key 'big'");

  GgufBuilder long_strings(3);
  std::string strings;
  put<uint32_t>(strings, static_cast<uint32_t>(Kind::STRING));
  put<uint64_t>(strings, 1000);  // 1000 strings need at least 8000 bytes
  put_string(strings, "only one");
  long_strings.kv("vocab", Kind::ARRAY, strings);
  expect_open_fails(write("strings.gguf", long_strings.build()), "element count of metadata key 'vocab'");

  GgufBuilder dims(3);
  dims.tensor({"t", 0, {1, 1, 1, 1, 1, 1, 1, 1, 1}, f32_bytes({1}), {}});
  expect_open_fails(write("dims.gguf", dims.build()), "tensor 't' has 9 dimensions");

  GgufBuilder huge_dims(3);
  huge_dims.tensor({"t", 0, {1ull << 40, 1ull << 40}, f32_bytes({1}), {}});
  expect_open_fails(write("huge_dims.gguf", huge_dims.build()), "tensor 't' has dimensions too large");

  GgufBuilder huge_tensor(3);
  huge_tensor.tensor({"t", 0, {1ull << 62}, f32_bytes({1}), {}});  // 2^64 bytes
  expect_open_fails(write("huge_tensor.gguf", huge_tensor.build()), "tensor 't' is too large");

  GgufBuilder far_offset(3);
  far_offset.tensor({"t", 0, {1}, f32_bytes({1}), uint64_t{1} << 63});
  expect_open_fails(write("far_offset.gguf", far_offset.build()), "tensor 't' data [");
  GgufBuilder wrapping_offset(3);
  wrapping_offset.tensor({"t", 0, {1}, f32_bytes({1}), ~uint64_t{31}});
  expect_open_fails(write("wrapping_offset.gguf", wrapping_offset.build()), "data offset");
}

TEST_F(GgufTest, MalformedHeadersAreErrors) {
  std::string not_gguf = GgufBuilder(3).build();
  not_gguf[0] = 'X';
  expect_open_fails(write("magic.gguf", not_gguf), "not a GGUF file");
  expect_open_fails(write("tiny.gguf", "GG"), "not a GGUF file");

  expect_open_fails(write("v1.gguf", GgufBuilder(1).build()), "GGUF version 1, which halo does not read");
  expect_open_fails(write("v4.gguf", GgufBuilder(4).build()), "GGUF version 4");
  expect_open_fails(write("big_endian.gguf", GgufBuilder(0x03000000).build()), "big-endian");

  GgufBuilder zero(3);
  zero.scalar<uint32_t>("general.alignment", Kind::UINT32, 0);
  expect_open_fails(write("align0.gguf", zero.build()), "general.alignment is 0");
  GgufBuilder three(3);
  three.scalar<uint32_t>("general.alignment", Kind::UINT32, 3);
  expect_open_fails(write("align3.gguf", three.build()), "general.alignment is 3");
  GgufBuilder text(3);
  text.string("general.alignment", "32");
  expect_open_fails(write("align_text.gguf", text.build()), "holds a STRING, expected an integer");

  GgufBuilder duplicate_key(3);
  duplicate_key.scalar<uint32_t>("k", Kind::UINT32, 1).scalar<uint32_t>("k", Kind::UINT32, 2);
  expect_open_fails(write("dup_key.gguf", duplicate_key.build()), "metadata key 'k' appears twice");

  GgufBuilder bad_kind(3);
  bad_kind.kv("k", static_cast<Kind>(13), "");
  expect_open_fails(write("kind.gguf", bad_kind.build()), "value type 13, which is not a GGUF type");

  GgufBuilder nested(3);
  std::string inner;
  put<uint32_t>(inner, static_cast<uint32_t>(Kind::ARRAY));
  put<uint64_t>(inner, 0);
  nested.kv("nested", Kind::ARRAY, inner);
  expect_open_fails(write("nested.gguf", nested.build()), "metadata key 'nested' is an array of arrays");

  GgufBuilder newline(3);
  newline.scalar<uint32_t>("a\nb", Kind::UINT32, 1).scalar<uint32_t>("a\nb", Kind::UINT32, 1);
  expect_open_fails(write("newline.gguf", newline.build()), "'a\\x0ab' appears twice");
}

TEST_F(GgufTest, BadTensorsAreErrors) {
  GgufBuilder misaligned(3);
  misaligned.tensor({"t", 0, {1}, f32_bytes({1}), uint64_t{4}});
  expect_open_fails(write("misaligned.gguf", misaligned.build()),
                    "tensor 't' data offset 4 is not a multiple of the alignment 32");

  GgufBuilder duplicate(3);
  duplicate.tensor({"t", 0, {1}, f32_bytes({1}), {}}).tensor({"t", 0, {1}, f32_bytes({1}), {}});
  expect_open_fails(write("dup_tensor.gguf", duplicate.build()), "tensor 't' appears twice");

  GgufBuilder overlap(3);
  overlap.tensor({"a", 0, {16}, std::string(64, '\0'), uint64_t{0}})
      .tensor({"b", 0, {8}, std::string(32, '\0'), uint64_t{32}});
  expect_open_fails(write("overlap.gguf", overlap.build()), "tensors 'a' and 'b' overlap");

  GgufBuilder iq4(3);
  iq4.tensor({"blk.0.ffn_down.weight", 23, {256}, std::string(136, '\0'), {}});
  expect_open_fails(write("iq4.gguf", iq4.build()),
                    "tensor 'blk.0.ffn_down.weight' has ggml type 23 (IQ4_XS), which halo cannot dequantize; "
                    "supported: F32, F16, BF16, Q4_0");
  GgufBuilder unknown(3);
  unknown.tensor({"t", 99, {1}, std::string(4, '\0'), {}});
  expect_open_fails(write("unknown.gguf", unknown.build()),
                    "tensor 't' has ggml type 99, which halo cannot dequantize");

  GgufBuilder partial_block(3);
  partial_block.tensor({"t", 8, {16}, std::string(34, '\0'), {}});
  expect_open_fails(write("partial.gguf", partial_block.build()),
                    "rows of 16 elements, not a multiple of the Q8_0 block size 32");
}

TEST_F(GgufTest, NonFilesAreErrorsWithoutBlocking) {
  expect_open_fails(dir_ + "/missing.gguf", "no such file");
  expect_open_fails(dir_, "is a directory");
  const std::string fifo = dir_ + "/fifo.gguf";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_open_fails(fifo, "not a regular file");
  expect_open_fails(write("empty.gguf", ""), "empty");
}

// ---------------------------------------------------------------------------------------------
// Dequantization against a plain reference.

uint16_t u16_at(const uint8_t* bytes) {
  return static_cast<uint16_t>(bytes[0] | bytes[1] << 8);
}

// IEEE half from its definition: (-1)^s * 2^(e-15) * 1.m, subnormals 2^-14 * 0.m.
float reference_half(uint16_t half) {
  const int sign = half >> 15, exponent = (half >> 10) & 31, mantissa = half & 1023;
  double magnitude;
  if (exponent == 31) {
    magnitude = mantissa ? NAN : INFINITY;
  } else if (exponent == 0) {
    magnitude = std::ldexp(mantissa, -24);
  } else {
    magnitude = std::ldexp(1024 + mantissa, exponent - 25);
  }
  return static_cast<float>(sign ? -magnitude : magnitude);
}

float half_at(const uint8_t* bytes) {
  return reference_half(u16_at(bytes));
}

float f32_at(const uint8_t* bytes) {
  float value;
  std::memcpy(&value, bytes, 4);
  return value;
}

// Element i of one block, computed directly from the block layout.
float reference_element(GgmlType type, const uint8_t* b, int i) {
  switch (type) {
    case GgmlType::F32:
      return f32_at(b);
    case GgmlType::F16:
      return half_at(b);
    case GgmlType::BF16: {
      const uint32_t bits = static_cast<uint32_t>(u16_at(b)) << 16;
      float value;
      std::memcpy(&value, &bits, 4);
      return value;
    }
    case GgmlType::Q4_0: {  // d, qs[16]: element i < 16 in the low nibble of qs[i], else high of qs[i-16]
      const int nibble = i < 16 ? b[2 + i] & 15 : b[2 + i - 16] >> 4;
      return static_cast<float>(nibble - 8) * half_at(b);
    }
    case GgmlType::Q4_1: {  // d, m, qs[16]
      const int nibble = i < 16 ? b[4 + i] & 15 : b[4 + i - 16] >> 4;
      return static_cast<float>(nibble) * half_at(b) + half_at(b + 2);
    }
    case GgmlType::Q5_0: {  // d, qh (32 bits, bit i = fifth bit of element i), qs[16]
      const int nibble = i < 16 ? b[6 + i] & 15 : b[6 + i - 16] >> 4;
      const int high = (b[2 + i / 8] >> (i % 8)) & 1;
      return static_cast<float>((nibble | high << 4) - 16) * half_at(b);
    }
    case GgmlType::Q5_1: {  // d, m, qh, qs[16]
      const int nibble = i < 16 ? b[8 + i] & 15 : b[8 + i - 16] >> 4;
      const int high = (b[4 + i / 8] >> (i % 8)) & 1;
      return static_cast<float>(nibble | high << 4) * half_at(b) + half_at(b + 2);
    }
    case GgmlType::Q8_0:  // d, qs[32] signed
      return static_cast<float>(static_cast<int8_t>(b[2 + i])) * half_at(b);
    case GgmlType::Q2_K: {  // scales[16], qs[64], d, dmin
      const int group = i / 16, half = i / 128, r = i % 128;
      const int q = (b[16 + 32 * half + r % 32] >> (2 * (r / 32))) & 3;
      const uint8_t scale = b[group];
      return half_at(b + 80) * static_cast<float>(scale & 15) * static_cast<float>(q) -
             half_at(b + 82) * static_cast<float>(scale >> 4);
    }
    case GgmlType::Q3_K: {  // hmask[32], qs[64], scales[12], d
      const int group = i / 16, half = i / 128, r = i % 128, j = r / 32;
      const uint8_t* scales = b + 96;
      const int low = group < 8 ? scales[group] & 15 : scales[group - 8] >> 4;
      const int high = (scales[8 + group % 4] >> (2 * (group / 4))) & 3;
      const int q2 = (b[32 + 32 * half + r % 32] >> (2 * j)) & 3;
      const int high_bit = (b[i % 32] >> (4 * half + j)) & 1;
      return half_at(b + 108) * static_cast<float>((low | high << 4) - 32) *
             static_cast<float>(q2 - (high_bit ? 0 : 4));
    }
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {  // d, dmin, scales[12], (Q5_K: qh[32]), qs[128]
      const int sub = i / 32;
      const uint8_t* packed = b + 4;
      int scale, min;
      if (sub < 4) {
        scale = packed[sub] & 63;
        min = packed[sub + 4] & 63;
      } else {
        scale = (packed[sub + 4] & 15) | (packed[sub - 4] >> 6) << 4;
        min = (packed[sub + 4] >> 4) | (packed[sub] >> 6) << 4;
      }
      const uint8_t* qs = b + (type == GgmlType::Q4_K ? 16 : 48);
      int q = (qs[32 * (sub / 2) + i % 32] >> (4 * (sub % 2))) & 15;
      if (type == GgmlType::Q5_K) q += ((b[16 + i % 32] >> sub) & 1) * 16;
      return half_at(b) * static_cast<float>(scale) * static_cast<float>(q) - half_at(b + 2) * static_cast<float>(min);
    }
    case GgmlType::Q6_K: {  // ql[128], qh[64], scales[16] signed, d
      const int half = i / 128, r = i % 128, k = r / 32, l = r % 32;
      const uint8_t ql = b[64 * half + l + 32 * (k % 2)];
      const int low = k < 2 ? ql & 15 : ql >> 4;
      const int high = (b[128 + 32 * half + l] >> (2 * k)) & 3;
      const int scale = static_cast<int8_t>(b[192 + i / 16]);
      return half_at(b + 208) * static_cast<float>(scale) * static_cast<float>((low | high << 4) - 32);
    }
    case GgmlType::Q8_K:  // float d, qs[256] signed, bsums[16]
      return static_cast<float>(static_cast<int8_t>(b[4 + i])) * f32_at(b);
    default:
      ADD_FAILURE() << "no reference for " << ggml_type_name(static_cast<uint32_t>(type));
      return 0;
  }
}

struct TypeLayout {
  GgmlType type;
  int block_elements;
  int block_bytes;
  std::vector<int> half_fields;  // byte offsets of fp16 scales, set to sane values
};

const std::vector<TypeLayout> kLayouts = {
    {GgmlType::F32, 1, 4, {}},         {GgmlType::F16, 1, 2, {0}},         {GgmlType::BF16, 1, 2, {}},
    {GgmlType::Q4_0, 32, 18, {0}},     {GgmlType::Q4_1, 32, 20, {0, 2}},   {GgmlType::Q5_0, 32, 22, {0}},
    {GgmlType::Q5_1, 32, 24, {0, 2}},  {GgmlType::Q8_0, 32, 34, {0}},      {GgmlType::Q2_K, 256, 84, {80, 82}},
    {GgmlType::Q3_K, 256, 110, {108}}, {GgmlType::Q4_K, 256, 144, {0, 2}}, {GgmlType::Q5_K, 256, 176, {0, 2}},
    {GgmlType::Q6_K, 256, 210, {208}}, {GgmlType::Q8_K, 256, 292, {}},
};

// Random blocks whose scales are finite and moderate: random bytes, then fp16 fields replaced by
// halves with exponents in [-10, 5]; F32/BF16/Q8_K get floats of similar range.
std::string random_blocks(const TypeLayout& layout, int64_t blocks, std::mt19937& random) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string data(static_cast<size_t>(blocks * layout.block_bytes), '\0');
  for (char& c : data) c = static_cast<char>(byte(random));
  auto sane_half = [&] {
    const int exponent = 5 + byte(random) % 16;  // biased exponent 5..20
    return static_cast<uint16_t>((byte(random) & 1) << 15 | exponent << 10 | (byte(random) << 2 & 1023));
  };
  std::uniform_real_distribution<float> real(-8.0f, 8.0f);
  for (int64_t block = 0; block < blocks; ++block) {
    char* b = &data[static_cast<size_t>(block * layout.block_bytes)];
    for (int offset : layout.half_fields) {
      const uint16_t half = sane_half();
      std::memcpy(b + offset, &half, 2);
    }
    if (layout.type == GgmlType::F32 || layout.type == GgmlType::Q8_K) {
      const float value = real(random);
      std::memcpy(b, &value, 4);
    } else if (layout.type == GgmlType::BF16) {
      const float value = real(random);
      uint32_t bits;
      std::memcpy(&bits, &value, 4);
      const uint16_t top = static_cast<uint16_t>(bits >> 16);
      std::memcpy(b, &top, 2);
    }
  }
  return data;
}

TEST(GgufDequantize, BlockSizesAndNames) {
  for (const TypeLayout& layout : kLayouts) {
    const uint32_t type = static_cast<uint32_t>(layout.type);
    SCOPED_TRACE(ggml_type_name(type));
    EXPECT_TRUE(ggml_type_supported(type));
    EXPECT_EQ(ggml_block_elements(layout.type), layout.block_elements);
    EXPECT_EQ(ggml_block_bytes(layout.type), static_cast<size_t>(layout.block_bytes));
  }
  EXPECT_STREQ(ggml_type_name(3), "Q4_1");
  EXPECT_STREQ(ggml_type_name(30), "BF16");
  EXPECT_STREQ(ggml_type_name(23), "IQ4_XS");
  const char* unknown = ggml_type_name(1234);
  EXPECT_STREQ(unknown, "type 1234");
  ggml_type_name(4321);
  EXPECT_STREQ(unknown, "type 1234");  // names of unknown types stay valid
  EXPECT_FALSE(ggml_type_supported(23));
  EXPECT_FALSE(ggml_type_supported(9));  // Q8_1
  EXPECT_FALSE(ggml_type_supported(1234));
  expect_error([] { ggml_block_bytes(GgmlType::IQ4_XS); }, "ggml type 23 (IQ4_XS) cannot be dequantized");
}

TEST(GgufDequantize, MatchesPlainReferenceOnEveryThreadCount) {
  std::mt19937 random(20240611);
  for (const TypeLayout& layout : kLayouts) {
    SCOPED_TRACE(ggml_type_name(static_cast<uint32_t>(layout.type)));
    const int64_t blocks = layout.block_elements == 1 ? 1001 : 37;
    const int64_t elements = blocks * layout.block_elements;
    const std::string data = random_blocks(layout, blocks, random);
    std::vector<float> expected(static_cast<size_t>(elements));
    for (int64_t i = 0; i < elements; ++i) {
      const int64_t block = i / layout.block_elements;
      expected[static_cast<size_t>(i)] =
          reference_element(layout.type, reinterpret_cast<const uint8_t*>(data.data()) + block * layout.block_bytes,
                            static_cast<int>(i % layout.block_elements));
    }
    float largest = 0;
    for (float value : expected) largest = std::max(largest, std::fabs(value));
    ASSERT_GT(largest, 0.0f);
    for (int threads : {1, 2, 3, 8, 0}) {
      SCOPED_TRACE(threads);
      std::vector<float> actual(static_cast<size_t>(elements), NAN);
      dequantize(layout.type, data.data(), elements, actual.data(), threads);
      int mismatches = 0;
      for (size_t i = 0; i < actual.size() && mismatches < 5; ++i) {
        // The formulas match ggml's operation order, so this is exact unless the compiler fuses
        // a multiply-add; the bound allows for that much and no more.
        if (!(std::fabs(actual[i] - expected[i]) <= 1e-6f * largest)) {
          ADD_FAILURE() << "element " << i << ": " << actual[i] << " vs reference " << expected[i];
          ++mismatches;
        }
      }
    }
  }
}

TEST(GgufDequantize, RejectsBadArguments) {
  std::vector<float> out(64);
  const std::string data(68, '\0');
  expect_error([&] { dequantize(GgmlType::Q8_0, data.data(), 48, out.data()); }, "multiple of 32");
  expect_error([&] { dequantize(GgmlType::Q8_0, data.data(), -32, out.data()); }, "multiple of 32");
  expect_error([&] { dequantize(GgmlType::Q8_0, data.data(), 32, out.data(), -1); }, "-1 threads");
  expect_error([&] { dequantize(GgmlType::IQ2_XXS, data.data(), 256, out.data()); }, "IQ2_XXS");
  dequantize(GgmlType::Q8_0, data.data(), 0, out.data());  // nothing to do
}

// Hand-made blocks: every expected value below is worked out from the layout by hand.
std::vector<float> dequantize_one(GgmlType type, const std::string& block, int64_t elements) {
  std::vector<float> out(static_cast<size_t>(elements));
  dequantize(type, block.data(), elements, out.data(), 1);
  return out;
}

TEST(GgufDequantize, HandMadeQ8_0) {
  std::string block(34, '\0');
  block[1] = 0x38;  // d = 0.5 (fp16 0x3800)
  const int8_t qs[] = {-128, -1, 0, 1, 127};
  std::memcpy(&block[2], qs, sizeof qs);
  const std::vector<float> out = dequantize_one(GgmlType::Q8_0, block, 32);
  EXPECT_EQ(std::vector<float>(out.begin(), out.begin() + 6),
            (std::vector<float>{-64.0f, -0.5f, 0.0f, 0.5f, 63.5f, 0.0f}));
}

TEST(GgufDequantize, HandMadeQ4_0) {
  std::string block(18, '\x88');  // every nibble 8: value 0
  block[0] = 0x00;
  block[1] = 0x40;                     // d = 2
  block[2] = static_cast<char>(0xF0);  // element 0: nibble 0 -> -16; element 16: nibble 15 -> 14
  block[3] = 0x19;                     // element 1: 9 -> 2; element 17: 1 -> -14
  std::vector<float> expected(32, 0.0f);
  expected[0] = -16;
  expected[16] = 14;
  expected[1] = 2;
  expected[17] = -14;
  EXPECT_EQ(dequantize_one(GgmlType::Q4_0, block, 32), expected);
}

TEST(GgufDequantize, HandMadeQ4_1) {
  std::string block(20, '\0');
  block[1] = 0x38;                     // d = 0.5
  block[3] = static_cast<char>(0xBC);  // m = -1
  block[4] = 0x3A;                     // element 0: 10 * 0.5 - 1 = 4; element 16: 3 * 0.5 - 1 = 0.5
  std::vector<float> expected(32, -1.0f);
  expected[0] = 4;
  expected[16] = 0.5f;
  EXPECT_EQ(dequantize_one(GgmlType::Q4_1, block, 32), expected);
}

TEST(GgufDequantize, HandMadeQ4_K) {
  std::string block(144, '\0');
  block[1] = 0x3C;  // d = 1
  block[3] = 0x38;  // dmin = 0.5
  char* packed = &block[4];
  packed[0] = 2;                        // sub-block 0: scale 2
  packed[4] = 4;                        // sub-block 0: min 4
  packed[9] = 0x31;                     // sub-block 5: scale low bits 1, min low bits 3
  packed[1] = 0x40;                     // sub-block 5: scale bit 4 -> 17 (sub-block 1 keeps 0)
  packed[5] = static_cast<char>(0x80);  // sub-block 5: min bit 5 -> 35 (sub-block 1 keeps 0)
  block[16 + 0] = 0x07;                 // element 0 (sub-block 0, low nibble of qs[0]) = 7
  block[16 + 64 + 3] = 0x90;            // element 163 (sub-block 5, high nibble of qs[67]) = 9
  std::vector<float> expected(256, 0.0f);
  for (int i = 0; i < 32; ++i) expected[i] = -2.0f;      // 2 * 0 - 0.5 * 4
  for (int i = 160; i < 192; ++i) expected[i] = -17.5f;  // 17 * 0 - 0.5 * 35
  expected[0] = 12.0f;                                   // 2 * 7 - 2
  expected[163] = 135.5f;                                // 17 * 9 - 17.5
  EXPECT_EQ(dequantize_one(GgmlType::Q4_K, block, 256), expected);
}

TEST(GgufDequantize, HandMadeQ6_K) {
  std::string block(210, '\0');
  block[208] = 0x00;
  block[209] = 0x34;            // d = 0.25
  block[192 + 0] = 4;           // group 0 (elements 0..15): scale 4
  block[192 + 9] = -2;          // group 9 (elements 144..159): scale -2
  block[0] = 0x05;              // element 0: low nibble of ql[0] = 5
  block[128] = 0x02;            // element 0: bits 0-1 of qh[0] = 2, so q = 5 + 32 - 32 = 5
  block[64 + 22] = 0x03;        // element 150 (second half, l = 22): low nibble of ql[86] = 3
  block[128 + 32 + 22] = 0x01;  // element 150: bits 0-1 of qh[54] = 1, so q = 3 + 16 - 32 = -13
  std::vector<float> expected(256, 0.0f);
  for (int i = 0; i < 16; ++i) expected[i] = -32.0f;    // 0.25 * 4 * (0 - 32)
  for (int i = 144; i < 160; ++i) expected[i] = 16.0f;  // 0.25 * -2 * (0 - 32)
  expected[0] = 5.0f;                                   // 0.25 * 4 * 5
  expected[150] = 6.5f;                                 // 0.25 * -2 * -13
  EXPECT_EQ(dequantize_one(GgmlType::Q6_K, block, 256), expected);
}

TEST(GgufDequantize, HalfPrecisionEdgeCases) {
  std::string halves;
  for (uint16_t half : {0x0001, 0x8001, 0x03FF, 0x0400, 0x7C00, 0xFC00, 0x8000}) put<uint16_t>(halves, half);
  const std::vector<float> out = dequantize_one(GgmlType::F16, halves, 7);
  EXPECT_EQ(out[0], std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(out[1], -std::ldexp(1.0f, -24));
  EXPECT_EQ(out[2], std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(out[3], std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(out[4], INFINITY);
  EXPECT_EQ(out[5], -INFINITY);
  EXPECT_TRUE(std::signbit(out[6]) && out[6] == 0.0f);
  put<uint16_t>(halves, 0x7E00);
  EXPECT_TRUE(std::isnan(dequantize_one(GgmlType::F16, halves, 8)[7]));
}

}  // namespace
}  // namespace halo
