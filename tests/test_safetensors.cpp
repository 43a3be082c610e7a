// Checkpoint I/O: torch round trips (every dtype, scalars, empty and non-contiguous tensors,
// metadata), zero-copy loading, sharded saves and their cleanup, the real Qwen3 fixtures, and
// one crafted file per kind of corruption, each of which must raise a one-line halo::Error that
// names the file. Every test writes into its own temporary directory (test_support, through
// file_system.h: never std::filesystem in a torch binary).
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/safetensors.h"
#include "halo/tensor_io.h"
#include "test_support.h"

namespace halo {
namespace {

using json = nlohmann::json;

const std::string kFixtures = test::shared_dir() + "/fixtures";

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::make_temp_dir(); }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::set<std::string> files_in(const std::string& dir) const {
    const std::vector<std::string> names = list_directory(dir);
    return {names.begin(), names.end()};
  }

  std::string dir_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string length_prefix(uint64_t length) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(length >> (8 * i));
  return bytes;
}

// A safetensors file made by hand: length, header text as given, data.
std::string crafted(const std::string& header, const std::string& data) {
  return length_prefix(header.size()) + header + data;
}

// The message of the halo::Error that `action` throws; a test failure for anything else.
std::string halo_error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  } catch (const std::exception& other) {
    ADD_FAILURE() << "expected halo::Error, got another exception: " << other.what();
    return "";
  }
  ADD_FAILURE() << "expected halo::Error, nothing was thrown";
  return "";
}

// Expects `action` to fail with one line that names `file` and contains `detail`.
void expect_error(const std::function<void()>& action, const std::string& file, const std::string& detail) {
  const std::string message = halo_error_message(action);
  EXPECT_NE(message.find(file), std::string::npos) << "message does not name " << file << ": " << message;
  EXPECT_NE(message.find(detail), std::string::npos) << "message lacks '" << detail << "': " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "message is not one line: " << message;
}

void expect_same(const at::Tensor& expected, const at::Tensor& actual, const std::string& name) {
  ASSERT_TRUE(actual.defined()) << name;
  EXPECT_EQ(actual.scalar_type(), expected.scalar_type()) << name;
  EXPECT_EQ(actual.sizes(), expected.sizes()) << name;
  EXPECT_TRUE(actual.device().is_cpu()) << name;
  EXPECT_TRUE(at::equal(actual, expected.contiguous())) << name;
}

// One small tensor of every storable dtype, in an order that misaligns a naive layout.
NamedTensors every_dtype() {
  const at::Tensor values = at::arange(-6, 6, at::kDouble).reshape({3, 4});
  return {
      {"u8", at::arange(0, 5, at::kByte)},
      {"f32", values.to(at::kFloat) * 0.5},
      {"bool", at::arange(0, 7, at::kLong).remainder(2).to(at::kBool)},
      {"f64", values / 3},
      {"i8", values.to(at::kChar)},
      {"bf16", (values * 0.25).to(at::kBFloat16)},
      {"i16", values.to(at::kShort) * 300},
      {"f16", (values * 0.125).to(at::kHalf)},
      {"i32", values.to(at::kInt) * 100000},
      {"i64", values.to(at::kLong) * 10000000000LL},
  };
}

TEST_F(SafetensorsTest, RoundTripsEveryDtype) {
  const NamedTensors tensors = every_dtype();
  save_tensors(path("all.safetensors"), tensors);
  const auto loaded = load_tensors(path("all.safetensors"));
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    ASSERT_TRUE(loaded.count(name)) << name;
    expect_same(tensor, loaded.at(name), name);
  }
}

TEST_F(SafetensorsTest, DtypeNamesAndSizesFollowTheFormat) {
  EXPECT_STREQ(dtype_name(DType::BF16), "BF16");
  EXPECT_STREQ(dtype_name(DType::BOOL), "BOOL");
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::BOOL), 1u);
  EXPECT_EQ(parse_dtype("I16", "ctx"), DType::I16);
  expect_error([] { parse_dtype("F8_E4M3", "some.safetensors: tensor 'x'"); }, "some.safetensors: tensor 'x'",
               "F8_E4M3");
  EXPECT_EQ(to_scalar_type(DType::I8), at::kChar);
  EXPECT_EQ(to_dtype(at::kByte), DType::U8);
  expect_error(
      [this] {
        save_tensors(path("c.safetensors"), {{"z", at::zeros({2}, at::kComplexFloat)}});
      },
      path("c.safetensors"), "'z'");
}

