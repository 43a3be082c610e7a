// BPE trainer tests: merges worked out by hand on a tiny corpus (and that pieces are never
// merged across), the incremental algorithm against recounting every pair at each step, a
// WikiText-2 tokenizer loaded back by halo's tokenizer (round trip on held-out text, special
// tokens, compression, the trainer's token count equal to encoding its own training text),
// chunk cuts that leave the pieces alone, byte-identical output whatever the threads and chunk
// size, JSON Lines input, the byte budget, and errors. The CLI is run once.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "halo/bpe_trainer.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/tokenizer.h"
#include "test_support.h"

namespace {

using nlohmann::json;
using halo::test::write_text;

const std::string kWikitext = halo::test::shared_dir() + "/data/wikitext-2";

using halo::test::nfc;

// The merges as pairs of token strings.
std::vector<std::pair<std::string, std::string>> merge_strings(const halo::BpeTrainingResult& trained) {
  std::vector<std::pair<std::string, std::string>> merges;
  for (const auto& [left, right] : trained.merges) merges.emplace_back(trained.tokens[left], trained.tokens[right]);
  return merges;
}

halo::BpeTrainerOptions options_with(int32_t vocab_size, int64_t min_frequency,
                                     std::vector<std::string> special_tokens) {
  halo::BpeTrainerOptions options;
  options.vocab_size = vocab_size;
  options.min_frequency = min_frequency;
  options.special_tokens = std::move(special_tokens);
  return options;
}

// "aaabdaaabac" is one piece. Pairs: aa 4, ab 2, bd da ba ac 1. Merge aa: [aa a b d aa a b a c],
// aa+a and a+b 2 each, a tie that the smaller left token ("a" < "aa") wins. Merge ab:
// [aa ab d aa ab a c], aa+ab 2. Merge aaab: [aaab d aaab a c], every pair 1: a+c has the
// smallest left token.
TEST(BpeTrainer, TinyCorpusMergesAsWorkedOutByHand) {
  const std::string dir = halo::test::make_temp_dir();
  write_text(dir + "/tiny.txt", "aaabdaaabac");
  const auto trained = halo::train_bpe({dir + "/tiny.txt"}, options_with(256 + 4, 1, {}));
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"a", "a"}, {"a", "b"}, {"aa", "ab"}, {"a", "c"}};
  EXPECT_EQ(merge_strings(trained), expected);
  ASSERT_EQ(trained.tokens.size(), 260u);
  EXPECT_EQ(trained.tokens[256], "aa");
  EXPECT_EQ(trained.tokens[258], "aaab");
  EXPECT_EQ(trained.piece_bytes, 11);
  EXPECT_EQ(trained.piece_tokens, 4);  // aaab d aaab ac

  // With min_frequency 2 training stops once every pair is seen once.
  const auto frequent = halo::train_bpe({dir + "/tiny.txt"}, options_with(256 + 4, 2, {}));
  const std::vector<std::pair<std::string, std::string>> first_three(expected.begin(), expected.begin() + 3);
  EXPECT_EQ(merge_strings(frequent), first_three);

  // Written out: bytes first (" " is "Ġ", byte 0 is U+0100), merges as pairs in order.
  halo::write_tokenizer_json(dir + "/out", trained);
  const json tokenizer = json::parse(halo::read_file(dir + "/out/tokenizer.json"));
  EXPECT_EQ(tokenizer["model"]["vocab"]["a"], 97);
  EXPECT_EQ(tokenizer["model"]["vocab"]["\xC4\xA0"], 32);
  EXPECT_EQ(tokenizer["model"]["vocab"]["\xC4\x80"], 0);
  EXPECT_EQ(tokenizer["model"]["vocab"]["aaab"], 258);
  EXPECT_EQ(tokenizer["model"]["merges"], json::parse(R"([["a","a"],["a","b"],["aa","ab"],["a","c"]])"));
  EXPECT_TRUE(tokenizer["added_tokens"].empty());
}

// Pieces are never merged across: " ab" ends up one token, "b " never forms.
TEST(BpeTrainer, MergesStayInsidePieces) {
  const std::string dir = halo::test::make_temp_dir();
  write_text(dir + "/text.txt", "ab ab ab ab");
  const auto trained = halo::train_bpe({dir + "/text.txt"}, options_with(256 + 3, 1, {}));
  const std::vector<std::pair<std::string, std::string>> expected = {{"a", "b"}, {" ", "ab"}};
  EXPECT_EQ(merge_strings(trained), expected);  // then no pair is left
  EXPECT_EQ(trained.tokens.size(), 258u);
  EXPECT_EQ(trained.piece_tokens, 4);
}

