// Tokenizer tests. The Qwen3 byte-level BPE is checked against the ids of the reference
// implementations (shared/data/qwen3-tokenizer/cases.json), for its NFC round trip, added
// tokens, both merges formats and the GPT-2 ByteLevel regex (variants of the real
// tokenizer.json written to a temporary directory), invalid input and bad files; the
// pre-tokenizer steps (Digits, several Splits in order, ByteLevel's own regex, bytes without a
// token) on a toy vocabulary against Hugging Face tokenizers' ids. The
// SentencePiece backend is tested on a tiny model trained here from WikiText-2 lines.
#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/tokenizer.h"
#include "test_support.h"

namespace {

using nlohmann::json;

const std::string kQwen3Dir = halo::test::shared_dir() + "/data/qwen3-tokenizer";

// A fresh scratch directory (removed at exit by test_support).
class TempDir {
 public:
  TempDir() : path_(halo::test::make_temp_dir()) {}
  std::string path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

using halo::test::write_text;

using halo::test::nfc;

struct Case {
  std::string name, text, decoded;
  std::vector<int32_t> ids;
};

const std::vector<Case>& reference_cases() {
  static const std::vector<Case> cases = [] {
    const json file = json::parse(halo::read_file(kQwen3Dir + "/cases.json"));
    std::vector<Case> result;
    for (const json& entry : file.at("cases")) {
      result.push_back(
          Case{entry.at("name"), entry.at("text"), entry.at("decoded"), entry.at("ids").get<std::vector<int32_t>>()});
    }
    return result;
  }();
  return cases;
}

const halo::Tokenizer& qwen3() {
  static const std::unique_ptr<halo::Tokenizer> tokenizer = halo::load_tokenizer(kQwen3Dir);
  return *tokenizer;
}

const json& qwen3_json() {
  static const json file = json::parse(halo::read_file(kQwen3Dir + "/tokenizer.json"));
  return file;
}

int32_t id_of(const halo::Tokenizer& tokenizer, const std::string& token) {
  const auto id = tokenizer.token_to_id(token);
  if (!id) throw std::runtime_error("no token " + token);
  return *id;
}

// The message of the halo::Error that `load` throws, or "" when it throws none.
template <class Load>
std::string error_message(Load load) {
  try {
    load();
  } catch (const halo::Error& error) {
    return error.what();
  }
  return "";
}

TEST(Qwen3Tokenizer, EncodesEveryReferenceCaseToTheReferenceIds) {
  ASSERT_EQ(reference_cases().size(), 22u);
  for (const Case& c : reference_cases()) {
    EXPECT_EQ(qwen3().encode(c.text), c.ids) << "case " << c.name;
  }
}

TEST(Qwen3Tokenizer, DecodeOfEncodeIsTheNfcOfTheText) {
  for (const Case& c : reference_cases()) {
    EXPECT_EQ(qwen3().decode(qwen3().encode(c.text)), nfc(c.text)) << "case " << c.name;
    EXPECT_EQ(qwen3().decode(c.ids), c.decoded) << "case " << c.name;
  }
  // The nfc case really changes under NFC (decomposed accents), so the check above bites.
  const std::string decomposed = "Cafe\xCC\x81";
  EXPECT_EQ(qwen3().decode(qwen3().encode(decomposed)), "Caf\xC3\xA9");
}

TEST(Qwen3Tokenizer, VocabularyAndSpecialIds) {
  EXPECT_EQ(qwen3().vocab_size(), 151669);
  EXPECT_EQ(qwen3().token_to_id("<|endoftext|>"), 151643);
  EXPECT_EQ(qwen3().token_to_id("<think>"), 151667);
  EXPECT_EQ(qwen3().token_to_id("\xC4\xA0world"), 1879);  // "Ġworld"
  EXPECT_EQ(qwen3().token_to_id("no such token"), std::nullopt);
  // tokenizer_config.json beside tokenizer.json names <|im_end|> as eos_token.
  EXPECT_EQ(qwen3().eos_id(), 151645);
  EXPECT_EQ(halo::load_tokenizer(kQwen3Dir + "/tokenizer.json")->eos_id(), 151645);
}

TEST(Qwen3Tokenizer, AddedTokensAreMatchedWholeBeforePreTokenization) {
  const halo::Tokenizer& tokenizer = qwen3();
  std::vector<int32_t> expected{151644};
  for (int32_t id : tokenizer.encode("user\nhi")) expected.push_back(id);
  expected.push_back(151645);
  EXPECT_EQ(tokenizer.encode("<|im_start|>user\nhi<|im_end|>"), expected);
  EXPECT_EQ(tokenizer.encode("x<tool_call>"), (std::vector<int32_t>{id_of(tokenizer, "x"), 151657}));
  // Almost an added token: ordinary text.
  EXPECT_GT(tokenizer.encode("<|im_start|").size(), 1u);
  EXPECT_EQ(tokenizer.decode({151644, 872}), "<|im_start|>user");
}

TEST(Qwen3Tokenizer, MongolianVowelSeparatorIsNotWhiteSpace) {
  // \s means White_Space to Hugging Face's regex engines, so "\u180e'" is one piece and "t"
  // another; PCRE2's own \s would take U+180E and leave "'t" as a contraction. Ids from
  // Hugging Face tokenizers 0.23.3.
  EXPECT_EQ(qwen3().encode("\xE1\xA0\x8E't"), (std::vector<int32_t>{123970, 236, 6, 83}));
}

TEST(Qwen3Tokenizer, RejectsInvalidUtf8WithTheBytePosition) {
  EXPECT_NE(error_message([] { qwen3().encode("abc\xFF"); }).find("not valid UTF-8 at byte 3"), std::string::npos);
  EXPECT_NE(error_message([] { qwen3().encode("ab\xE4\xBD"); }).find("at byte 2"),
            std::string::npos);  // truncated character
  EXPECT_NE(error_message([] { qwen3().encode("\xED\xA0\x80"); }).find("at byte 0"),
            std::string::npos);  // UTF-16 surrogate
  EXPECT_NE(error_message([] { qwen3().encode("\xC0\xAF"); }).find("at byte 0"),
            std::string::npos);  // overlong form
}

TEST(Qwen3Tokenizer, DecodeChecksIdsAndReplacesBrokenCharacters) {
  EXPECT_THROW(qwen3().decode({-1}), halo::Error);
  EXPECT_THROW(qwen3().decode({qwen3().vocab_size()}), halo::Error);
  // "ä" is the byte-level token of byte 0xE4 alone: the first third of a CJK character.
  EXPECT_EQ(qwen3().decode({id_of(qwen3(), "\xC3\xA4")}), "\xEF\xBF\xBD");
}

TEST(Qwen3Tokenizer, LongRunsEncodeAndRoundTrip) {
  const std::string text = std::string(100000, ' ') + "x" + std::string(100000, 'a') + "\n" + std::string(50000, '\n');
  EXPECT_EQ(qwen3().decode(qwen3().encode(text)), text);
}

TEST(Qwen3Tokenizer, ConcurrentEncodesAgreeWithReference) {
  const std::unique_ptr<halo::Tokenizer> tokenizer = halo::load_tokenizer(kQwen3Dir);
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (const Case& c : reference_cases()) mismatches[t] += tokenizer->encode(c.text) != c.ids;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// Variants of the real tokenizer.json, written to a temporary directory.
class Qwen3Variant : public ::testing::Test {
 protected:
  std::unique_ptr<halo::Tokenizer> load_variant(const json& tokenizer_json) {
    write_text(dir_.file("tokenizer.json"), tokenizer_json.dump());
    return halo::load_tokenizer(dir_.path());
  }
  TempDir dir_;
};

TEST_F(Qwen3Variant, MergesAsStringsOrPairsGiveTheSameIds) {
  json variant = qwen3_json();
  json& merges = variant["model"]["merges"];
  ASSERT_TRUE(merges[0].is_array());  // the real file has pairs
  for (json& merge : merges) merge = merge[0].get<std::string>() + " " + merge[1].get<std::string>();
  const auto tokenizer = load_variant(variant);
  for (const Case& c : reference_cases()) {
    EXPECT_EQ(tokenizer->encode(c.text), c.ids) << "case " << c.name;
  }
}

TEST_F(Qwen3Variant, LongestAddedTokenWins) {
  json variant = qwen3_json();
  variant["added_tokens"].push_back({{"id", 151669}, {"content", "<|im"}, {"special", false}});
  const auto tokenizer = load_variant(variant);
  EXPECT_EQ(tokenizer->vocab_size(), 151670);
  EXPECT_EQ(tokenizer->encode("<|im_start|><|im"), (std::vector<int32_t>{151644, 151669}));
}

TEST_F(Qwen3Variant, BareByteLevelUsesTheGpt2Regex) {
  json variant = qwen3_json();
  variant["pre_tokenizer"] = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", true}};
  const auto tokenizer = load_variant(variant);
  // Qwen3's regex takes "'T" case-insensitively as a contraction; GPT-2's does not.
  const std::string space_don =
      "\xC4\xA0"
      "DON";
  EXPECT_EQ(qwen3().encode(" DON'T"), (std::vector<int32_t>{id_of(qwen3(), space_don), id_of(qwen3(), "'T")}));
  EXPECT_EQ(tokenizer->encode(" DON'T"),
            (std::vector<int32_t>{id_of(qwen3(), space_don), id_of(qwen3(), "'"), id_of(qwen3(), "T")}));
}

TEST_F(Qwen3Variant, EosTokenFromConfigObjectOrFailure) {
  write_text(dir_.file("tokenizer.json"), qwen3_json().dump());
  write_text(dir_.file("tokenizer_config.json"), R"({"eos_token": {"content": "<|endoftext|>"}})");
  EXPECT_EQ(halo::load_tokenizer(dir_.path())->eos_id(), 151643);
  write_text(dir_.file("tokenizer_config.json"), R"({"eos_token": "<|no_such_token|>"})");
  const std::string message = error_message([&] { halo::load_tokenizer(dir_.path()); });
  EXPECT_NE(message.find(dir_.file("tokenizer_config.json")), std::string::npos) << message;
  EXPECT_NE(message.find("<|no_such_token|>"), std::string::npos) << message;
}

TEST(TokenizerLoading, MissingPathNamesIt) {
  const std::string message = error_message([] { halo::load_tokenizer("/no/such/tokenizer/dir"); });
  EXPECT_NE(message.find("/no/such/tokenizer/dir"), std::string::npos) << message;
}

TEST(TokenizerLoading, DirectoryWithoutTokenizerFilesNamesIt) {
  TempDir dir;
  const std::string message = error_message([&] { halo::load_tokenizer(dir.path()); });
  EXPECT_NE(message.find(dir.path()), std::string::npos) << message;
  EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;
}

TEST(TokenizerLoading, BadJsonNamesTheFile) {
  TempDir dir;
  write_text(dir.file("tokenizer.json"), "{\"model\": {\"type\": \"BPE\",");
  const std::string message = error_message([&] { halo::load_tokenizer(dir.path()); });
  EXPECT_NE(message.find(dir.file("tokenizer.json")), std::string::npos) << message;
  EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
}

TEST(TokenizerLoading, UnsupportedModelTypeNamesTheFileAndType) {
  TempDir dir;
  write_text(dir.file("tokenizer.json"), R"({"model": {"type": "WordPiece", "vocab": {}}})");
  const std::string message = error_message([&] { halo::load_tokenizer(dir.file("tokenizer.json")); });
  EXPECT_NE(message.find(dir.file("tokenizer.json")), std::string::npos) << message;
  EXPECT_NE(message.find("WordPiece"), std::string::npos) << message;
}

TEST(TokenizerLoading, UnknownFileTypeAndBrokenModelNameTheFile) {
  TempDir dir;
  write_text(dir.file("vocab.txt"), "hello\n");
  std::string message = error_message([&] { halo::load_tokenizer(dir.file("vocab.txt")); });
  EXPECT_NE(message.find(dir.file("vocab.txt")), std::string::npos) << message;
  write_text(dir.file("tokenizer.model"), "not a protobuf");
  message = error_message([&] { halo::load_tokenizer(dir.path()); });
  EXPECT_NE(message.find(dir.file("tokenizer.model")), std::string::npos) << message;
}

// A toy byte-level BPE (ids 0-255: the bytes, then one id per merge) whose merges join digits,
// so that the pre-tokenizer steps that split digits show in the ids. The expected ids are
// Hugging Face tokenizers' (0.22) for the same tokenizer.json.
class PreTokenizerSteps : public ::testing::Test {
 protected:
  // GPT-2's byte-to-unicode table, as UTF-8.
  static std::string byte_level(int byte) {
    const auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int code_point = byte;
    if (!printable(byte)) {
      code_point = 256;
      for (int b = 0; b < byte; ++b) code_point += printable(b) ? 0 : 1;
    }
    std::string utf8;
    if (code_point < 0x80) {
      utf8 += static_cast<char>(code_point);
    } else {
      utf8 += static_cast<char>(0xC0 | (code_point >> 6));
      utf8 += static_cast<char>(0x80 | (code_point & 0x3F));
    }
    return utf8;
  }

  // `missing_byte` >= 0: that byte has no token.
  std::unique_ptr<halo::Tokenizer> load(const json& pre_tokenizer, int missing_byte = -1) {
    json vocab = json::object();
    for (int byte = 0; byte < 256; ++byte) {
      if (byte != missing_byte) vocab[byte_level(byte)] = byte;
    }
    // "Ġ" is U+0120, "Ù£" / "Ù¤" the bytes of U+0663 / U+0664, "Â½" those of U+00BD.
    const std::vector<std::string> merges = {"1 2",
                                             "12 3",
                                             "4 5",
                                             "\xC4\xA0 1",
                                             "\xC4\xA0"
                                             "1 2",
                                             "h e",
                                             "l l",
                                             "he ll",
                                             "hell o",
                                             "\xC4\xA0 w",
                                             "o r",
                                             "\xC4\xA0w or",
                                             "\xC4\xA0wor l",
                                             "\xC4\xA0worl d",
                                             "\xC4\xA0 \xC4\xA0",
                                             "\xC3\x99 \xC2\xA3",
                                             "\xC3\x99 \xC2\xA4",
                                             "\xC3\x99\xC2\xA3 \xC3\x99\xC2\xA4",
                                             "\xC3\x82 \xC2\xBD",
                                             "\xC4\xA0 \xC3\x82\xC2\xBD"};
    for (size_t i = 0; i < merges.size(); ++i) {
      const size_t space = merges[i].find(' ');
      vocab[merges[i].substr(0, space) + merges[i].substr(space + 1)] = 256 + static_cast<int>(i);
    }
    const json file = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
                       {"pre_tokenizer", pre_tokenizer}};
    write_text(dir_.file("tokenizer.json"), file.dump());
    return halo::load_tokenizer(dir_.file("tokenizer.json"));
  }

  static json byte_level_step(bool use_regex) {
    return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", use_regex}, {"use_regex", use_regex}};
  }
  static json split(const std::string& regex) {
    return {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
  }
  static json digits(bool individual) { return {{"type", "Digits"}, {"individual_digits", individual}}; }
  static json sequence(const std::vector<json>& steps) { return {{"type", "Sequence"}, {"pretokenizers", steps}}; }

  // Each text's ids, in the order of kTexts.
  void expect_ids(const json& pre_tokenizer, const std::vector<std::vector<int32_t>>& expected) {
    const auto tokenizer = load(pre_tokenizer);
    ASSERT_EQ(expected.size(), std::size(kTexts));
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(tokenizer->encode(kTexts[i]), expected[i]) << "text " << i << ": " << kTexts[i];
      EXPECT_EQ(tokenizer->decode(tokenizer->encode(kTexts[i])), kTexts[i]);
    }
  }

  // Arabic-Indic digits (Nd), VULGAR FRACTION ONE HALF (No), ROMAN NUMERAL TWELVE (Nl).
  static constexpr const char* kTexts[] = {"hello world 12345", " 123 1245 12",
                                           "x12y45 \xD9\xA3\xD9\xA4\xD9\xA5 \xC2\xBD \xE2\x85\xAB 2",
                                           "  world  \n 1234567"};
  TempDir dir_;
};

TEST_F(PreTokenizerSteps, ByteLevelAloneKeepsDigitRunsTogether) {
  expect_ids(byte_level_step(true), {{264, 269, 32, 257, 258},
                                     {32, 257, 32, 256, 258, 32, 256},
                                     {120, 256, 121, 258, 32, 273, 217, 165, 275, 32, 226, 133, 171, 32, 50},
                                     {32, 269, 270, 10, 32, 257, 258, 54, 55}});
}

TEST_F(PreTokenizerSteps, IndividualDigitsThenByteLevelAsSmolLM2) {
  expect_ids(sequence({digits(true), byte_level_step(true)}),
             {{264, 269, 32, 49, 50, 51, 52, 53},
              {32, 49, 50, 51, 32, 49, 50, 52, 53, 32, 49, 50},
              {120, 49, 50, 121, 52, 53, 32, 271, 272, 217, 165, 32, 274, 32, 226, 133, 171, 32, 50},
              {32, 269, 270, 10, 32, 49, 50, 51, 52, 53, 54, 55}});
}

TEST_F(PreTokenizerSteps, DigitRunsThenByteLevel) {
  expect_ids(sequence({digits(false), byte_level_step(true)}),
             {{264, 269, 32, 257, 258},
              {32, 257, 32, 256, 258, 32, 256},
              {120, 256, 121, 258, 32, 273, 217, 165, 32, 274, 32, 226, 133, 171, 32, 50},
              {32, 269, 270, 10, 32, 257, 258, 54, 55}});
}

TEST_F(PreTokenizerSteps, SeveralSplitsApplyInOrder) {
  expect_ids(sequence({split(R"(\p{N}+)"), split("[0-9][0-9][0-9]"), byte_level_step(false)}),
             {{264, 269, 32, 257, 258},
              {32, 257, 32, 256, 52, 53, 32, 256},
              {120, 256, 121, 258, 32, 273, 217, 165, 32, 274, 32, 226, 133, 171, 32, 50},
              {32, 269, 270, 10, 32, 257, 258, 54, 55}});
}

TEST_F(PreTokenizerSteps, SplitThenDigitsThenByteLevelWithoutRegex) {
  expect_ids(sequence({split(R"([^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
                       digits(true), byte_level_step(false)}),
             {{264, 269, 32, 49, 50, 51, 52, 53},
              {32, 49, 50, 51, 32, 49, 50, 52, 53, 32, 49, 50},
              {120, 49, 50, 121, 52, 53, 32, 271, 272, 217, 165, 32, 274, 32, 226, 133, 171, 32, 50},
              {32, 269, 270, 10, 32, 49, 50, 51, 52, 53, 54, 55}});
}

TEST_F(PreTokenizerSteps, SplitThenByteLevelRegexCutsEachPieceAgain) {
  expect_ids(sequence({split(R"(\p{N}{1,2})"), byte_level_step(true)}),
             {{264, 269, 32, 256, 51, 52, 53},
              {32, 256, 51, 32, 256, 258, 32, 256},
              {120, 256, 121, 258, 32, 273, 217, 165, 32, 274, 32, 226, 133, 171, 32, 50},
              {32, 269, 270, 10, 32, 256, 51, 52, 53, 54, 55}});
}

TEST_F(PreTokenizerSteps, ByteLevelMustComeLastAndBeThere) {
  const auto message_of = [&](const json& pre_tokenizer) { return error_message([&] { load(pre_tokenizer); }); };
  for (const json& bad : {sequence({byte_level_step(true), digits(true)}), sequence({digits(true)}),
                          byte_level_step(false), json{{"type", "Whitespace"}}}) {
    const std::string message = message_of(bad);
    EXPECT_NE(message.find(dir_.file("tokenizer.json")), std::string::npos) << bad.dump();
    EXPECT_NE(message.find("pre_tokenizer is not supported"), std::string::npos) << message;
  }
}

TEST_F(PreTokenizerSteps, ByteWithoutATokenIsDropped) {
  // SmolLM2's vocabulary lacks a few control characters; tokenizers drops them (no unk_token).
  const auto tokenizer = load(byte_level_step(true), 0x01);
  EXPECT_EQ(tokenizer->encode("x\x01y"), (std::vector<int32_t>{120, 121}));
  EXPECT_EQ(tokenizer->encode("\x01\x01"), (std::vector<int32_t>{}));
  EXPECT_EQ(tokenizer->encode("4\x01"
                              "5 12"),
            (std::vector<int32_t>{52, 53, 32, 256}));
}

// A tiny BPE SentencePiece model trained on the first lines of WikiText-2's validation split.
class SentencePieceTokenizer : public ::testing::Test {
 protected:
  static constexpr int kVocabSize = 400;

  void SetUp() override {
    std::ifstream in(halo::test::shared_dir() + "/data/wikitext-2/valid.txt");
    std::string line, corpus;
    while (std::getline(in, line) && corpus.size() < 8000) {
      if (line.find_first_not_of(' ') == std::string::npos) continue;
      if (lines_.size() < 5) lines_.push_back(line);
      corpus += line + "\n";
    }
    ASSERT_EQ(lines_.size(), 5u);
    write_text(dir_.file("corpus.txt"), corpus);
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + dir_.file("corpus.txt") + " --model_prefix=" + dir_.file("tokenizer") +
        " --vocab_size=" + std::to_string(kVocabSize) +
        " --model_type=bpe --character_coverage=1.0 --byte_fallback=true"
        " --normalization_rule_name=identity --remove_extra_whitespaces=false"
        " --minloglevel=2");
    ASSERT_TRUE(status.ok()) << status.ToString();
  }

  TempDir dir_;
  std::vector<std::string> lines_;
};

TEST_F(SentencePieceTokenizer, RoundTripsVocabAndEos) {
  const auto tokenizer = halo::load_tokenizer(dir_.path());  // finds tokenizer.model
  EXPECT_EQ(tokenizer->vocab_size(), kVocabSize);
  EXPECT_EQ(tokenizer->eos_id(), 2);  // SentencePiece's default: unk 0, bos 1, eos 2
  EXPECT_EQ(tokenizer->token_to_id("</s>"), 2);
  EXPECT_EQ(tokenizer->token_to_id("no such piece"), std::nullopt);
  for (const std::string& line : lines_) {
    const std::vector<int32_t> ids = tokenizer->encode(line);
    EXPECT_LT(ids.size(), line.size()) << line;  // the model merged something
    EXPECT_EQ(tokenizer->decode(ids), line);
  }
  EXPECT_THROW(tokenizer->decode({kVocabSize}), halo::Error);
  EXPECT_THROW(tokenizer->encode("\xFF"), halo::Error);
}

}  // namespace