TEST_F(SafetensorsTest, RoundTripsScalarsAndEmptyTensors) {
  const NamedTensors tensors = {
      {"scalar", at::scalar_tensor(3.5, at::kDouble)}, {"int_scalar", at::scalar_tensor(-7, at::kLong)},
      {"empty", at::zeros({0, 5}, at::kFloat)},        {"empty_1d", at::zeros({0}, at::kLong)},
      {"after", at::arange(0, 3, at::kFloat)},
  };
  save_tensors(path("s.safetensors"), tensors);
  const auto loaded = load_tensors(path("s.safetensors"));
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) expect_same(tensor, loaded.at(name), name);
  EXPECT_EQ(loaded.at("scalar").dim(), 0);
  EXPECT_EQ(loaded.at("scalar").item<double>(), 3.5);
  EXPECT_EQ(loaded.at("empty").numel(), 0);

  SafetensorsFile file(path("s.safetensors"));
  ASSERT_NE(file.find("scalar"), nullptr);
  EXPECT_TRUE(file.find("scalar")->shape.empty());
  EXPECT_EQ(file.find("scalar")->nbytes, 8u);
  EXPECT_EQ(file.find("empty")->nbytes, 0u);
}

TEST_F(SafetensorsTest, SavesNonContiguousTensorsAsTheirValues) {
  const at::Tensor base = at::arange(0, 24, at::kFloat).reshape({4, 6});
  const at::Tensor transposed = base.t();
  const at::Tensor strided = base.slice(1, 1, 6, 2);
  const at::Tensor offset_view = base.narrow(0, 2, 2);
  ASSERT_FALSE(transposed.is_contiguous());
  ASSERT_FALSE(strided.is_contiguous());
  save_tensors(path("v.safetensors"), {{"transposed", transposed}, {"strided", strided}, {"offset_view", offset_view}});
  const auto loaded = load_tensors(path("v.safetensors"));
  expect_same(transposed, loaded.at("transposed"), "transposed");
  expect_same(strided, loaded.at("strided"), "strided");
  expect_same(offset_view, loaded.at("offset_view"), "offset_view");
  EXPECT_EQ(loaded.at("transposed").sizes(), (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(loaded.at("offset_view")[0][0].item<float>(), 12.0f);
}

// Every file carries "format": "pt" (as torch's save_file writes; some loaders insist on it)
// unless the caller names another format.
TEST_F(SafetensorsTest, RoundTripsMetadataWithFormatPt) {
  const std::map<std::string, std::string> metadata = {{"format", "np"}, {"note", "héllo \"quoted\""}};
  save_tensors(path("m.safetensors"), {{"x", at::arange(0, 4, at::kFloat)}}, metadata);
  EXPECT_EQ(SafetensorsFile(path("m.safetensors")).metadata(), metadata);

  save_tensors(path("plain.safetensors"), {{"x", at::arange(0, 4, at::kFloat)}});
  EXPECT_EQ(SafetensorsFile(path("plain.safetensors")).metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}}));
}

// What the Python reader insists on: header length a multiple of 8 (our choice, as Python
// writes), tensors back to back from offset 0, data ending exactly at the end of the file.
TEST_F(SafetensorsTest, WritesTheLayoutPythonExpects) {
  save_tensors(path("all.safetensors"), every_dtype(), {{"format", "pt"}});
  const std::string bytes = read_file(path("all.safetensors"));
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(header_size % 8, 0u);
  const json header = json::parse(bytes.substr(8, header_size));
  EXPECT_EQ(header["__metadata__"], (json{{"format", "pt"}}));
  EXPECT_EQ(header["bf16"]["dtype"], "BF16");
  EXPECT_EQ(header["bool"]["shape"], (json::array({7})));

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    EXPECT_EQ(entry.size(), 3u) << name;
    ranges.emplace_back(entry["data_offsets"][0].get<uint64_t>(), entry["data_offsets"][1].get<uint64_t>());
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t expected_begin = 0;
  for (const auto& [begin, end] : ranges) {
    EXPECT_EQ(begin, expected_begin);
    expected_begin = end;
  }
  EXPECT_EQ(8 + header_size + expected_begin, bytes.size());
}