// The incremental pair counts against training the slow way, recounting every pair before each
// merge, on random words over {a, b, c} (so runs like aaaa and abab, where occurrences of a pair
// overlap, are common). Each line is one piece.
TEST(BpeTrainer, MergesMatchRecountingEveryStep) {
  std::mt19937 random(7);
  std::map<std::string, int64_t> words;
  std::string text;
  for (int i = 0; i < 3000; ++i) {
    std::string word(1 + random() % 10, 'a');
    for (char& c : word) c = static_cast<char>('a' + random() % 3);
    text += word + "\n";
    ++words[word];
  }
  const std::string dir = halo::test::make_temp_dir();
  write_text(dir + "/words.txt", text);
  const auto trained = halo::train_bpe({dir + "/words.txt"}, options_with(256 + 200, 1, {}));

  // Words as lists of token strings; the most frequent pair first, ties to the smallest strings.
  std::vector<std::pair<std::vector<std::string>, int64_t>> split;
  for (const auto& [word, count] : words) {
    std::vector<std::string> symbols;
    for (const char c : word) symbols.emplace_back(1, c);
    split.emplace_back(symbols, count);
  }
  std::vector<std::pair<std::string, std::string>> expected;
  std::set<std::string> vocab;
  while (vocab.size() < 200) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;
    for (const auto& [symbols, count] : split) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += count;
    }
    if (pairs.empty()) break;
    auto best = pairs.begin();
    for (auto it = pairs.begin(); it != pairs.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    const auto [left, right] = best->first;
    expected.emplace_back(left, right);
    vocab.insert(left + right);
    for (auto& [symbols, count] : split) {
      std::vector<std::string> merged;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          merged.push_back(left + right);
          ++i;
        } else {
          merged.push_back(symbols[i]);
        }
      }
      symbols = std::move(merged);
    }
  }
  ASSERT_EQ(expected.size(), 200u);
  EXPECT_EQ(merge_strings(trained), expected);
}

// One tokenizer trained on WikiText-2's validation split (1.1 MB, in chunks of about 4 KiB, so
// that the text is cut at a few hundred points), shared by the tests below.
struct WikitextTokenizer {
  std::string dir;
  halo::BpeTrainingResult trained;
  std::unique_ptr<halo::Tokenizer> tokenizer;
};

const WikitextTokenizer& wikitext_tokenizer() {
  static const WikitextTokenizer trained = [] {
    WikitextTokenizer result;
    result.dir = halo::test::make_temp_dir();
    halo::BpeTrainerOptions options;
    options.vocab_size = 1000;
    options.threads = 2;
    options.chunk_bytes = 4096;
    result.trained = halo::train_bpe({kWikitext + "/valid.txt"}, options);
    halo::write_tokenizer_json(result.dir, result.trained);
    result.tokenizer = halo::load_tokenizer(result.dir);
    return result;
  }();
  return trained;
}

TEST(BpeTrainer, WikitextTokenizerLoadsAndRoundTripsHeldOutText) {
  const auto& wiki = wikitext_tokenizer();
  const halo::Tokenizer& tokenizer = *wiki.tokenizer;
  EXPECT_EQ(tokenizer.vocab_size(), 1000);
  EXPECT_EQ(wiki.trained.tokens.size(), 997u);
  ASSERT_TRUE(tokenizer.eos_id().has_value());
  EXPECT_EQ(*tokenizer.eos_id(), 997);
  EXPECT_EQ(tokenizer.token_to_id("<|endoftext|>"), 997);
  EXPECT_EQ(tokenizer.token_to_id("<|im_end|>"), 999);

  const std::string held_out = halo::read_file(kWikitext + "/test.txt").substr(0, 300000);
  const std::vector<std::string> texts = {
      held_out,
      "Caf\xC3\xA9 na\xC3\xAFve \xE2\x80\x94 \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x98\x80 e\xCC\x81 \t\r\n end",
      "don't STOP 12345 x\n\n\n  y"};
  for (const std::string& text : texts) {
    EXPECT_EQ(tokenizer.decode(tokenizer.encode(text)), nfc(text)) << text.substr(0, 80);
  }
  const size_t tokens = tokenizer.encode(held_out).size();
  EXPECT_LT(static_cast<double>(tokens), held_out.size() / 2.5) << tokens << " tokens";
}

