// BPE trainer tests: merges worked out by hand on a tiny corpus (and that pieces are never
// merged across), the incremental algorithm against recounting every pair at each step, a
// WikiText-2 tokenizer loaded back by halo's tokenizer (round trip on held-out text, special
// tokens, compression, the trainer's token count equal to encoding its own training text),
// chunk cuts that leave the pieces alone, byte-identical output whatever the threads and chunk
// size, JSON Lines input, the byte budget, documents read as halo data prepare reads them (a
// JSONL field of choice, blank-line blocks: the same training as a file per document, and no
// piece across two documents), and errors. The CLI is run with each input option.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "halo/bpe_trainer.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/tokenizer.h"
#include "test_support.h"

namespace {

using halo::test::write_text;
using nlohmann::json;

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
  const std::vector<std::pair<std::string, std::string>> expected = {{"a", "a"}, {"a", "b"}, {"aa", "ab"}, {"a", "c"}};
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
      held_out, "Caf\xC3\xA9 na\xC3\xAFve \xE2\x80\x94 \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x98\x80 e\xCC\x81 \t\r\n end",
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
  for (const int64_t chunk_bytes :
       {int64_t{1} << 20, int64_t{1}, int64_t{2}, int64_t{3}, int64_t{5}, int64_t{8}, int64_t{13}}) {
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

// Documents made of WikiText-2 lines (one to three non-blank lines each): read as JSONL with
// the text in another field, as the blocks of a text file split at blank lines (blank lines
// holding whitespace too), and as a file per document, the same pieces are counted and the same
// merges learnt, whatever the threads and chunk size.
TEST(BpeTrainer, JsonlFieldAndBlankLineBlocksTrainAsAFilePerDocument) {
  const std::string dir = halo::test::make_temp_dir();
  std::vector<std::string> lines;
  {
    const std::string text = halo::read_file(kWikitext + "/test.txt").substr(0, 120000);
    size_t begin = 0;
    for (size_t end; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1) {
      // Trimmed, so that pieces would join across documents ("=" + "In" is the piece "=In").
      const size_t first = text.find_first_not_of(" \t\r", begin);
      if (first >= end) continue;
      const size_t last = text.find_last_not_of(" \t\r", end - 1);
      lines.push_back(text.substr(first, last + 1 - first));
    }
  }
  std::vector<std::string> documents;
  for (size_t i = 0; i < lines.size();) {
    std::string document = lines[i++];
    for (size_t more = documents.size() % 3; more > 0 && i < lines.size(); --more) document += "\n" + lines[i++];
    documents.push_back(document);
  }
  ASSERT_GT(documents.size(), 100u);

  halo::create_directories(dir + "/files");
  std::string blocks, jsonl;
  const std::vector<std::string> separators = {"\n", " \n\n", "\t\n \n\n"};
  for (size_t i = 0; i < documents.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/files/%05zu.txt", i);
    write_text(dir + name, documents[i]);
    blocks += documents[i] + "\n" + separators[i % separators.size()];
    jsonl += json({{"text", "decoy"}, {"body", documents[i]}}).dump() + (i % 4 == 0 ? "\n\n" : "\n");
  }
  write_text(dir + "/blocks.txt", blocks);
  write_text(dir + "/docs.jsonl", jsonl);
  write_text(dir + "/docs.data", jsonl);  // JSONL by --format, not by its name

  const auto train = [&](const std::string& input, const halo::DocumentOptions& documents, int threads,
                         int64_t chunk_bytes) {
    halo::BpeTrainerOptions options = options_with(500, 2, {"<|endoftext|>"});
    options.documents = documents;
    options.threads = threads;
    options.chunk_bytes = chunk_bytes;
    return halo::train_bpe({input}, options);
  };
  const auto reference = train(dir + "/files", {}, 1, 1);  // every document in chunks of its own
  ASSERT_GT(reference.merges.size(), 200u);
  int64_t document_bytes = 0;
  for (const auto& document : documents) document_bytes += static_cast<int64_t>(document.size());
  EXPECT_EQ(reference.text_bytes, document_bytes);
  EXPECT_EQ(reference.files, static_cast<int64_t>(documents.size()));

  halo::DocumentOptions blank_line;
  blank_line.split = halo::TextSplit::blank_line;
  halo::DocumentOptions body;
  body.jsonl_field = "body";
  halo::DocumentOptions body_by_format = body;
  body_by_format.format = halo::InputFormat::jsonl;
  const std::vector<std::pair<std::string, halo::DocumentOptions>> readings = {
      {dir + "/blocks.txt", blank_line}, {dir + "/docs.jsonl", body}, {dir + "/docs.data", body_by_format}};
  for (const auto& [input, documents_options] : readings) {
    for (const auto& [threads, chunk_bytes] : std::vector<std::pair<int, int64_t>>{{1, 1 << 20}, {3, 700}, {2, 1}}) {
      const auto trained = train(input, documents_options, threads, chunk_bytes);
      const std::string what = halo::base_name(input) + " with " + std::to_string(threads) + " threads, chunks of " +
                               std::to_string(chunk_bytes);
      EXPECT_EQ(trained.files, 1) << what;
      EXPECT_EQ(trained.text_bytes, reference.text_bytes) << what;
      EXPECT_EQ(trained.pieces, reference.pieces) << what;
      EXPECT_EQ(trained.distinct_pieces, reference.distinct_pieces) << what;
      EXPECT_EQ(merge_strings(trained), merge_strings(reference)) << what;
    }
  }

  // The default field of this JSONL is the decoy; a missing field fails naming file:line.
  const auto decoys = train(dir + "/docs.jsonl", {}, 1, 1 << 20);
  EXPECT_EQ(decoys.text_bytes, 5 * static_cast<int64_t>(documents.size()));
  halo::DocumentOptions title;
  title.jsonl_field = "title";
  const std::string missing = halo::test::error_of([&] { train(dir + "/docs.jsonl", title, 1, 1 << 20); });
  EXPECT_NE(missing.find("docs.jsonl:1: no field \"title\""), std::string::npos) << missing;
}

// No piece spans two documents, however many share a chunk: "a" and "b" alternate, one per
// document, and no pair is ever counted (together they would be the piece "abab...").
TEST(BpeTrainer, DocumentsNeverShareAPiece) {
  const std::string dir = halo::test::make_temp_dir();
  std::string blocks, jsonl, joined;
  for (int i = 0; i < 50; ++i) {
    blocks += "a\n\nb\n \n";
    jsonl += "{\"text\": \"a\"}\n{\"text\": \"b\"}\n";
    joined += "ab";
  }
  write_text(dir + "/blocks.txt", blocks);
  write_text(dir + "/docs.jsonl", jsonl);
  write_text(dir + "/joined.txt", joined);
  halo::BpeTrainerOptions options = options_with(300, 1, {});
  options.threads = 2;
  const auto together = halo::train_bpe({dir + "/joined.txt"}, options);
  EXPECT_FALSE(together.merges.empty());
  const auto jsonl_documents = halo::train_bpe({dir + "/docs.jsonl"}, options);
  options.documents.split = halo::TextSplit::blank_line;
  const auto block_documents = halo::train_bpe({dir + "/blocks.txt"}, options);
  for (const auto* trained : {&jsonl_documents, &block_documents}) {
    EXPECT_TRUE(trained->merges.empty()) << merge_strings(*trained).front().first;
    EXPECT_EQ(trained->pieces, 100);
    EXPECT_EQ(trained->distinct_pieces, 2);
    EXPECT_EQ(trained->text_bytes, 100);
  }
}

// The byte budget counts document text and ends inside a block at a character boundary; a
// block that is not UTF-8 fails naming its file and line.
TEST(BpeTrainer, BlankLineBlocksTakeTheByteBudgetAndNameTheirLine) {
  const std::string dir = halo::test::make_temp_dir();
  write_text(dir + "/blocks.txt", "\n\n ab\n\n\nc\xC3\xA9x\n\nlater\n");
  write_text(dir + "/next.txt", "never read");
  halo::BpeTrainerOptions options = options_with(300, 1, {});
  options.documents.split = halo::TextSplit::blank_line;
  options.max_bytes = 5;  // " ab" (3 bytes), then "c" and half of U+00E9
  const auto trained = halo::train_bpe({dir + "/blocks.txt", dir + "/next.txt"}, options);
  EXPECT_EQ(trained.text_bytes, 4);
  EXPECT_EQ(trained.files, 1);
  EXPECT_EQ(trained.pieces, 2);  // " ab", "c"

  write_text(dir + "/latin1.txt", "fine\n\nstill fine\ncaf\xE9\n");
  options.max_bytes = 0;
  const std::string message = halo::test::error_of([&] { halo::train_bpe({dir + "/latin1.txt"}, options); });
  EXPECT_NE(message.find("latin1.txt:3: not valid UTF-8 at byte 14 of the document"), std::string::npos) << message;
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

  // --format, --split and --jsonl-field read documents as train_bpe's DocumentOptions do.
  std::string blocks, jsonl;
  for (int i = 0; i < 60; ++i) {
    const std::string document = "doc " + std::to_string(i % 7) + " the cat\nsat " + std::to_string(i % 5);
    blocks += document + "\n \n";
    jsonl += json({{"body", document}}).dump() + "\n";
  }
  write_text(dir + "/blocks.txt", blocks);
  write_text(dir + "/docs.data", jsonl);
  halo::BpeTrainerOptions library = options_with(280, 2, {"<|endoftext|>"});
  library.documents.split = halo::TextSplit::blank_line;
  halo::write_tokenizer_json(dir + "/blocks-library", halo::train_bpe({dir + "/blocks.txt"}, library));
  library.documents = {halo::InputFormat::jsonl, halo::TextSplit::file, "body"};
  halo::write_tokenizer_json(dir + "/body-library", halo::train_bpe({dir + "/docs.data"}, library));
  const std::string common = " --vocab-size 280 --special '<|endoftext|>' --quiet";
  const auto blocks_cli = halo::test::run_halo("tokenizer train '" + dir + "/blocks.txt' --split blank-line --out '" +
                                               dir + "/blocks-cli'" + common);
  ASSERT_EQ(blocks_cli.exit_code, 0) << blocks_cli.err;
  EXPECT_EQ(halo::read_file(dir + "/blocks-cli/tokenizer.json"),
            halo::read_file(dir + "/blocks-library/tokenizer.json"));
  const auto body_cli =
      halo::test::run_halo("tokenizer train '" + dir + "/docs.data' --format jsonl --jsonl-field body --out '" + dir +
                           "/body-cli'" + common);
  ASSERT_EQ(body_cli.exit_code, 0) << body_cli.err;
  EXPECT_EQ(halo::read_file(dir + "/body-cli/tokenizer.json"), halo::read_file(dir + "/body-library/tokenizer.json"));
  const auto bad_split = halo::test::run_halo("tokenizer train '" + dir +
                                              "/blocks.txt' --split paragraph --vocab-size 300 --out '" + dir + "/x'");
  EXPECT_EQ(bad_split.exit_code, halo::kExitUsage) << bad_split.err;
  EXPECT_NE(bad_split.err.find("--split must be file or blank-line"), std::string::npos) << bad_split.err;

  const auto too_small =
      halo::test::run_halo("tokenizer train '" + dir + "/text.txt' --vocab-size 100 --out '" + dir + "/x'");
  EXPECT_EQ(too_small.exit_code, halo::kExitUsage) << too_small.err;
  EXPECT_EQ(halo::test::run_halo("tokenizer frobnicate").exit_code, halo::kExitUsage);
}

}  // namespace