TEST_F(SafetensorsTest, LoadsAlignedDataWithoutCopying) {
  save_tensors(path("all.safetensors"), every_dtype());
  const WeightFiles files(path("all.safetensors"));
  ASSERT_EQ(files.entries().size(), 10u);
  for (const auto& [name, entry] : files.entries()) {
    const at::Tensor tensor = entry_to_tensor(entry);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(entry.tensor->data) % dtype_size(entry.tensor->dtype), 0u) << name;
    EXPECT_EQ(tensor.data_ptr(), entry.tensor->data) << name << " was copied";
  }
}

TEST_F(SafetensorsTest, CopiesMisalignedData) {
  // One U8 byte first puts the F32 tensor at data offset 1 (the header is 8-aligned).
  std::string header =
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const float values[2] = {1.5f, -2.25f};
  write_bytes(path("odd.safetensors"),
              crafted(header, std::string("\x07", 1) + std::string(reinterpret_cast<const char*>(values), 8)));
  const WeightFiles files(path("odd.safetensors"));
  const WeightEntry* b = files.find("b");
  ASSERT_NE(b, nullptr);
  ASSERT_NE(reinterpret_cast<uintptr_t>(b->tensor->data) % 4, 0u);
  const at::Tensor tensor = entry_to_tensor(*b);
  EXPECT_NE(tensor.data_ptr(), b->tensor->data);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tensor.data_ptr()) % 4, 0u);
  EXPECT_EQ(tensor[0].item<float>(), 1.5f);
  EXPECT_EQ(tensor[1].item<float>(), -2.25f);
  EXPECT_EQ(entry_to_tensor(*files.find("a")).item<uint8_t>(), 7);
}

TEST_F(SafetensorsTest, LoadedTensorsOutliveTheirFilesAndNeverWriteBack) {
  save_tensors(path("w.safetensors"), {{"w", at::arange(0, 1024, at::kFloat)}});
  ASSERT_EQ(::chmod(path("w.safetensors").c_str(), 0444), 0);
  at::Tensor tensor = load_tensors(path("w.safetensors")).at("w");  // every owner but `tensor` is gone
  EXPECT_EQ(tensor[1000].item<float>(), 1000.0f);
  tensor.fill_(-1.0f);  // copy-on-write: neither a crash nor a change to the file
  EXPECT_EQ(tensor[3].item<float>(), -1.0f);
  EXPECT_EQ(load_tensors(path("w.safetensors")).at("w")[3].item<float>(), 3.0f);
}

NamedTensors ten_kilobyte_tensors() {
  NamedTensors tensors;
  for (int i = 0; i < 10; ++i) {
    tensors.emplace_back("layer." + std::to_string(i) + ".weight", at::randn({16, 16}, at::kFloat));
  }
  tensors.emplace_back("small.bias", at::arange(0, 3, at::kLong));
  return tensors;
}

void expect_loads_as(const std::string& dir, const NamedTensors& tensors) {
  const auto loaded = load_tensors(dir);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    ASSERT_TRUE(loaded.count(name)) << name;
    expect_same(tensor, loaded.at(name), name);
  }
}

TEST_F(SafetensorsTest, ShardsBySizeAndLoadsTheShards) {
  const NamedTensors tensors = ten_kilobyte_tensors();  // 10 x 1024 bytes + 24
  const std::string out = path("model");
  save_weights(out, tensors, 2500, {{"format", "pt"}});
  EXPECT_EQ(files_in(out),
            (std::set<std::string>{"model-00001-of-00005.safetensors", "model-00002-of-00005.safetensors",
                                   "model-00003-of-00005.safetensors", "model-00004-of-00005.safetensors",
                                   "model-00005-of-00005.safetensors", "model.safetensors.index.json"}));
  const json index = json::parse(read_file(out + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 10 * 1024 + 24);
  EXPECT_EQ(index["weight_map"].size(), tensors.size());
  EXPECT_EQ(index["weight_map"]["layer.0.weight"], "model-00001-of-00005.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.3.weight"], "model-00002-of-00005.safetensors");
  EXPECT_EQ(index["weight_map"]["small.bias"], "model-00005-of-00005.safetensors");
  EXPECT_EQ(SafetensorsFile(out + "/model-00003-of-00005.safetensors").metadata().at("format"), "pt");
  expect_loads_as(out, tensors);

  const WeightFiles files(out);
  EXPECT_EQ(files.source(), out + "/model.safetensors.index.json");
  EXPECT_EQ(files.find("layer.9.weight")->file->path(), out + "/model-00005-of-00005.safetensors");
  EXPECT_EQ(files.find("missing"), nullptr);
}