TEST(BpeTrainer, SpecialTokensAreMatchedWhole) {
  const halo::Tokenizer& tokenizer = *wikitext_tokenizer().tokenizer;
  const std::vector<int32_t> the = tokenizer.encode("the");
  const std::vector<int32_t> cat = tokenizer.encode(" cat");
  std::vector<int32_t> expected = the;
  expected.push_back(997);
  expected.push_back(998);
  expected.insert(expected.end(), cat.begin(), cat.end());
  EXPECT_EQ(tokenizer.encode("the<|endoftext|><|im_start|> cat"), expected);
  EXPECT_EQ(tokenizer.decode({997}), "<|endoftext|>");
}

// Chunks pre-tokenize as the whole file would, and the merges applied word by word in training
// give what the tokenizer's encoding gives.
TEST(BpeTrainer, TokenCountMatchesEncodingTheTrainingText) {
  const auto& wiki = wikitext_tokenizer();
  const std::string text = halo::read_file(kWikitext + "/valid.txt");
  EXPECT_EQ(wiki.trained.text_bytes, static_cast<int64_t>(text.size()));
  EXPECT_EQ(wiki.trained.piece_bytes, static_cast<int64_t>(nfc(text).size()));
  EXPECT_EQ(wiki.trained.piece_tokens, static_cast<int64_t>(wiki.tokenizer->encode(text).size()));
}

// Text files are cut into chunks only where the pieces stay the same: training on text full of
// whitespace runs with newlines gives the same result whatever the chunk size.
TEST(BpeTrainer, ChunkCutsDoNotChangeThePieces) {
  const std::string dir = halo::test::make_temp_dir();
  std::string text;
  for (int i = 0; i < 40; ++i) {
    text += "Line " + std::to_string(i) + " .\n \n\tTabbed\r\nnext  \n\n\n  two spaces\n= head =\n \n";
    text += "caf\xC3\xA9 e\xCC\x81\n\xC2\xA0nbsp\n \t \nx<|endoftext|>\ny!\n";
  }
  write_text(dir + "/text.txt", text);
  std::optional<halo::BpeTrainingResult> whole;
  for (const int64_t chunk_bytes : {int64_t{1} << 20, int64_t{1}, int64_t{2}, int64_t{3}, int64_t{5}, int64_t{8}, int64_t{13}}) {
    halo::BpeTrainerOptions options = options_with(400, 1, {"<|endoftext|>"});
    options.chunk_bytes = chunk_bytes;
    options.threads = 2;
    const auto trained = halo::train_bpe({dir + "/text.txt"}, options);
    if (!whole) {
      whole = trained;
      ASSERT_GT(whole->merges.size(), 30u);
      continue;
    }
    EXPECT_EQ(trained.pieces, whole->pieces) << "chunks of " << chunk_bytes << " bytes";
    EXPECT_EQ(trained.distinct_pieces, whole->distinct_pieces) << "chunks of " << chunk_bytes << " bytes";
    EXPECT_EQ(merge_strings(trained), merge_strings(*whole)) << "chunks of " << chunk_bytes << " bytes";
  }
}

TEST(BpeTrainer, OutputIsByteIdenticalWhateverTheThreadsAndChunks) {
  const std::string dir = halo::test::make_temp_dir();
  std::string first;
  for (const auto& [threads, chunk_bytes] : std::vector<std::pair<int, int64_t>>{{1, 1 << 20}, {3, 2000}}) {
    halo::BpeTrainerOptions options;
    options.vocab_size = 600;
    options.threads = threads;
    options.chunk_bytes = chunk_bytes;
    const std::string out = dir + "/threads" + std::to_string(threads);
    halo::write_tokenizer_json(out, halo::train_bpe({kWikitext + "/test.txt"}, options));
    const std::string written = halo::read_file(out + "/tokenizer.json");
    if (first.empty()) {
      first = written;
    } else {
      EXPECT_TRUE(written == first) << "tokenizer.json differs with 3 threads and small chunks";
    }
  }
  EXPECT_FALSE(first.empty());
}

