// Training data: tokenize_corpus on small corpora (formats, splits, directories, globs, threads,
// manifest, errors and the commit protocol) with a byte-level test tokenizer, and the
// TokenDataset / TokenBatcher loader on synthetic token files whose ids are their own offsets,
// so that every row of a batch says which window it came from. Also the synthetic retrieval
// documents (halo/needle_text.h, `halo data retrieval`): the NIAH template, several needles per
// document, recalls, repeated text, digit-free filler, determinism and errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <regex>
#include <set>
#include <thread>

#include "data/token_dataset.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/needle_text.h"
#include "halo/token_corpus.h"
#include "halo/tokenizer.h"
#include "test_support.h"

namespace halo {
namespace {
using test::make_temp_dir;
using test::write_text;

constexpr uint32_t kEos = 256;

// One id per byte, EOS 256; byte 0xFF stands for invalid UTF-8. With `jitter`, encode sleeps a
// text-dependent few hundred microseconds so that workers finish batches out of order.
class ByteTokenizer : public Tokenizer {
 public:
  explicit ByteTokenizer(bool has_eos = true, bool jitter = false) : has_eos_(has_eos), jitter_(jitter) {}
  std::vector<int32_t> encode(std::string_view text) const override {
    if (jitter_) std::this_thread::sleep_for(std::chrono::microseconds(std::hash<std::string_view>()(text) % 400));
    std::vector<int32_t> ids;
    for (unsigned char c : text) {
      if (c == 0xFF) fail("invalid UTF-8 (byte 0xff)");
      ids.push_back(c);
    }
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override { return std::string(ids.begin(), ids.end()); }
  int32_t vocab_size() const override { return 257; }
  std::optional<int32_t> token_to_id(const std::string&) const override { return std::nullopt; }
  std::optional<int32_t> eos_id() const override { return has_eos_ ? std::optional<int32_t>(kEos) : std::nullopt; }

 private:
  bool has_eos_, jitter_;
};

// The stream tokenize_corpus should write for `docs` with ByteTokenizer.
std::vector<uint32_t> stream_of(const std::vector<std::string>& docs, bool eos = true) {
  std::vector<uint32_t> out;
  for (const auto& d : docs) {
    for (unsigned char c : d) out.push_back(c);
    if (eos) out.push_back(kEos);
  }
  return out;
}

std::vector<uint32_t> read_tokens(const std::string& dir) {
  const std::string bytes = read_file(dir + "/tokens.bin");
  std::vector<uint32_t> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

TokenizeCorpusOptions options_for(std::vector<std::string> inputs, const std::string& out, int threads = 2) {
  TokenizeCorpusOptions o;
  o.inputs = std::move(inputs);
  o.out_dir = out;
  o.threads = threads;
  o.tokenizer = {"/test/tokenizer.json", "0000"};
  return o;
}

using halo::test::error_of;

TEST(PrepareTest, TextPerFileFromDirectoryRecursedInSortedOrder) {
  const std::string root = make_temp_dir();
  create_directories(root + "/docs/sub");
  write_text(root + "/docs/sub/b.txt", "beta");
  write_text(root + "/docs/a.txt", "alpha\n");
  write_text(root + "/docs/c.md", "  \n\t");  // blank: skipped
  const std::string out = root + "/out";
  const TokenCorpusManifest m = tokenize_corpus(ByteTokenizer(), options_for({root + "/docs"}, out));
  EXPECT_EQ(read_tokens(out), stream_of({"alpha\n", "beta"}));
  ASSERT_EQ(m.sources.size(), 3u);
  EXPECT_EQ(m.sources[0].path, root + "/docs/a.txt");
  EXPECT_EQ(m.sources[1].path, root + "/docs/c.md");
  EXPECT_EQ(m.sources[2].path, root + "/docs/sub/b.txt");
  EXPECT_EQ(m.sources[1].skipped_documents, 1);
  EXPECT_EQ(m.sources[1].documents, 0);
  EXPECT_EQ(m.sources[2].tokens, 5);
  EXPECT_EQ(m.documents, 2);
  EXPECT_EQ(m.skipped_documents, 1);
  EXPECT_EQ(m.tokens, 12);
  EXPECT_EQ(m.bytes, 6 + 4 + 4);
}

TEST(PrepareTest, GlobPatternTakesOnlyItsMatchesSorted) {
  const std::string root = make_temp_dir();
  write_text(root + "/x2.txt", "two");
  write_text(root + "/x1.txt", "one");
  write_text(root + "/y.dat", "not me");
  const std::string out = root + "/out";
  const auto m = tokenize_corpus(ByteTokenizer(), options_for({root + "/x*.txt"}, out));
  EXPECT_EQ(read_tokens(out), stream_of({"one", "two"}));
  ASSERT_EQ(m.sources.size(), 2u);
  EXPECT_EQ(m.sources[0].path, root + "/x1.txt");
}

TEST(PrepareTest, DirectoryAndGlobNamingTheSameFileReadItOnce) {
  const std::string root = make_temp_dir();
  create_directories(root + "/d");
  write_text(root + "/d/a.txt", "A");
  write_text(root + "/d/b.txt", "B");
  const auto files = expand_inputs({root + "/d/b.txt", root + "/d", root + "/d/*.txt"});
  EXPECT_EQ(files, (std::vector<std::string>{root + "/d/b.txt", root + "/d/a.txt"}));
}

TEST(PrepareTest, BlankLineSplitMakesADocumentPerBlock) {
  const std::string root = make_temp_dir();
  write_text(root + "/t.txt", "p1 line1\np1 line2\n\n\n  \np2\n \nlast line without newline");
  const std::string out = root + "/out";
  auto o = options_for({root + "/t.txt"}, out);
  o.documents.split = TextSplit::blank_line;
  const auto m = tokenize_corpus(ByteTokenizer(), o);
  EXPECT_EQ(read_tokens(out), stream_of({"p1 line1\np1 line2", "p2", "last line without newline"}));
  EXPECT_EQ(m.documents, 3);
  EXPECT_EQ(m.skipped_documents, 0);
  EXPECT_EQ(m.bytes, static_cast<int64_t>(file_size(root + "/t.txt")));
}

TEST(PrepareTest, JsonlWithCustomFieldSkipsEmptyDocumentsAndBlankLines) {
  const std::string root = make_temp_dir();
  write_text(root + "/c.jsonl",
             "{\"body\": \"one\", \"text\": \"ignored\"}\n\n{\"id\": 7, \"body\": \"two\\nlines \\u00e9\"}\n{\"body\": "
             "\"\"}\n");
  const std::string out = root + "/out";
  auto o = options_for({root + "/c.jsonl"}, out);
  o.documents.jsonl_field = "body";
  const auto m = tokenize_corpus(ByteTokenizer(), o);
  EXPECT_EQ(read_tokens(out), stream_of({"one", "two\nlines \xc3\xa9"}));
  EXPECT_EQ(m.documents, 2);
  EXPECT_EQ(m.skipped_documents, 1);
}

TEST(PrepareTest, FormatOptionOverridesTheExtension) {
  const std::string root = make_temp_dir();
  write_text(root + "/c.jsonl", "{\"text\": \"x\"}\n");
  const std::string out = root + "/out";
  auto o = options_for({root + "/c.jsonl"}, out);
  o.documents.format = InputFormat::text;
  tokenize_corpus(ByteTokenizer(), o);
  EXPECT_EQ(read_tokens(out), stream_of({"{\"text\": \"x\"}\n"}));
  EXPECT_EQ(parse_input_format("jsonl"), InputFormat::jsonl);
  EXPECT_EQ(parse_text_split("blank-line"), TextSplit::blank_line);
  EXPECT_THROW(parse_input_format("csv"), Error);
}

TEST(PrepareTest, OutputIsTheSameForOneAndFourThreads) {
  const std::string root = make_temp_dir();
  create_directories(root + "/in");
  std::vector<std::string> docs;
  std::string jsonl;
  for (int i = 0; i < 300; ++i) {
    docs.push_back(std::string(1 + i % 37, static_cast<char>('a' + i % 26)) + std::to_string(i));
    jsonl += nlohmann::json{{"text", docs.back()}}.dump() + "\n";
  }
  write_text(root + "/in/a.jsonl", jsonl);
  for (int i = 0; i < 40; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/in/t%02d.txt", i);
    write_text(root + name, "file " + std::to_string(i));
    docs.push_back("file " + std::to_string(i));
  }
  std::vector<std::string> manifests;
  for (int threads : {1, 4}) {
    const std::string out = root + "/out" + std::to_string(threads);
    auto o = options_for({root + "/in"}, out, threads);
    o.batch_bytes = 20;  // many small batches
    tokenize_corpus(ByteTokenizer(true, /*jitter=*/true), o);
    EXPECT_EQ(read_tokens(out), stream_of(docs)) << threads << " threads";
    nlohmann::json j = nlohmann::json::parse(read_file(out + "/manifest.json"));
    j.erase("created");
    manifests.push_back(j.dump());
  }
  EXPECT_EQ(manifests[0], manifests[1]);
}

TEST(PrepareTest, ManifestRecordsTokenizerCountsAndSources) {
  const std::string root = make_temp_dir();
  create_directories(root + "/tok");
  write_text(root + "/tok/tokenizer.json", "abc");
  write_text(root + "/tok/tokenizer.model", "ignored: tokenizer.json comes first");
  write_text(root + "/a.txt", "hello");
  write_text(root + "/b.txt", "");
  const std::string out = root + "/out";
  auto o = options_for({root + "/a.txt", root + "/b.txt"}, out);
  o.tokenizer = fingerprint_tokenizer(root + "/tok");
  tokenize_corpus(ByteTokenizer(), o);
  const auto j = nlohmann::json::parse(read_file(out + "/manifest.json"));
  EXPECT_EQ(j["format"], "halo-tokens-v1");
  EXPECT_EQ(j["dtype"], "uint32");
  EXPECT_EQ(j["tokenizer"]["path"], root + "/tok/tokenizer.json");
  EXPECT_EQ(j["tokenizer"]["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(j["vocab_size"], 257);
  EXPECT_EQ(j["eos_id"], 256);
  EXPECT_EQ(j["eos_appended"], true);
  EXPECT_EQ(j["documents"], 1);
  EXPECT_EQ(j["skipped_documents"], 1);
  EXPECT_EQ(j["tokens"], 6);
  EXPECT_EQ(j["bytes"], 5);
  ASSERT_EQ(j["sources"].size(), 2u);
  EXPECT_EQ(j["sources"][0],
            (nlohmann::json{
                {"path", root + "/a.txt"}, {"documents", 1}, {"skipped_documents", 0}, {"tokens", 6}, {"bytes", 5}}));
  EXPECT_TRUE(std::regex_match(j["created"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
  EXPECT_FALSE(path_exists(out + "/tokens.bin.tmp"));
  // The manifest reads back to what was written.
  EXPECT_EQ(manifest_to_json(read_manifest(out)), read_file(out + "/manifest.json"));
}

TEST(PrepareTest, FingerprintOfASentencePieceDirectoryUsesTheModelFile) {
  const std::string root = make_temp_dir();
  write_text(root + "/tokenizer.model", "");
  const auto f = fingerprint_tokenizer(root);
  EXPECT_EQ(f.path, root + "/tokenizer.model");
  EXPECT_EQ(f.sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_NE(error_of([&] { fingerprint_tokenizer(root + "/none"); }).find(root + "/none"), std::string::npos);
}

TEST(PrepareTest, BadJsonlLineFailsNamingFileAndLineAndLeavesNoCompleteCorpus) {
  const std::string root = make_temp_dir();
  write_text(root + "/good.txt", "fine");
  const std::string out = root + "/out";
  tokenize_corpus(ByteTokenizer(), options_for({root + "/good.txt"}, out));
  ASSERT_TRUE(path_exists(out + "/manifest.json"));

  write_text(root + "/bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
  const std::string err = error_of([&] { tokenize_corpus(ByteTokenizer(), options_for({root + "/bad.jsonl"}, out)); });
  EXPECT_NE(err.find(root + "/bad.jsonl:2: not valid JSON"), std::string::npos) << err;
  // The old manifest went first, and the partial token file is gone.
  EXPECT_FALSE(path_exists(out + "/manifest.json"));
  EXPECT_FALSE(path_exists(out + "/tokens.bin.tmp"));
  EXPECT_NE(error_of([&] { TokenDataset d(out); }).find("halo data prepare"), std::string::npos);

  write_text(root + "/nofield.jsonl", "\n{\"body\": \"x\"}\n");
  EXPECT_NE(error_of([&] {
              tokenize_corpus(ByteTokenizer(), options_for({root + "/nofield.jsonl"}, out));
            }).find("nofield.jsonl:2: no field \"text\""),
            std::string::npos);
  write_text(root + "/array.jsonl", "[1, 2]\n");
  EXPECT_NE(error_of([&] {
              tokenize_corpus(ByteTokenizer(), options_for({root + "/array.jsonl"}, out));
            }).find("array.jsonl:1: expected a JSON object"),
            std::string::npos);
}

TEST(PrepareTest, MissingInputFailsNamingIt) {
  const std::string root = make_temp_dir();
  const std::string out = root + "/out";
  const std::string err = error_of([&] { tokenize_corpus(ByteTokenizer(), options_for({root + "/absent.txt"}, out)); });
  EXPECT_NE(err.find(root + "/absent.txt: no such file or directory"), std::string::npos) << err;
  EXPECT_NE(error_of([&] { expand_inputs({root + "/*.nothing"}); }).find("*.nothing"), std::string::npos);
  create_directories(root + "/empty");
  EXPECT_NE(error_of([&] { expand_inputs({root + "/empty"}); }).find("holds no files"), std::string::npos);
  EXPECT_FALSE(path_exists(out));
}

TEST(PrepareTest, UntokenizableTextFailsNamingFileAndLine) {
  const std::string root = make_temp_dir();
  write_text(root + "/ok.txt", "fine");
  write_text(root + "/bad.txt", "x\n\nbad \xff here\n");
  auto o = options_for({root + "/ok.txt", root + "/bad.txt"}, root + "/out");
  const std::string per_file = error_of([&] { tokenize_corpus(ByteTokenizer(), o); });
  EXPECT_NE(per_file.find(root + "/bad.txt: cannot tokenize: invalid UTF-8"), std::string::npos) << per_file;
  o.documents.split = TextSplit::blank_line;
  const std::string per_block = error_of([&] { tokenize_corpus(ByteTokenizer(), o); });
  EXPECT_NE(per_block.find(root + "/bad.txt:3: cannot tokenize"), std::string::npos) << per_block;
}

TEST(PrepareTest, TokenizerWithoutEosNeedsNoEos) {
  const std::string root = make_temp_dir();
  write_text(root + "/a.txt", "ab");
  write_text(root + "/b.txt", "cd");
  const std::string out = root + "/out";
  auto o = options_for({root + "/a.txt", root + "/b.txt"}, out);
  EXPECT_NE(error_of([&] { tokenize_corpus(ByteTokenizer(false), o); }).find("--no-eos"), std::string::npos);
  o.append_eos = false;
  const auto m = tokenize_corpus(ByteTokenizer(false), o);
  EXPECT_EQ(read_tokens(out), stream_of({"ab", "cd"}, false));
  EXPECT_FALSE(m.eos_appended);
  EXPECT_FALSE(m.eos_id.has_value());
}

TEST(PrepareTest, OutputDirectoryInsideAnInputDirectoryIsNotRead) {
  const std::string root = make_temp_dir();
  write_text(root + "/a.txt", "text");
  const std::string out = root + "/tokens";
  tokenize_corpus(ByteTokenizer(), options_for({root}, out));
  // A second run sees tokens/ inside the input directory and must not tokenize it.
  const auto m = tokenize_corpus(ByteTokenizer(), options_for({root}, out));
  EXPECT_EQ(m.sources.size(), 1u);
  EXPECT_EQ(read_tokens(out), stream_of({"text"}));
}

// A token directory whose token at offset i is i (vocab_size n unless given).
std::string make_token_dir(int64_t n, int64_t vocab_size = 0) {
  std::vector<uint32_t> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), 0u);
  return test::write_token_dir(ids, vocab_size > 0 ? vocab_size : std::max<int64_t>(n, 1));
}

// Window index of each row (rows must be runs of consecutive offsets starting at a multiple of T).
std::vector<int64_t> windows_of(const at::Tensor& batch, int64_t T) {
  std::vector<int64_t> out;
  for (int64_t b = 0; b < batch.size(0); ++b) {
    const at::Tensor row = batch[b];
    const int64_t start = row[0].item<int64_t>();
    EXPECT_EQ(start % T, 0);
    EXPECT_TRUE(row.equal(at::arange(start, start + T + 1, at::kLong))) << row;
    out.push_back(start / T);
  }
  return out;
}

std::vector<int64_t> take_windows(TokenBatcher& batcher, int64_t batches, int64_t T) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < batches; ++i) {
    for (int64_t w : windows_of(batcher.next(), T)) out.push_back(w);
  }
  return out;
}

TEST(TokenDatasetTest, MapsTheTokens) {
  const std::string dir = make_token_dir(50);
  TokenDataset d(dir);
  EXPECT_EQ(d.size(), 50);
  EXPECT_EQ(d.tokens()[0], 0u);
  EXPECT_EQ(d.tokens()[49], 49u);
  EXPECT_EQ(d.manifest().vocab_size, 50);
}

TEST(TokenDatasetTest, ReadsWhatPrepareWrote) {
  const std::string root = make_temp_dir();
  write_text(root + "/a.txt", "hello world, this is a test");
  const std::string out = root + "/out";
  tokenize_corpus(ByteTokenizer(), options_for({root + "/a.txt"}, out));
  TokenDataset d(out);
  EXPECT_EQ(std::vector<uint32_t>(d.tokens(), d.tokens() + d.size()), stream_of({"hello world, this is a test"}));
}

TEST(TokenDatasetTest, TruncatedTokenFileIsAClearError) {
  const std::string dir = make_token_dir(40);
  ASSERT_EQ(::truncate((dir + "/tokens.bin").c_str(), 39 * 4 + 2), 0);
  const std::string err = error_of([&] { TokenDataset d(dir); });
  EXPECT_NE(err.find(dir + "/tokens.bin: 158 bytes, but its manifest lists 40 tokens (160 bytes)"), std::string::npos)
      << err;
  EXPECT_NE(err.find("truncated"), std::string::npos);
}

TEST(TokenDatasetTest, BadManifestIsAClearError) {
  const std::string dir = make_token_dir(40);
  auto j = nlohmann::json::parse(read_file(dir + "/manifest.json"));
  j["format"] = "other";
  write_text(dir + "/manifest.json", j.dump());
  EXPECT_NE(error_of([&] { TokenDataset d(dir); }).find("format is \"other\""), std::string::npos);
  j["format"] = "halo-tokens-v1";
  j["tokens"] = 41;  // no longer the sum over sources
  write_text(dir + "/manifest.json", j.dump());
  EXPECT_NE(error_of([&] { TokenDataset d(dir); }).find("do not match"), std::string::npos);
}

TEST(TokenBatcherTest, WindowsStartEveryTTokensAndCoverEveryTargetOnce) {
  const int64_t N = 103, T = 10, B = 2;  // floor(102 / 10) = 10 windows; tokens 101, 102 unused
  TokenDataset d(make_token_dir(N));
  TokenBatcher batcher(d, {B, T, 7, 0, 1});
  EXPECT_EQ(batcher.windows(), 10);
  EXPECT_EQ(batcher.batches_per_epoch(), 5);
  const at::Tensor first = batcher.next();
  EXPECT_EQ(first.sizes(), (at::IntArrayRef{B, T + 1}));
  EXPECT_EQ(first.scalar_type(), at::kLong);
  std::vector<int64_t> windows = windows_of(first, T);
  for (int64_t w : take_windows(batcher, 4, T)) windows.push_back(w);
  std::vector<int64_t> sorted = windows;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> all(10);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(sorted, all);
  EXPECT_NE(windows, all) << "the windows should be shuffled";
  EXPECT_EQ(batcher.cursor(), (TokenCursor{0, 10}));
  batcher.next();
  EXPECT_EQ(batcher.cursor(), (TokenCursor{1, 2}));
}

TEST(TokenBatcherTest, EpochOrderDependsOnSeedAndEpochOnly) {
  TokenDataset d(make_token_dir(1001));
  const int64_t T = 10;  // 100 windows
  TokenBatcher a(d, {4, T, 1, 0, 1}), b(d, {4, T, 1, 0, 1}), c(d, {4, T, 2, 0, 1});
  const auto a_windows = take_windows(a, 50, T);  // two epochs
  EXPECT_EQ(a_windows, take_windows(b, 50, T));
  const auto c_windows = take_windows(c, 25, T);
  const std::vector<int64_t> epoch0(a_windows.begin(), a_windows.begin() + 100);
  const std::vector<int64_t> epoch1(a_windows.begin() + 100, a_windows.end());
  EXPECT_NE(epoch0, epoch1);
  EXPECT_NE(epoch0, c_windows);
  std::vector<int64_t> sorted1 = epoch1;
  std::sort(sorted1.begin(), sorted1.end());
  EXPECT_EQ(std::set<int64_t>(sorted1.begin(), sorted1.end()).size(), 100u);
}

TEST(TokenBatcherTest, RestoredCursorContinuesExactlyLikeAnUninterruptedRun) {
  TokenDataset d(make_token_dir(333));
  const TokenBatcherOptions options{3, 8, 42, 0, 1};  // 41 windows: 13 batches an epoch, 2 windows dropped
  TokenBatcher uninterrupted(d, options);
  std::vector<at::Tensor> reference;
  for (int i = 0; i < 40; ++i) reference.push_back(uninterrupted.next());
  for (int stop : {0, 5, 13, 14, 26, 30}) {
    TokenBatcher first(d, options);
    for (int i = 0; i < stop; ++i) first.next();
    const std::string saved = nlohmann::json(first.cursor()).dump();
    TokenBatcher resumed(d, options);
    resumed.restore(nlohmann::json::parse(saved).get<TokenCursor>());
    for (int i = stop; i < 40; ++i) {
      ASSERT_TRUE(resumed.next().equal(reference[i])) << "stopped after " << stop << ", batch " << i;
    }
  }
}

TEST(TokenBatcherTest, CursorJsonAndRangeAreChecked) {
  TokenDataset d(make_token_dir(100));
  TokenBatcher batcher(d, {2, 9, 0, 0, 1});  // 11 windows
  EXPECT_EQ(nlohmann::json(TokenCursor{3, 4}).dump(), "{\"epoch\":3,\"position\":4}");
  EXPECT_THROW(nlohmann::json::parse("{\"epoch\": -1, \"position\": 0}").get<TokenCursor>(), Error);
  EXPECT_THROW(nlohmann::json::parse("{\"epoch\": 1}").get<TokenCursor>(), Error);
  EXPECT_THROW(batcher.restore({0, 12}), Error);
  batcher.restore({0, 11});
  batcher.next();
  EXPECT_EQ(batcher.cursor(), (TokenCursor{1, 2}));
}

TEST(TokenBatcherTest, RanksPartitionThePermutation) {
  TokenDataset d(make_token_dir(221));
  const int64_t T = 10, world = 3;  // 22 windows: 7 per rank, one dropped
  TokenBatcher single(d, {1, T, 5, 0, 1});
  const auto order = take_windows(single, 22, T);
  std::set<int64_t> seen;
  for (int64_t rank = 0; rank < world; ++rank) {
    TokenBatcher batcher(d, {1, T, 5, rank, world});
    EXPECT_EQ(batcher.windows_per_rank(), 7);
    const auto mine = take_windows(batcher, 7, T);
    for (int64_t k = 0; k < 7; ++k) {
      EXPECT_EQ(mine[k], order[k * world + rank]) << "rank " << rank << ", window " << k;
      EXPECT_TRUE(seen.insert(mine[k]).second) << "window " << mine[k] << " given to two ranks";
    }
    batcher.next();
    EXPECT_EQ(batcher.cursor(), (TokenCursor{1, 1}));
  }
  EXPECT_EQ(seen.size(), 21u);
  EXPECT_THROW(TokenBatcher(d, {1, T, 5, 3, 3}), Error);
}

TEST(TokenBatcherTest, TooLittleDataAndOutOfVocabularyIdsAreClearErrors) {
  TokenDataset small(make_token_dir(20));
  EXPECT_NE(error_of([&] {
              TokenBatcher(small, {2, 10, 0, 0, 1});
            }).find("fewer than batch size 2"),
            std::string::npos);
  TokenDataset corrupt(make_token_dir(40, /*vocab_size=*/30));
  TokenBatcher batcher(corrupt, {3, 10, 0, 0, 1});
  EXPECT_NE(error_of([&] { batcher.next(); }).find("is not below vocab_size 30"), std::string::npos);
}

// ---- Retrieval documents ----

// Occurrences of `needle` in `text`.
size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

const std::vector<std::string> kFiller = {"Alpha runs.",          "Beta jumps high.", "Gamma sleeps!",
                                          "Delta reads a book.",  "Epsilon sings?",   "Zeta waits.",
                                          "Eta counts to 10 now.", "Theta has 3 cats."};

// The key and value of every needle sentence of `doc`, in the order they appear.
std::vector<std::pair<std::string, std::string>> needles_of(const std::string& doc) {
  static const std::regex needle(R"( The special magic number for ([a-z]+-[a-z]+) is: ([0-9]{7})\.)");
  std::vector<std::pair<std::string, std::string>> found;
  const size_t questions = doc.find("\nWhat is");
  const std::string body = doc.substr(0, questions);
  for (auto it = std::sregex_iterator(body.begin(), body.end(), needle); it != std::sregex_iterator(); ++it) {
    found.emplace_back((*it)[1], (*it)[2]);
  }
  return found;
}

TEST(RetrievalDocumentsTest, OneNeedleIsTheNiahTemplateFollowedByItsAnswer) {
  RetrievalDocumentOptions o;
  o.count = 2;
  o.min_chars = 10;
  o.max_chars = 40;
  o.seed = 7;
  const std::vector<std::string> filler = split_sentences(
      "Alpha runs. Beta jumps high. Gamma sleeps!\nDelta reads a book. Epsilon sings? Zeta waits.\n");
  const auto docs = retrieval_documents(filler, o);
  // Pinned: the documents of one needle are those halo wrote before --needles existed.
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0], needle_header() +
                         "Epsilon sings? The special magic number for quiet-walnut is: 9609346. Zeta waits. Alpha "
                         "runs." +
                         needle_question("quiet-walnut") + " 9609346.");
  EXPECT_EQ(docs[1], needle_header() + "Beta jumps high. The special magic number for proud-wizard is: 9077985. "
                                       "Gamma sleeps!" +
                         needle_question("proud-wizard") + " 9077985.");
  o.count = 50;
  for (const auto& doc : retrieval_documents(kFiller, o)) {
    const auto needles = needles_of(doc);
    ASSERT_EQ(needles.size(), 1u) << doc;
    EXPECT_EQ(doc.rfind(needle_header(), 0), 0u) << doc;
    const std::string tail = needle_question(needles[0].first) + " " + needles[0].second + ".";
    ASSERT_GE(doc.size(), tail.size());
    EXPECT_EQ(doc.substr(doc.size() - tail.size()), tail) << doc;
    EXPECT_EQ(count_of(doc, "\nWhat is"), 1u) << doc;
  }
}

TEST(RetrievalDocumentsTest, SeveralNeedlesHaveDistinctKeysAndEachIsAskedOnceAfterTheFiller) {
  RetrievalDocumentOptions o;
  o.count = 40;
  o.min_chars = 20;
  o.max_chars = 200;
  o.needles = 5;
  o.seed = 3;
  bool some_order_differs = false;
  for (const auto& doc : retrieval_documents(kFiller, o)) {
    const auto needles = needles_of(doc);
    ASSERT_EQ(needles.size(), 5u) << doc;
    std::set<std::string> keys;
    for (const auto& [key, value] : needles) keys.insert(key);
    EXPECT_EQ(keys.size(), 5u) << "keys repeat in " << doc;
    // After the filler: one question per needle, each followed by that needle's value.
    const std::string questions = doc.substr(doc.find("\nWhat is"));
    EXPECT_EQ(count_of(questions, "\nWhat is"), 5u) << doc;
    EXPECT_EQ(count_of(questions, needle_question(needles[0].first)), 1u);
    std::vector<std::string> asked;
    for (const auto& [key, value] : needles) {
      EXPECT_EQ(count_of(questions, needle_question(key) + " " + value + "."), 1u) << key << " in " << doc;
    }
    static const std::regex question(R"(\nWhat is the special magic number for ([a-z]+-[a-z]+) mentioned)");
    for (auto it = std::sregex_iterator(questions.begin(), questions.end(), question); it != std::sregex_iterator();
         ++it) {
      asked.push_back((*it)[1]);
    }
    ASSERT_EQ(asked.size(), 5u);
    for (size_t j = 0; j < 5; ++j) some_order_differs |= asked[j] != needles[j].first;
    EXPECT_EQ(doc.back(), '.');
  }
  EXPECT_TRUE(some_order_differs) << "the questions always follow the needles' order";
}

TEST(RetrievalDocumentsTest, DigitFreeFillerLeavesOutSentencesWithDigits) {
  RetrievalDocumentOptions o;
  o.count = 30;
  o.min_chars = 100;
  o.max_chars = 300;
  o.needles = 2;
  // The text of a document without its needles, questions and answers: the filler alone.
  auto filler_of = [](std::string doc) {
    for (const auto& [key, value] : needles_of(doc)) {
      const std::string sentence = needle_sentence(key, value);
      doc.erase(doc.find(sentence), sentence.size());
    }
    return doc.substr(needle_header().size(), doc.find("\nWhat is") - needle_header().size());
  };
  auto has_digit = [](const std::string& text) {
    return std::any_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  bool digits_without = false;
  for (const auto& doc : retrieval_documents(kFiller, o)) digits_without |= has_digit(filler_of(doc));
  EXPECT_TRUE(digits_without) << "the plain filler should bring its digits";
  o.digit_free_filler = true;
  for (const auto& doc : retrieval_documents(kFiller, o)) {
    EXPECT_FALSE(has_digit(filler_of(doc))) << doc;
    EXPECT_EQ(needles_of(doc).size(), 2u);
    EXPECT_NE(doc.find("Alpha runs."), std::string::npos);  // ~300 characters cycle through the filler
  }
  EXPECT_NE(error_of([&] { retrieval_documents({"Room 101.", "Catch 22."}, o); }).find("every sentence"),
            std::string::npos);
}

TEST(RetrievalDocumentsTest, RecallsRepeatEachNeedleVerbatimAfterItFromVariedDistances) {
  RetrievalDocumentOptions o;
  o.count = 40;
  o.min_chars = 100;
  o.max_chars = 300;
  o.needles = 2;
  o.recalls = 3;
  o.seed = 9;
  std::set<size_t> distances;
  for (const auto& doc : retrieval_documents(kFiller, o)) {
    const auto found = needles_of(doc);
    ASSERT_EQ(found.size(), 8u) << doc;  // 2 needles, each with 3 recalls
    std::map<std::string, std::string> value_of;
    for (const auto& [key, value] : found) {
      EXPECT_EQ(value_of.emplace(key, value).first->second, value) << "a recall changed " << key << " in " << doc;
    }
    ASSERT_EQ(value_of.size(), 2u) << doc;
    const std::string body = doc.substr(0, doc.find("\nWhat is"));
    for (const auto& [key, value] : value_of) {
      const std::string sentence = needle_sentence(key, value);
      EXPECT_EQ(count_of(body, sentence), 4u) << doc;
      // Characters from the needle to its last recall.
      distances.insert(body.rfind(sentence) - body.find(sentence));
      // Still asked exactly once, after the filler, with its answer.
      EXPECT_EQ(count_of(doc, needle_question(key) + " " + value + "."), 1u) << doc;
    }
    EXPECT_EQ(count_of(doc, "\nWhat is"), 2u) << doc;
  }
  EXPECT_GT(distances.size(), 20u) << "recalls should follow their needles from many distances";
  EXPECT_GT(*distances.rbegin(), 100u) << "no recall is far from its needle";
}

TEST(RetrievalDocumentsTest, RepeatTextWritesTheDocumentTextTwiceBeforeTheQuestions) {
  RetrievalDocumentOptions o;
  o.count = 20;
  o.min_chars = 50;
  o.max_chars = 200;
  o.needles = 2;
  o.recalls = 1;
  o.seed = 4;
  const auto plain = retrieval_documents(kFiller, o);
  o.repeat_text = true;
  const auto repeated = retrieval_documents(kFiller, o);
  ASSERT_EQ(repeated.size(), plain.size());
  for (size_t d = 0; d < plain.size(); ++d) {
    // The same draws: the plain document with its text (header to questions) written again.
    const size_t questions = plain[d].find("\nWhat is");
    const std::string text = plain[d].substr(needle_header().size(), questions - needle_header().size());
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(repeated[d], needle_header() + text + "\n" + text + plain[d].substr(questions)) << repeated[d];
    EXPECT_EQ(needles_of(repeated[d]).size(), 2 * needles_of(plain[d]).size());
    EXPECT_EQ(count_of(repeated[d], "\nWhat is"), 2u);
  }
}

// Scrambled filler: the same needles in the same places, the same words in another order.
TEST(RetrievalDocumentsTest, ScrambleWordsShufflesTheFillerWordsAndKeepsTheNeedles) {
  RetrievalDocumentOptions o;
  o.count = 20;
  o.min_chars = 100;
  o.max_chars = 300;
  o.needles = 2;
  o.seed = 5;
  const auto plain = retrieval_documents(kFiller, o);
  o.scramble_words = true;
  const auto scrambled = retrieval_documents(kFiller, o);
  ASSERT_EQ(scrambled.size(), plain.size());
  // The filler's words, sorted, with the needle sentences cut out.
  auto filler_words = [](std::string doc) {
    doc = doc.substr(needle_header().size(), doc.find("\nWhat is") - needle_header().size());
    for (const auto& [key, value] : needles_of(doc)) {
      const std::string sentence = needle_sentence(key, value);
      for (size_t at; (at = doc.find(sentence)) != std::string::npos;) doc.erase(at, sentence.size());
    }
    std::istringstream in(doc);
    std::vector<std::string> words;
    for (std::string word; in >> word;) words.push_back(word);
    std::sort(words.begin(), words.end());
    return words;
  };
  size_t changed = 0;
  for (size_t d = 0; d < plain.size(); ++d) {
    EXPECT_EQ(needles_of(scrambled[d]), needles_of(plain[d]));
    EXPECT_EQ(plain[d].substr(plain[d].find("\nWhat is")), scrambled[d].substr(scrambled[d].find("\nWhat is")));
    EXPECT_EQ(filler_words(scrambled[d]), filler_words(plain[d])) << scrambled[d];
    changed += scrambled[d] != plain[d];
  }
  EXPECT_GE(changed, 18u);
}

TEST(RetrievalDocumentsTest, DeterministicBySeedAndBadOptionsAreErrors) {
  RetrievalDocumentOptions o;
  o.count = 10;
  o.needles = 3;
  EXPECT_EQ(retrieval_documents(kFiller, o), retrieval_documents(kFiller, o));
  RetrievalDocumentOptions other = o;
  other.seed = 1;
  EXPECT_NE(retrieval_documents(kFiller, o), retrieval_documents(kFiller, other));
  other = o;
  other.count = 0;
  EXPECT_TRUE(retrieval_documents(kFiller, other).empty());
  for (int64_t needles : {0, 65}) {
    other = o;
    other.needles = needles;
    EXPECT_NE(error_of([&] { retrieval_documents(kFiller, other); }).find("needles per document must be 1 to 64"),
              std::string::npos);
  }
  other = o;
  other.min_chars = 50;
  other.max_chars = 40;
  EXPECT_THROW(retrieval_documents(kFiller, other), Error);
  for (int64_t recalls : {-1, 17}) {
    other = o;
    other.recalls = recalls;
    EXPECT_NE(error_of([&] { retrieval_documents(kFiller, other); }).find("recalls per needle must be 0 to 16"),
              std::string::npos);
  }
  EXPECT_NE(error_of([&] { retrieval_documents({}, o); }).find("no sentences"), std::string::npos);
}

TEST(RetrievalDocumentsTest, CommandLineWritesTheDocumentsItsOptionsAsk) {
  const std::string dir = make_temp_dir();
  write_text(dir + "/filler.txt", "Alpha runs. Beta jumps high. Eta counts to 10 now.\nZeta waits. Theta has 3 cats.\n");
  const auto r = test::run_halo("data retrieval --filler " + dir + "/filler.txt --out " + dir +
                                "/r.jsonl --documents 4 --min-chars 20 --max-chars 80 --needles 3 "
                                "--digit-free-filler --recalls 2 --repeat-text --scramble-words --seed 5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RetrievalDocumentOptions o;
  o.count = 4;
  o.min_chars = 20;
  o.max_chars = 80;
  o.needles = 3;
  o.digit_free_filler = true;
  o.recalls = 2;
  o.repeat_text = true;
  o.scramble_words = true;
  o.seed = 5;
  const auto expected = retrieval_documents(
      split_sentences("Alpha runs. Beta jumps high. Eta counts to 10 now.\nZeta waits. Theta has 3 cats.\n"), o);
  std::ifstream in(dir + "/r.jsonl");
  std::vector<std::string> written;
  for (std::string line; std::getline(in, line);) written.push_back(nlohmann::json::parse(line).at("text"));
  EXPECT_EQ(written, expected);
  EXPECT_EQ(test::run_halo("data retrieval --filler " + dir + "/filler.txt --out " + dir + "/r.jsonl --needles 0")
                .exit_code,
            2);
  EXPECT_EQ(test::run_halo("data retrieval --filler " + dir + "/filler.txt --out " + dir + "/r.jsonl --recalls 17")
                .exit_code,
            2);
}

}  // namespace
}  // namespace halo