TEST_F(SafetensorsTest, GivesATensorLargerThanTheLimitAShardOfItsOwn) {
  const at::Tensor big = at::randn({64, 64}, at::kFloat);
  const NamedTensors tensors = {{"a", at::arange(0, 4, at::kFloat)}, {"big", big}, {"c", at::arange(0, 4, at::kFloat)}};
  save_weights(path("model"), tensors, 1000);
  const json index = json::parse(read_file(path("model/model.safetensors.index.json")));
  EXPECT_EQ(index["weight_map"]["a"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["big"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["c"], "model-00003-of-00003.safetensors");
  expect_loads_as(path("model"), tensors);
}

TEST_F(SafetensorsTest, ResavingRemovesStaleWeightFilesOnly) {
  const NamedTensors tensors = ten_kilobyte_tensors();
  const std::string out = path("model");
  ASSERT_EQ(::mkdir(out.c_str(), 0755), 0);
  write_bytes(out + "/config.json", "{}");

  save_weights(out, tensors, 2500);  // 5 shards
  save_weights(out, tensors, 0);     // one file: shards and index must go
  EXPECT_EQ(files_in(out), (std::set<std::string>{"config.json", "model.safetensors"}));
  expect_loads_as(out, tensors);

  save_weights(out, tensors, 6000);  // sharded again: the single file must go
  EXPECT_EQ(files_in(out), (std::set<std::string>{"config.json", "model-00001-of-00002.safetensors",
                                                  "model-00002-of-00002.safetensors", "model.safetensors.index.json"}));
  expect_loads_as(out, tensors);

  save_weights(out, tensors, 1 << 20);  // fits under the limit: one file
  EXPECT_EQ(files_in(out), (std::set<std::string>{"config.json", "model.safetensors"}));
  expect_loads_as(out, tensors);
}

TEST_F(SafetensorsTest, ReadsTheQwen3Fixtures) {
  for (const std::string& name : {"qwen3-tiny", "qwen3-tiny-bf16"}) {
    SCOPED_TRACE(name);
    const bool bf16 = name == "qwen3-tiny-bf16";
    const std::string dir = kFixtures + "/" + name;
    const WeightFiles files(dir);
    EXPECT_EQ(files.source(), dir + "/model.safetensors");
    EXPECT_EQ(files.entries().size(), 46u);  // embeddings, 4 x 11 per layer, final norm; tied head
    const WeightEntry* embed = files.find("model.embed_tokens.weight");
    ASSERT_NE(embed, nullptr);
    EXPECT_EQ(embed->tensor->dtype, bf16 ? DType::BF16 : DType::F32);
    EXPECT_EQ(embed->tensor->shape, (std::vector<int64_t>{1024, 64}));
    EXPECT_EQ(embed->file->metadata().at("format"), "pt");
    const WeightEntry* o_proj = files.find("model.layers.3.self_attn.o_proj.weight");
    ASSERT_NE(o_proj, nullptr);
    EXPECT_EQ(o_proj->tensor->shape, (std::vector<int64_t>{64, 128}));
    EXPECT_NE(files.find("model.norm.weight"), nullptr);

    SafetensorsFile reference(dir + "/reference.safetensors");
    const TensorEntry* input_ids = reference.find("input_ids");
    ASSERT_NE(input_ids, nullptr);
    EXPECT_EQ(input_ids->dtype, DType::I64);
    EXPECT_EQ(input_ids->shape, (std::vector<int64_t>{2, 37}));
    EXPECT_EQ(reference.find("logits")->shape, (std::vector<int64_t>{2, 37, 1024}));

    // hidden_states.0 is the embedding output: the embedding rows of input_ids, in float32.
    const auto weights = load_tensors(dir);
    const auto outputs = load_tensors(dir + "/reference.safetensors");
    const at::Tensor ids = outputs.at("input_ids");
    EXPECT_EQ(ids[0][0].item<int64_t>(), 175);
    const at::Tensor embedded = weights.at("model.embed_tokens.weight").to(at::kFloat).index_select(0, ids.flatten());
    EXPECT_TRUE(at::equal(embedded.reshape({2, 37, 64}), outputs.at("hidden_states.0")));
  }
}

TEST_F(SafetensorsTest, WriterRejectsInconsistentInput) {
  const float data[4] = {};
  expect_error(
      [&] {
        write_safetensors(path("x.safetensors"), {{"t", DType::F32, {2, 3}, data, 16}});
      },
      path("x.safetensors"), "'t'");
  expect_error(
      [&] {
        write_safetensors(path("x.safetensors"), {{"t", DType::F32, {4}, data, 16}, {"t", DType::F32, {4}, data, 16}});
      },
      path("x.safetensors"), "given twice");
  expect_error(
      [&] {
        write_safetensors(path("x.safetensors"), {{"__metadata__", DType::F32, {4}, data, 16}});
      },
      path("x.safetensors"), "reserved");
  expect_error(
      [&] {
        write_safetensors(path("no/such/dir/x.safetensors"), {{"t", DType::F32, {4}, data, 16}});
      },
      path("no/such/dir/x.safetensors"), "cannot create");
  EXPECT_EQ(files_in(dir_), std::set<std::string>{});  // no temp file left behind
}

struct CorruptFile {
  const char* label;
  std::string bytes;
  const char* detail;  // expected in the message besides the path
};

std::vector<CorruptFile> corrupt_files() {
  const std::string f32x2(8, '\0');
  auto one = [](const std::string& entry) { return R"({"t":)" + entry + "}"; };
  return {
      {"empty file", "", "too short"},
      {"shorter than the length", "abc", "too short"},
      {"header past the end", length_prefix(64) + "{}", "past the end of the file"},
      {"absurd header length", length_prefix(1ULL << 40) + "{}", "100 MB"},
      {"bad json", crafted(R"({"t": {"dtype": )", ""), "not valid JSON"},
      {"json array", crafted("[1, 2]", ""), "not a JSON object"},
      {"entry not an object", crafted(one("5"), ""), "'t'"},
      {"missing dtype", crafted(one(R"({"shape":[2],"data_offsets":[0,8]})"), f32x2), "\"dtype\""},
      {"missing shape", crafted(one(R"({"dtype":"F32","data_offsets":[0,8]})"), f32x2), "\"shape\""},
      {"missing offsets", crafted(one(R"({"dtype":"F32","shape":[2]})"), f32x2), "\"data_offsets\""},
      {"dtype not a string", crafted(one(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"), f32x2), "\"dtype\""},
      {"shape not a list", crafted(one(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})"), f32x2), "\"shape\""},
      {"shape of strings", crafted(one(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})"), f32x2), "\"shape\""},
      {"fractional dim", crafted(one(R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,8]})"), f32x2), "\"shape\""},
      {"one offset", crafted(one(R"({"dtype":"F32","shape":[2],"data_offsets":[8]})"), f32x2), "\"data_offsets\""},
      {"negative offset", crafted(one(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})"), f32x2),
       "\"data_offsets\""},
      {"unknown dtype", crafted(one(R"({"dtype":"F8","shape":[8],"data_offsets":[0,8]})"), f32x2),
       "unknown dtype \"F8\""},
      {"negative dim", crafted(one(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), f32x2), "negative"},
      {"begin after end", crafted(one(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), f32x2),
       "begin after end"},
      {"end past the data", crafted(one(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})"), f32x2),
       "past the end of the data"},
      {"byte count", crafted(one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), f32x2), "needs 12"},
      {"overflowing shape",
       crafted(one(R"({"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]})"), f32x2), "too large"},
      {"overlap",
       crafted(
           R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"u":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
           f32x2),
       "overlap"},
      {"metadata not strings", crafted(R"({"__metadata__":{"n":1}})", ""), "metadata"},
  };
}

TEST_F(SafetensorsTest, EveryCorruptionIsAOneLineErrorNamingTheFile) {
  for (const CorruptFile& corrupt : corrupt_files()) {
    SCOPED_TRACE(corrupt.label);
    const std::string file = path("corrupt.safetensors");
    write_bytes(file, corrupt.bytes);
    expect_error([&] { SafetensorsFile opened(file); }, file, corrupt.detail);
    expect_error([&] { load_tensors(file); }, file, corrupt.detail);
  }
}

TEST_F(SafetensorsTest, TensorErrorsNameTheTensor) {
  const std::string file = path("named.safetensors");
  write_bytes(file,
              crafted(R"({"the.weight":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')));
  expect_error([&] { SafetensorsFile opened(file); }, file, "'the.weight'");
}

TEST_F(SafetensorsTest, TruncatedFixtureIsAnError) {
  const std::string bytes = read_file(kFixtures + "/qwen3-tiny/model.safetensors");
  const std::string file = path("model.safetensors");
  write_bytes(file, bytes.substr(0, bytes.size() / 2));
  expect_error([&] { load_tensors(dir_); }, file, "past the end of the data");
  write_bytes(file, bytes.substr(0, 100));
  expect_error([&] { load_tensors(dir_); }, file, "past the end of the file");
}

TEST_F(SafetensorsTest, MissingFilesAreErrors) {
  expect_error([&] { SafetensorsFile opened(path("absent.safetensors")); }, path("absent.safetensors"), "no such file");
  expect_error([&] { load_tensors(path("absent.safetensors")); }, path("absent.safetensors"), "No such file");
  expect_error([&] { load_tensors(dir_); }, dir_, "model.safetensors.index.json");
  expect_error([&] { SafetensorsFile opened(dir_); }, dir_, "is a directory");
}

class ShardedIndexTest : public SafetensorsTest {
 protected:
  void SetUp() override {
    SafetensorsTest::SetUp();
    save_weights(dir_, {{"a", at::arange(0, 4, at::kFloat)}, {"b", at::arange(0, 4, at::kFloat)}}, 16);
    index_ = path("model.safetensors.index.json");
  }
  void write_index(const json& weight_map) {
    write_bytes(index_, json{{"metadata", {{"total_size", 32}}}, {"weight_map", weight_map}}.dump());
  }
  std::string index_;
};

TEST_F(ShardedIndexTest, LoadsAsWritten) {
  EXPECT_EQ(load_tensors(dir_).size(), 2u);
  EXPECT_EQ(load_tensors(index_).size(), 2u);  // the index file itself works as a path too
}

TEST_F(ShardedIndexTest, MissingShardIsAnError) {
  ASSERT_EQ(::unlink(path("model-00002-of-00002.safetensors").c_str()), 0);
  expect_error([&] { load_tensors(dir_); }, path("model-00002-of-00002.safetensors"), "does not exist");
  expect_error([&] { load_tensors(dir_); }, index_, "'b'");
}

TEST_F(ShardedIndexTest, ShardsOutsideTheDirectoryAreRefused) {
  for (const char* shard : {"../model-00001-of-00002.safetensors", "/etc/passwd", "sub/x.safetensors", ".."}) {
    write_index({{"a", shard}, {"b", "model-00002-of-00002.safetensors"}});
    expect_error([&] { load_tensors(dir_); }, index_, "not a file name in the model directory");
  }
}

TEST_F(ShardedIndexTest, TensorMissingFromItsShardIsAnError) {
  write_index({{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00001-of-00002.safetensors"}});
  expect_error([&] { load_tensors(dir_); }, index_, "'b'");
  expect_error([&] { load_tensors(dir_); }, path("model-00001-of-00002.safetensors"), "does not contain");
}

TEST_F(ShardedIndexTest, DuplicateTensorAcrossShardsIsAnError) {
  write_safetensors(path("model-00002-of-00002.safetensors"),
                    {{"a", DType::U8, {1}, "x", 1}, {"b", DType::U8, {1}, "y", 1}});
  expect_error([&] { load_tensors(dir_); }, index_, "'a' appears in both");
}

TEST_F(ShardedIndexTest, MalformedIndexIsAnError) {
  write_bytes(index_, "{\"weight_map\": ");
  expect_error([&] { load_tensors(dir_); }, index_, "not valid JSON");
  write_bytes(index_, R"({"metadata": {}})");
  expect_error([&] { load_tensors(dir_); }, index_, "weight_map");
  write_index({{"a", 5}});
  expect_error([&] { load_tensors(dir_); }, index_, "'a'");
}

TEST_F(ShardedIndexTest, CorruptShardIsAnErrorNamingTheShard) {
  write_bytes(path("model-00002-of-00002.safetensors"), "1234");
  expect_error([&] { load_tensors(dir_); }, path("model-00002-of-00002.safetensors"), "too short");
}

}  // namespace
}  // namespace halo