TEST(BpeTrainer, ReadsJsonLinesAndStopsAtTheByteBudget) {
  const std::string dir = halo::test::make_temp_dir();
  write_text(dir + "/docs.jsonl", "{\"text\": \"aaabdaaabac\"}\n\n{\"text\": \"\\u00e9t\\u00e9\", \"id\": 2}\n");
  const auto trained = halo::train_bpe({dir + "/docs.jsonl"}, options_with(256 + 4, 1, {}));
  EXPECT_EQ(trained.text_bytes, 11 + 5);
  // Pieces "aaabdaaabac" and "\u00e9t\u00e9" (c3 a9 74 c3 a9). After aa, the pairs seen twice
  // are a+b and c3+a9, then aa+ab and c3+a9: bytes compare unsigned, so "a" and "aa" win.
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"a", "a"}, {"a", "b"}, {"aa", "ab"}, {"\xC3", "\xA9"}};
  EXPECT_EQ(merge_strings(trained), expected);

  halo::BpeTrainerOptions budget;
  budget.vocab_size = 300;
  budget.max_bytes = 1000;
  const auto limited = halo::train_bpe({kWikitext + "/valid.txt", kWikitext + "/test.txt"}, budget);
  EXPECT_EQ(limited.text_bytes, 1000);
  EXPECT_EQ(limited.files, 1);

  write_text(dir + "/bad.jsonl", "{\"text\": \"fine\"}\n{\"title\": \"no text\"}\n");
  try {
    halo::train_bpe({dir + "/bad.jsonl"}, options_with(300, 1, {}));
    FAIL() << "a line without \"text\" was accepted";
  } catch (const halo::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(BpeTrainer, RejectsBadOptionsAndInputs) {
  const std::string dir = halo::test::make_temp_dir();
  write_text(dir + "/text.txt", "some text");
  const auto error_of = [&](const std::vector<std::string>& inputs, const halo::BpeTrainerOptions& options) {
    try {
      halo::train_bpe(inputs, options);
    } catch (const halo::Error& e) {
      return std::make_pair(e.exit_code(), std::string(e.what()));
    }
    return std::make_pair(0, std::string("no error"));
  };
  const std::vector<std::string> text = {dir + "/text.txt"};

  auto [code, message] = error_of(text, options_with(258, 1, {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}));
  EXPECT_EQ(code, halo::kExitUsage) << message;
  EXPECT_NE(message.find("259"), std::string::npos) << message;
  std::tie(code, message) = error_of(text, options_with(259, 1, {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}));
  EXPECT_EQ(code, 0) << message;

  const std::string missing = dir + "/no_such_file.txt";
  std::tie(code, message) = error_of({missing}, options_with(300, 1, {}));
  EXPECT_EQ(code, halo::kExitBadInput) << message;
  EXPECT_NE(message.find(missing), std::string::npos) << message;

  for (const auto& special : std::vector<std::vector<std::string>>{{"<a>", "<a>"}, {"two words"}, {"x"}}) {
    std::tie(code, message) = error_of(text, options_with(300, 1, special));
    EXPECT_EQ(code, halo::kExitUsage) << special.front() << ": " << message;
  }

  write_text(dir + "/latin1.txt", "caf\xE9\n");
  std::tie(code, message) = error_of({dir + "/latin1.txt"}, options_with(300, 1, {}));
  EXPECT_EQ(code, halo::kExitBadInput) << message;
  EXPECT_NE(message.find("latin1.txt: not valid UTF-8 at byte 3"), std::string::npos) << message;
}

TEST(BpeTrainer, CommandLine) {
  const std::string dir = halo::test::make_temp_dir();
  write_text(dir + "/text.txt", halo::read_file(kWikitext + "/test.txt").substr(0, 20000));
  const auto trained = halo::test::run_halo("tokenizer train --input '" + dir + "/text.txt' --vocab-size 300 --out '" +
                                            dir + "/tok' --special '<|endoftext|>' --quiet");
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.out.find("vocab 300 (256 bytes + 43 merged + 1 special)"), std::string::npos) << trained.out;
  EXPECT_EQ(halo::load_tokenizer(dir + "/tok")->eos_id(), 299);

  const auto too_small = halo::test::run_halo("tokenizer train '" + dir + "/text.txt' --vocab-size 100 --out '" + dir + "/x'");
  EXPECT_EQ(too_small.exit_code, halo::kExitUsage) << too_small.err;
  EXPECT_EQ(halo::test::run_halo("tokenizer frobnicate").exit_code, halo::kExitUsage);
}

}  // namespace
