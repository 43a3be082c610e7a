// The halo CLI as a user meets it: results of each subcommand on the fixtures, and every bad
// input ending in one error line and exit code 1 or 2 (never a signal or a stack trace).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <fstream>
#include <limits>
#include <sstream>

#include "halo/file_system.h"
#include "halo/tensor_io.h"
#include "test_support.h"

namespace halo {
namespace {

using test::run_halo;

const std::string kTokenizer = "/data/qwen3-tokenizer";

// One line on stderr that says "error:", and no C++ backtrace.
void expect_one_line_error(const test::CommandResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  const std::string last = r.err.substr(r.err.rfind('\n', r.err.size() - 2) + 1);
  EXPECT_NE(last.find("error: "), std::string::npos) << r.err;
  EXPECT_NE(last.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("Exception raised from"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("terminate called"), std::string::npos) << r.err;
}

TEST(Cli, UsageAndHelp) {
  auto none = run_halo("");
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.out.find("generate"), std::string::npos);
  auto help = run_halo("generate --help");
  EXPECT_EQ(help.exit_code, 0);
  for (const char* opt : {"--max-new-tokens", "--temperature", "--top-p", "--seed", "--device", "--dtype"}) {
    EXPECT_NE(help.out.find(opt), std::string::npos) << opt;
  }
  expect_one_line_error(run_halo("frobnicate"), 2, "unknown command");
  expect_one_line_error(run_halo("info --no-such-option"), 2, "no-such-option");
  expect_one_line_error(run_halo("info"), 2, "--model is required");
}

TEST(Cli, InfoDescribesTheFixture) {
  auto r = run_halo("info --model " + test::fixture("qwen3-tiny"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("parameters     287552"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4 heads, 2 kv heads, head_dim 32"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("    3  attn"), std::string::npos) << r.out;
  auto bf16 = run_halo("info --model " + test::fixture("qwen3-tiny-bf16"));
  EXPECT_NE(bf16.out.find("stored dtype   BF16"), std::string::npos) << bf16.out;
}

TEST(Cli, InfoRejectsWeightsThatDoNotMatchTheConfig) {
  // A config naming more layers than the weights hold: the missing tensors are named, exit 1.
  const std::string dir = test::make_temp_dir();
  copy_file_atomic(test::fixture("qwen3-tiny") + "/model.safetensors", dir + "/model.safetensors");
  auto config = nlohmann::json::parse(read_file(test::fixture("qwen3-tiny") + "/config.json"));
  config["num_hidden_layers"] = 6;
  test::write_text(dir + "/config.json", config.dump());
  expect_one_line_error(run_halo("info --model " + dir), 1, "missing tensors model.layers.4.");
  config["num_hidden_layers"] = 3;  // fewer: layer 3's tensors are unexpected
  test::write_text(dir + "/config.json", config.dump());
  expect_one_line_error(run_halo("info --model " + dir), 1, "unexpected tensors model.layers.3.");
}

TEST(Cli, ForwardWritesReferenceLogitsAndHiddenStates) {
  const std::string dir = test::make_temp_dir();
  auto ref = load_tensors(test::fixture("qwen3-tiny") + "/reference.safetensors");
  save_tensors(dir + "/in.safetensors", {{"input_ids", ref.at("input_ids")}});
  auto r = run_halo("forward --model " + test::fixture("qwen3-tiny") + " --input " + dir + "/in.safetensors --output " +
                    dir + "/out.safetensors --hidden-states --device cpu --dtype float32");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = load_tensors(dir + "/out.safetensors");
  ASSERT_EQ(out.at("logits").scalar_type(), at::kFloat);
  const at::Tensor& want = ref.at("logits");
  EXPECT_LE((out.at("logits") - want).abs().max().item<double>(), 1e-4 * want.abs().max().item<double>());
  for (int i = 0; i <= 4; ++i) EXPECT_EQ(out.count("hidden_states." + std::to_string(i)), 1u) << i;
  EXPECT_FALSE(path_exists(dir + "/out.safetensors.tmp"));
}

TEST(Cli, ForwardRejectsBadInputs) {
  const std::string dir = test::make_temp_dir();
  const std::string model = " --model " + test::fixture("qwen3-tiny") + " --output " + dir + "/o.safetensors";
  save_tensors(dir + "/noids.safetensors", {{"tokens", at::zeros({1, 3}, at::kLong)}});
  expect_one_line_error(run_halo("forward --input " + dir + "/noids.safetensors" + model), 1,
                        "no tensor named input_ids");
  save_tensors(dir + "/float.safetensors", {{"input_ids", at::zeros({1, 3}, at::kFloat)}});
  expect_one_line_error(run_halo("forward --input " + dir + "/float.safetensors" + model), 1, "int64");
  save_tensors(dir + "/range.safetensors", {{"input_ids", at::full({1, 3}, 5000, at::kLong)}});
  expect_one_line_error(run_halo("forward --input " + dir + "/range.safetensors" + model), 1, "vocabulary");
  test::write_text(dir + "/garbage.safetensors", "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":");
  expect_one_line_error(run_halo("forward --input " + dir + "/garbage.safetensors" + model), 1, "garbage.safetensors");
  expect_one_line_error(run_halo("forward --input " + dir + "/missing.safetensors" + model), 1, "missing.safetensors");
  save_tensors(dir + "/empty.safetensors", {{"input_ids", at::zeros({0, 5}, at::kLong)}});
  expect_one_line_error(run_halo("forward --input " + dir + "/empty.safetensors" + model), 1, "non-empty");
  EXPECT_FALSE(path_exists(dir + "/o.safetensors"));
}

TEST(Cli, BrokenModelDirectoriesFailCleanly) {
  const std::string dir = test::make_temp_dir();
  copy_file_atomic(test::fixture("qwen3-tiny") + "/config.json", dir + "/config.json");
  expect_one_line_error(run_halo("info --model " + dir), 1, "model.safetensors");
  {
    std::ifstream in(test::fixture("qwen3-tiny") + "/model.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    test::write_text(dir + "/model.safetensors", bytes.substr(0, bytes.size() / 2));
  }
  expect_one_line_error(run_halo("generate --prompt-ids '1 2 3' --print-ids --device cpu --model " + dir), 1,
                        "model.safetensors");
  test::write_text(dir + "/config.json", "{\"model_type\": \"qwen3\"");
  expect_one_line_error(run_halo("info --model " + dir), 1, "config.json");
  expect_one_line_error(run_halo("info --model /nonexistent/model"), 1, "/nonexistent/model");

  // Damaged weights: a NaN, or integers where floats belong, are errors, not "0 0 0 0".
  auto with_weight = [&](const std::string& name, const at::Tensor& value) {
    const std::string damaged = test::make_temp_dir();
    copy_file_atomic(test::fixture("qwen3-tiny") + "/config.json", damaged + "/config.json");
    NamedTensors tensors;
    for (auto& [n, t] : load_tensors(test::fixture("qwen3-tiny"))) tensors.emplace_back(n, n == name ? value : t);
    save_tensors(damaged + "/model.safetensors", tensors);
    return damaged;
  };
  const at::Tensor norm = load_tensors(test::fixture("qwen3-tiny")).at("model.norm.weight");
  at::Tensor nan_norm = norm.clone();
  nan_norm[3] = std::numeric_limits<float>::quiet_NaN();
  expect_one_line_error(run_halo("generate --prompt-ids '1 2 3' --print-ids --device cpu --model " +
                                 with_weight("model.norm.weight", nan_norm)),
                        1, "'model.norm.weight' holds NaN or Inf");
  expect_one_line_error(run_halo("generate --prompt-ids '1 2 3' --print-ids --device cpu --model " +
                                 with_weight("model.norm.weight", norm.to(at::kInt))),
                        1, "'model.norm.weight' is stored as I32");
}

// A FIFO or a device where a file belongs is refused at once: opening a FIFO for reading would
// wait for a writer forever, /dev/zero never ends. (run_halo's timeout turns a hang into a failure.)
TEST(Cli, FifosAndDevicesAreNotFiles) {
  const std::string dir = test::make_temp_dir();
  copy_file_atomic(test::fixture("qwen3-tiny") + "/config.json", dir + "/config.json");
  ASSERT_EQ(::mkfifo((dir + "/model.safetensors").c_str(), 0644), 0);
  expect_one_line_error(run_halo("info --model " + dir), 1, "not a regular file");
  const std::string fifo_config = test::make_temp_dir();
  copy_file_atomic(test::fixture("qwen3-tiny") + "/model.safetensors", fifo_config + "/model.safetensors");
  ASSERT_EQ(::mkfifo((fifo_config + "/config.json").c_str(), 0644), 0);
  expect_one_line_error(run_halo("info --model " + fifo_config), 1, "not a regular file");
  expect_one_line_error(
      run_halo("ppl --device cpu --model " + test::fixture("qwen3-tiny") + " --tokenizer " + test::shared_dir() +
               kTokenizer + " --text /dev/zero"),
      1,
      "not a regular file");
  expect_one_line_error(run_halo("data prepare --tokenizer " + test::shared_dir() + kTokenizer +
                                 " --input /dev/zero --out " + dir + "/tokens"),
                        1, "not a regular file");
}

// Absurd sizes are refused before anything they would size is allocated.
TEST(Cli, AbsurdSizesFailBeforeAllocating) {
  const std::string model = test::fixture("qwen3-tiny");
  expect_one_line_error(run_halo("generate --prompt-ids '1 2 3' --print-ids --device cpu -n 1000000000 --model " + model),
                        2, "max_position_embeddings");
  expect_one_line_error(run_halo("eval --tasks niah --device cpu --model " + model + " --tokenizer " +
                                 test::shared_dir() + kTokenizer + " --filler " + test::shared_dir() +
                                 "/data/text/brown.txt --lengths 1000000000"),
                        2, "--lengths");
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"vocab_size", "10000000000"}, {"num_hidden_layers", "1000000000000"}, {"hidden_size", "1000000000"}}) {
    const std::string dir = test::make_temp_dir();
    nlohmann::json config = nlohmann::json::parse(read_file(model + "/config.json"));
    config[key] = nlohmann::json::parse(value);
    test::write_text(dir + "/config.json", config.dump());
    copy_file_atomic(model + "/model.safetensors", dir + "/model.safetensors");
    expect_one_line_error(run_halo("info --model " + dir), 1, key);
  }
  // Benchmark sizes: refused as usage errors naming the option, before any allocation.
  const std::string bench = "bench inference --device cpu --model " + model;
  expect_one_line_error(run_halo(bench + " --batch -3"), 2, "--batch");
  expect_one_line_error(run_halo(bench + " --prefill-chunk 0"), 2, "--prefill-chunk");
  expect_one_line_error(run_halo(bench + " --contexts 1000000000000000000"), 2, "--contexts");
  expect_one_line_error(run_halo(bench + " --contexts 16M --batch 64"), 2, "--contexts");
  expect_one_line_error(run_halo("bench kernels --device cpu --shapes 1000000x1000000"), 2, "--shapes");
  expect_one_line_error(run_halo("bench training --device cpu --batch 1000000 --seq-len 1000000"), 2, "--batch");
}

TEST(Cli, GenerateGreedyIdsMatchTransformers) {
  auto ref = load_tensors(test::fixture("qwen3-tiny") + "/reference.safetensors");
  at::Tensor prompt = ref.at("generate_prompt").flatten(), full = ref.at("generate_output").flatten();
  std::string prompt_ids, expected;
  for (int64_t i = 0; i < prompt.numel(); ++i) prompt_ids += (i ? " " : "") + std::to_string(prompt[i].item<int64_t>());
  for (int64_t i = prompt.numel(); i < full.numel(); ++i) {
    expected += (i > prompt.numel() ? " " : "") + std::to_string(full[i].item<int64_t>());
  }
  auto r = run_halo("generate --model " + test::fixture("qwen3-tiny") + " --prompt-ids '" + prompt_ids +
                    "' --print-ids --max-new-tokens 16 --device cpu");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, expected + "\n");
  expect_one_line_error(
      run_halo("generate --model " + test::fixture("qwen3-tiny") + " --prompt-ids '1 99999' --print-ids --device cpu"),
      2, "99999");
  expect_one_line_error(
      run_halo("generate --model " + test::fixture("qwen3-tiny") + " --prompt-ids 1 --print-ids --device cuda:7"), 2,
      "--device");
  expect_one_line_error(
      run_halo("generate --model " + test::fixture("qwen3-tiny") + " --prompt-ids 1 --print-ids --temperature -1"), 2,
      "--temperature");
}

TEST(Cli, TokenizeEncodesAndDecodes) {
  const std::string tok = test::shared_dir() + kTokenizer;
  auto r = run_halo("tokenize --tokenizer " + tok + " --text 'Hello world'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "9707 1879\n");
  auto j = run_halo("tokenize --tokenizer " + tok + " --json --text 'Hello world'");
  EXPECT_EQ(j.out, "[9707,1879]\n");
  auto d = run_halo("tokenize --tokenizer " + tok + " --decode --text '9707, 1879'");
  EXPECT_EQ(d.out, "Hello world\n");
  expect_one_line_error(run_halo("tokenize --tokenizer " + tok + " --decode --text 'x1'"), 2, "x1");
  expect_one_line_error(run_halo("tokenize --tokenizer /nonexistent --text a"), 1, "/nonexistent");
  expect_one_line_error(run_halo("tokenize --tokenizer " + tok), 2, "--text or --file");
}

TEST(Cli, PerplexityOfATextFile) {
  const std::string dir = test::make_temp_dir();
  const std::string tok = test::write_byte_tokenizer(dir);
  auto r =
      run_halo("ppl --model " + test::fixture("qwen3-tiny") + " --tokenizer " + tok + " --text " + test::shared_dir() +
               "/data/text/brown.txt --max-tokens 300 --context 64 --stride 32 --json --device cpu");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"].get<int64_t>(), 299);
  // A random-weight model over 1024 ids: perplexity near the vocabulary size, far from 1.
  EXPECT_GT(j["perplexity"].get<double>(), 100.0);
  EXPECT_LT(j["perplexity"].get<double>(), 10000.0);
  expect_one_line_error(
      run_halo("ppl --model " + test::fixture("qwen3-tiny") + " --tokenizer " + test::shared_dir() + kTokenizer +
               " --text " + test::shared_dir() + "/data/text/brown.txt --max-tokens 100 --device cpu"),
      1, "do not match");
  expect_one_line_error(
      run_halo("ppl --model " + test::fixture("qwen3-tiny") + " --tokenizer " + tok + " --text /nonexistent.txt"), 1,
      "/nonexistent.txt");
}

}  // namespace
}  // namespace halo

namespace halo {
namespace {

TEST(Cli, ConvertRefusesToWriteIntoTheTeacher) {
  const std::string dir = test::make_temp_dir() + "/teacher";
  create_directories(dir);
  for (const char* file : {"config.json", "model.safetensors"}) {
    copy_file_atomic(test::fixture("qwen3-tiny") + "/" + file, dir + "/" + file);
  }
  const std::string before = read_file(dir + "/model.safetensors");
  expect_one_line_error(run_halo("convert --teacher " + dir + " --out " + dir + "/. --attn-layers 1"), 2,
                        "would overwrite the teacher");
  EXPECT_EQ(read_file(dir + "/model.safetensors"), before);
  for (const char* bad : {"nan", "inf", "-2", "0", "'hype x'", "'hype inf'", "'hype 1'"}) {
    expect_one_line_error(run_halo(std::string("convert --teacher ") + dir + " --out " + dir +
                                   "-out --attn-layers 1 --attn-logits-scaling " + bad),
                          2, "--attn-logits-scaling");
  }
  EXPECT_FALSE(path_exists(dir + "-out/config.json"));
}

TEST(Cli, ConvertWritesAHypeNetThatEveryCommandLoads) {
  const std::string dir = test::make_temp_dir() + "/hypenet";
  auto r = run_halo("convert --teacher " + test::fixture("qwen3-tiny") + " --out " + dir +
                    " --attn-layers 3,1 --attn-logits-scaling 'hype 500'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* file : {"config.json", "model.safetensors", "generation_config.json"}) {
    EXPECT_TRUE(path_exists(dir + "/" + file)) << file;
  }
  auto info = run_halo("info --model " + dir);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("architecture   hypenet"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("    0  lightning-attn"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("    1  attn"), std::string::npos) << info.out;
  auto gen = run_halo("generate --model " + dir + " --prompt-ids '5 6 7' --print-ids --max-new-tokens 4 --device cpu");
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  int count = 0;
  std::istringstream ids(gen.out);
  for (std::string word; ids >> word;) ++count;
  EXPECT_EQ(count, 4);
  auto ref = load_tensors(test::fixture("qwen3-tiny") + "/reference.safetensors");
  save_tensors(dir + "/in.safetensors", {{"input_ids", ref.at("input_ids")}});
  auto fwd = run_halo("forward --model " + dir + " --input " + dir + "/in.safetensors --output " + dir +
                      "/out.safetensors --device cpu");
  ASSERT_EQ(fwd.exit_code, 0) << fwd.err;
  EXPECT_EQ(load_tensors(dir + "/out.safetensors").at("logits").sizes(), ref.at("logits").sizes());
  expect_one_line_error(
      run_halo("convert --teacher " + test::fixture("qwen3-tiny") + " --out " + dir + "2 --attn-layers 9"), 2,
      "outside");
  expect_one_line_error(
      run_halo("convert --teacher " + test::fixture("qwen3-tiny") + " --out " + dir + "2 --preset hypenet-2b"), 2,
      "hypenet-2b");
  expect_one_line_error(run_halo("convert --teacher " + test::fixture("qwen3-tiny") + " --out " + dir + "2"), 2,
                        "--attn-layers or --preset");
  expect_one_line_error(run_halo("convert --teacher " + dir + " --out " + dir + "2 --attn-layers 1"), 1,
                        "already a HypeNet");
}

TEST(Cli, PromptFileGeneratesABatchEqualToSingleRuns) {
  const std::string dir = test::make_temp_dir();
  test::write_text(dir + "/prompts.txt", "5 6 7 8 9 10\n\n11 12\n");
  const std::string model = test::fixture("qwen3-tiny");
  auto batch = run_halo("generate --model " + model + " --prompt-file " + dir +
                        "/prompts.txt --ids-in-file --print-ids --max-new-tokens 5 --device cpu");
  ASSERT_EQ(batch.exit_code, 0) << batch.err;
  std::istringstream lines(batch.out);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    auto single = run_halo("generate --model " + model + " --prompt-ids '" + row["prompt"].get<std::string>() +
                           "' --print-ids --max-new-tokens 5 --device cpu");
    std::string expected;
    for (const auto& id : row["completion"])
      expected += (expected.empty() ? "" : " ") + std::to_string(id.get<int64_t>());
    EXPECT_EQ(single.out, expected + "\n");
  }
}

TEST(Cli, ImportUsageErrorsAndGgufInfo) {
  expect_one_line_error(run_halo("import"), 2, "give the GGUF file");
  expect_one_line_error(run_halo("import model.gguf"), 2, "--out is required");
  expect_one_line_error(run_halo("import /nonexistent/model.gguf --out /nonexistent/out"), 1,
                        "/nonexistent/model.gguf");
  const std::string dir = test::make_temp_dir();
  test::write_text(dir + "/fake.gguf", "not a gguf file at all");
  expect_one_line_error(run_halo("import " + dir + "/fake.gguf --out " + dir + "/out --dtype float16"), 2, "float16");
  expect_one_line_error(run_halo("import " + dir + "/fake.gguf --out " + dir + "/out"), 1, "fake.gguf");
  expect_one_line_error(run_halo("info --model " + dir + "/fake.gguf"), 1, "fake.gguf");
  EXPECT_FALSE(path_exists(dir + "/out"));
  // The real SmolLM2 GGUF, when scripts/fetch_teacher.sh smollm2 has fetched it.
  const std::string gguf = HALO_SOURCE_DIR "/runs/teachers/smollm2-135m.gguf";
  if (!is_regular_file(gguf)) GTEST_SKIP() << "no " << gguf << " (scripts/fetch_teacher.sh smollm2)";
  auto info = run_halo("info --model " + gguf);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("architecture   llama"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("Q4_1 x210"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("pre smollm, 49152 tokens, 48900 merges"), std::string::npos) << info.out;
  auto imported = run_halo("import " + gguf + " --out " + dir + "/smollm2 --dtype bfloat16 --quiet");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_NE(imported.out.find("llama, 272 tensors"), std::string::npos) << imported.out;
  EXPECT_TRUE(is_regular_file(dir + "/smollm2/model.safetensors"));
  EXPECT_TRUE(is_regular_file(dir + "/smollm2/tokenizer.json"));
  // The imported teacher runs in halo: greedy, it knows the capital of France.
  auto paris = run_halo("generate --model " + dir +
                        "/smollm2 --prompt \"The capital of France is\" --max-new-tokens 4 "
                        "--device cpu --quiet");
  ASSERT_EQ(paris.exit_code, 0) << paris.err;
  EXPECT_NE(paris.out.find("Paris"), std::string::npos) << paris.out;
}

}  // namespace
}  // namespace halo
