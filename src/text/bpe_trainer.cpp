// train_bpe (see halo/bpe_trainer.h) in three steps.
//
// 1. Reading, on the calling thread: the documents of the files in order (DocumentReader), up
//    to max_bytes of text, handed out in chunks of about chunk_bytes (1 MiB): short documents
//    several to a chunk, a long one (a whole text file) cut into parts. A document is cut only
//    right after a "\n" that spaces or tabs and then a visible ASCII character follow. Qwen3's
//    regex takes a newline into a piece only up to the last newline of a whitespace run, and
//    NFC composes nothing with a newline, so the parts pre-tokenize exactly as the whole
//    document would (special tokens hold no whitespace, so none is cut either). Documents and
//    parts are pre-tokenized separately: no piece spans two documents.
// 2. Counting, on `threads` workers: each takes chunks, cuts the special tokens out, normalizes
//    and splits the rest as the tokenizer does (pre_tokenizer.h), and counts every distinct
//    piece in a hash map of its own. The maps are summed and the pieces sorted by their bytes,
//    so nothing after this depends on the number of threads.
// 3. Merging: each distinct piece is a word (its token ids, at first its bytes) with a count.
//    The count of every adjacent pair is kept, with the words it occurs in, and a max-heap of
//    (count, pair) picks the next merge. A merge rewrites only the words that hold the pair, in
//    place, and updates the counts of the pairs it breaks and makes. Heap entries are never
//    searched for: a pair whose count grows is pushed again, and a popped entry whose count is
//    out of date is pushed back with the current count (lazy invalidation).
#include "halo/bpe_trainer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <queue>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "halo/document_reader.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/logging.h"
#include "halo/progress.h"
#include "text/pre_tokenizer.h"
#include "text/tokenizer_backends.h"

namespace halo {
namespace {

// ---------------------------------------------------------------------------------------------
// 1. Reading

// Text to count: documents, or parts of a long document cut at safe points, each pre-tokenized
// separately.
struct TextChunk {
  std::string text;
  std::vector<size_t> document_ends;  // where each document (or part) ends in `text`
};

bool is_utf8_continuation(char byte) {
  return (static_cast<unsigned char>(byte) & 0xC0) == 0x80;
}

// The longest prefix of `text` no longer than `limit` bytes that does not end inside a
// UTF-8 sequence.
size_t utf8_prefix_length(std::string_view text, size_t limit) {
  if (limit >= text.size()) return text.size();
  size_t end = limit;
  while (end > 0 && is_utf8_continuation(text[end])) --end;
  return end;
}

void check_document_utf8(const std::string& path, const Document& doc, std::string_view text) {
  const size_t bad = invalid_utf8_offset(text);
  if (bad == std::string_view::npos) return;
  if (doc.line == 0) fail(path, ": not valid UTF-8 at byte ", bad, "; convert the file to UTF-8 first");
  fail(path, ":", doc.line, ": not valid UTF-8 at byte ", bad, " of the document; convert the file to UTF-8 first");
}

// The last point at or after byte `from` where `text` may be cut without changing its pieces
// (see the top of the file): just after a "\n" that spaces or tabs, then a visible ASCII
// character follow. 0 when there is none.
size_t last_safe_cut(std::string_view text, size_t from) {
  const size_t lowest = std::max<size_t>(from, 1);
  for (size_t cut = text.size(); cut-- > lowest;) {
    if (text[cut - 1] != '\n') continue;
    size_t next = cut;
    while (next < text.size() && (text[next] == ' ' || text[next] == '\t')) ++next;
    if (next < text.size() && text[next] > ' ' && text[next] < 0x7F) return cut;
  }
  return 0;
}

// Where the part of `text` that starts at `begin` ends: at the last safe cut in the next
// chunk_bytes, else at the last one in the chunk_bytes after those (and so on), else at the
// end of the text.
size_t part_end(std::string_view text, size_t begin, size_t chunk_bytes) {
  size_t scanned = begin;  // cut points before this were searched for already
  for (size_t end = begin + chunk_bytes; end < text.size(); end += chunk_bytes) {
    const size_t cut = last_safe_cut(text.substr(0, end), scanned);
    if (cut > begin) return cut;
    scanned = end;
  }
  return text.size();
}

using EmitChunk = std::function<void(TextChunk&&)>;

// Reads the documents of `files` in order, up to options.max_bytes of text, and hands them to
// `emit` as chunks of about options.chunk_bytes. Counts the files it opens in `files_read`.
void read_chunks(const std::vector<std::string>& files, const BpeTrainerOptions& options, int64_t& files_read,
                 const EmitChunk& emit) {
  int64_t budget = options.max_bytes > 0 ? options.max_bytes : std::numeric_limits<int64_t>::max();
  const size_t chunk_bytes = static_cast<size_t>(options.chunk_bytes);
  TextChunk chunk;
  const auto add = [&](std::string_view text) {
    chunk.text.append(text);
    chunk.document_ends.push_back(chunk.text.size());
  };
  for (const std::string& file : files) {
    if (budget == 0) break;
    ++files_read;
    DocumentReader reader(file, options.documents);
    Document doc;
    while (budget > 0 && reader.next(doc)) {
      // When the byte budget ends inside a character, the text ends before that character.
      const size_t length = utf8_prefix_length(doc.text, static_cast<size_t>(budget));
      const std::string_view text = std::string_view(doc.text).substr(0, length);
      budget = length < doc.text.size() ? 0 : budget - static_cast<int64_t>(length);
      check_document_utf8(file, doc, text);
      size_t begin = 0;
      while (text.size() - begin > chunk_bytes) {
        const size_t end = part_end(text, begin, chunk_bytes);
        add(text.substr(begin, end - begin));
        emit(std::exchange(chunk, TextChunk()));
        begin = end;
      }
      if (begin < text.size()) add(text.substr(begin));
      if (chunk.text.size() >= chunk_bytes) emit(std::exchange(chunk, TextChunk()));
    }
  }
  if (!chunk.text.empty()) emit(std::move(chunk));
}

// ---------------------------------------------------------------------------------------------
// 2. Counting

using PieceCounts = std::unordered_map<std::string, int64_t>;

// Counts the pieces of chunks, as the tokenizer would cut them, into its own map.
class PieceCounter {
 public:
  PieceCounter(const PreTokenizerRegex& regex, const std::vector<std::string>& special_tokens)
      : regex_(regex), special_tokens_(special_tokens), match_(regex.make_match_data()) {}

  void count(const TextChunk& chunk) {
    size_t begin = 0;
    for (const size_t end : chunk.document_ends) {
      count_document(std::string_view(chunk.text).substr(begin, end - begin));
      begin = end;
    }
  }

  PieceCounts& counts() { return counts_; }

 private:
  // Cuts out the special tokens (longest at the leftmost position, as the tokenizer matches
  // them) and counts the pieces of the text between them.
  void count_document(std::string_view text) {
    std::vector<size_t> next(special_tokens_.size());
    for (size_t k = 0; k < next.size(); ++k) next[k] = text.find(special_tokens_[k]);
    size_t pos = 0;
    for (;;) {
      size_t found = std::string_view::npos, length = 0;
      for (size_t k = 0; k < next.size(); ++k) {
        if (next[k] < found ||
            (next[k] == found && found != std::string_view::npos && special_tokens_[k].size() > length)) {
          found = next[k];
          length = special_tokens_[k].size();
        }
      }
      if (found == std::string_view::npos) break;
      count_ordinary(text.substr(pos, found - pos));
      pos = found + length;
      for (size_t k = 0; k < next.size(); ++k) {
        if (next[k] != std::string_view::npos && next[k] < pos) next[k] = text.find(special_tokens_[k], pos);
      }
    }
    count_ordinary(text.substr(pos));
  }

  void count_ordinary(std::string_view text) {
    if (text.empty()) return;
    const std::string_view normalized = nfc(text, nfc_storage_);
    regex_.split(normalized, match_.get(), [&](std::string_view piece) {
      key_.assign(piece.data(), piece.size());
      ++counts_[key_];
    });
  }

  const PreTokenizerRegex& regex_;
  const std::vector<std::string>& special_tokens_;
  MatchData match_;
  PieceCounts counts_;
  std::string key_, nfc_storage_;
};

// Reads the files and counts their pieces on `threads` workers (the calling thread reads).
// Returns the distinct pieces with their counts, sorted by bytes.
std::vector<std::pair<std::string, int64_t>> count_pieces(const std::vector<std::string>& files,
                                                          const BpeTrainerOptions& options, BpeTrainingResult& stats) {
  const PreTokenizerRegex regex(kQwen3PreTokenizerRegex, "the trainer's pre-tokenizer");
  int64_t total_bytes = 0;
  for (const auto& file : files) total_bytes += static_cast<int64_t>(file_size(file));
  if (options.max_bytes > 0) total_bytes = std::min(total_bytes, options.max_bytes);
  ProgressBar bar("read", (total_bytes + 1023) / 1024, "KiB");

  std::vector<PieceCounter> counters;
  counters.reserve(static_cast<size_t>(options.threads));
  for (int i = 0; i < options.threads; ++i) counters.emplace_back(regex, options.special_tokens);
  std::mutex mutex;
  std::condition_variable reader_cv, worker_cv;
  std::deque<TextChunk> queue;
  bool reading_done = false;
  std::exception_ptr error;
  const size_t max_queued = 2 * static_cast<size_t>(options.threads);

  const auto stop_with = [&](std::exception_ptr caught) {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      if (!error) error = caught;
    }
    reader_cv.notify_all();
    worker_cv.notify_all();
  };
  std::vector<std::thread> workers;
  for (PieceCounter& counter : counters) {
    workers.emplace_back([&, counter = &counter] {
      try {
        for (;;) {
          TextChunk chunk;
          {
            std::unique_lock<std::mutex> lock(mutex);
            worker_cv.wait(lock, [&] { return error || !queue.empty() || reading_done; });
            if (error || queue.empty()) return;
            chunk = std::move(queue.front());
            queue.pop_front();
          }
          reader_cv.notify_one();
          counter->count(chunk);
        }
      } catch (...) {
        stop_with(std::current_exception());
      }
    });
  }
  // Fails when a worker has stopped on an error, so that reading stops too.
  const EmitChunk emit = [&](TextChunk&& chunk) {
    const int64_t kib_before = stats.text_bytes / 1024;
    stats.text_bytes += static_cast<int64_t>(chunk.text.size());
    bar.advance(stats.text_bytes / 1024 - kib_before);
    std::unique_lock<std::mutex> lock(mutex);
    reader_cv.wait(lock, [&] { return error || queue.size() < max_queued; });
    if (error) throw Error("counting stopped");
    queue.push_back(std::move(chunk));
    worker_cv.notify_one();
  };
  try {
    read_chunks(files, options, stats.files, emit);
    {
      const std::lock_guard<std::mutex> lock(mutex);
      reading_done = true;
    }
    worker_cv.notify_all();
  } catch (...) {
    stop_with(std::current_exception());
  }
  for (auto& worker : workers) worker.join();
  if (error) std::rethrow_exception(error);
  bar.finish();

  PieceCounts& total = counters.front().counts();
  for (size_t i = 1; i < counters.size(); ++i) {
    for (auto& [piece, count] : counters[i].counts()) total[piece] += count;
    counters[i].counts().clear();
  }
  std::vector<std::pair<std::string, int64_t>> pieces(std::make_move_iterator(total.begin()),
                                                      std::make_move_iterator(total.end()));
  total.clear();
  std::sort(pieces.begin(), pieces.end());
  return pieces;
}

// ---------------------------------------------------------------------------------------------
// 3. Merging

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t left_of(uint64_t pair) {
  return static_cast<int32_t>(pair >> 32);
}
int32_t right_of(uint64_t pair) {
  return static_cast<int32_t>(pair & 0xFFFFFFFFu);
}

class BpeMerger {
 public:
  // `pieces`: distinct pieces with their counts.
  BpeMerger(const std::vector<std::pair<std::string, int64_t>>& pieces, int64_t min_frequency)
      : min_frequency_(min_frequency) {
    for (int byte = 0; byte < 256; ++byte) add_token(std::string(1, static_cast<char>(byte)));
    size_t symbol_count = 0;
    for (const auto& piece : pieces) symbol_count += piece.first.size();
    symbols_.reserve(symbol_count);
    for (const auto& [piece, count] : pieces) {
      const int32_t word = static_cast<int32_t>(word_count_.size());
      word_begin_.push_back(symbols_.size());
      word_size_.push_back(static_cast<int32_t>(piece.size()));
      word_count_.push_back(count);
      for (size_t i = 0; i < piece.size(); ++i) {
        symbols_.push_back(static_cast<unsigned char>(piece[i]));
        if (i > 0) add_to_pair(pair_key(symbols_[symbols_.size() - 2], symbols_.back()), count, word);
      }
    }
    for (const auto& [pair, count] : pair_count_) queue_.push(Candidate{count, pair});
  }

  // Learns merges until the base vocabulary has `tokens` tokens or no pair is frequent enough.
  // Calls on_merge() after each merge.
  template <class OnMerge>
  void run(size_t tokens, OnMerge&& on_merge) {
    while (tokens_.size() < tokens && !queue_.empty()) {
      const Candidate top = queue_.top();
      queue_.pop();
      const auto found = pair_count_.find(top.pair);
      const int64_t count = found == pair_count_.end() ? 0 : found->second;
      if (count != top.count) {
        // Stale. A count that grew was pushed anew when it grew; one that fell goes back.
        if (count > 0 && count < top.count) queue_.push(Candidate{count, top.pair});
        continue;
      }
      if (count < min_frequency_) break;
      merge(top.pair);
      on_merge();
    }
  }

  std::vector<std::string>& tokens() { return tokens_; }
  std::vector<std::pair<int32_t, int32_t>>& merges() { return merges_; }

  // The tokens that the words make now, each counted as often as its word was seen.
  int64_t token_count() const {
    int64_t total = 0;
    for (size_t w = 0; w < word_count_.size(); ++w) total += word_count_[w] * word_size_[w];
    return total;
  }

 private:
  struct Candidate {
    int64_t count;
    uint64_t pair;
  };
  // Orders the heap: the top is the most frequent pair, ties going to the lexicographically
  // smallest (left bytes, right bytes).
  struct LessFrequent {
    const std::vector<std::string>* tokens;
    bool operator()(const Candidate& a, const Candidate& b) const {
      if (a.count != b.count) return a.count < b.count;
      const std::string& a_left = (*tokens)[left_of(a.pair)];
      const std::string& b_left = (*tokens)[left_of(b.pair)];
      if (a_left != b_left) return a_left > b_left;
      return (*tokens)[right_of(a.pair)] > (*tokens)[right_of(b.pair)];
    }
  };

  int32_t add_token(std::string bytes) {
    const auto [entry, added] = token_ids_.emplace(bytes, static_cast<int32_t>(tokens_.size()));
    if (added) tokens_.push_back(std::move(bytes));
    return entry->second;
  }

  void add_to_pair(uint64_t pair, int64_t count, int32_t word) {
    pair_count_[pair] += count;
    std::vector<int32_t>& words = pair_words_[pair];
    if (words.empty() || words.back() != word) words.push_back(word);
  }

  void change_pair(uint64_t pair, int64_t delta, int32_t word) {
    if (delta > 0) {
      add_to_pair(pair, delta, word);
      grown_.push_back(pair);
      return;
    }
    const auto found = pair_count_.find(pair);
    found->second += delta;
    if (found->second == 0) {
      pair_count_.erase(found);
      pair_words_.erase(pair);
    }
  }

  void merge(uint64_t pair) {
    const int32_t left = left_of(pair), right = right_of(pair);
    const int32_t merged = add_token(tokens_[left] + tokens_[right]);
    merges_.emplace_back(left, right);
    std::vector<int32_t> words = std::move(pair_words_[pair]);
    pair_words_.erase(pair);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    grown_.clear();
    for (const int32_t word : words) merge_in_word(word, left, right, merged);
    pair_count_.erase(pair);
    std::sort(grown_.begin(), grown_.end());
    grown_.erase(std::unique(grown_.begin(), grown_.end()), grown_.end());
    for (const uint64_t grown : grown_) {
      const auto found = pair_count_.find(grown);
      if (found != pair_count_.end()) queue_.push(Candidate{found->second, grown});
    }
  }

  // Replaces each occurrence of (left, right) in the word, from the left, by `merged`, moving
  // the pair counts: the pairs with the neighbours lose the word's count, the pairs of the
  // merged token with them gain it. The word shrinks in place.
  void merge_in_word(int32_t word, int32_t left, int32_t right, int32_t merged) {
    int32_t* symbols = symbols_.data() + word_begin_[word];
    const int32_t size = word_size_[word];
    const int64_t count = word_count_[word];
    int32_t kept = 0;  // symbols[0, kept) is the rewritten word so far
    for (int32_t i = 0; i < size;) {
      if (i + 1 < size && symbols[i] == left && symbols[i + 1] == right) {
        if (kept > 0) {
          change_pair(pair_key(symbols[kept - 1], left), -count, word);
          change_pair(pair_key(symbols[kept - 1], merged), count, word);
        }
        if (i + 2 < size) {
          change_pair(pair_key(right, symbols[i + 2]), -count, word);
          change_pair(pair_key(merged, symbols[i + 2]), count, word);
        }
        symbols[kept++] = merged;
        i += 2;
      } else {
        symbols[kept++] = symbols[i++];
      }
    }
    word_size_[word] = kept;
  }

  const int64_t min_frequency_;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> token_ids_;
  std::vector<std::pair<int32_t, int32_t>> merges_;
  // The words: symbols_[word_begin_[w], + word_size_[w]) are the token ids of word w.
  std::vector<int32_t> symbols_;
  std::vector<size_t> word_begin_;
  std::vector<int32_t> word_size_;
  std::vector<int64_t> word_count_;
  std::unordered_map<uint64_t, int64_t> pair_count_;  // pairs that occur, with their counts
  // Words that a pair occurs in, and maybe some where it no longer does.
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words_;
  std::priority_queue<Candidate, std::vector<Candidate>, LessFrequent> queue_{LessFrequent{&tokens_}};
  std::vector<uint64_t> grown_;  // pairs whose count grew during the current merge
};

void check_options(const BpeTrainerOptions& options) {
  const auto& specials = options.special_tokens;
  const int64_t smallest = 256 + static_cast<int64_t>(specials.size());
  if (options.vocab_size < smallest) {
    usage_fail("vocabulary size ", options.vocab_size, " is too small: the 256 byte tokens and ", specials.size(),
               " special tokens need at least ", smallest);
  }
  if (options.min_frequency < 1) usage_fail("min frequency must be >= 1, not ", options.min_frequency);
  if (options.max_bytes < 0) usage_fail("max bytes must be >= 0 (0: no limit)");
  if (options.threads < 1 || options.threads > kMaxWorkerThreads) {
    usage_fail("--threads must be 1 to ", kMaxWorkerThreads, ", not ", options.threads);
  }
  if (options.chunk_bytes < 1) usage_fail("chunk_bytes must be >= 1");
  for (size_t k = 0; k < specials.size(); ++k) {
    const std::string& special = specials[k];
    if (special.empty() || special.find_first_of(" \t\n\r\v\f") != std::string::npos) {
      usage_fail("special token \"", special, "\" must be non-empty and hold no whitespace");
    }
    try {
      check_utf8(special);
    } catch (const Error&) {
      usage_fail("special token \"", special, "\" is not valid UTF-8");
    }
    if (std::find(specials.begin(), specials.begin() + static_cast<std::ptrdiff_t>(k), special) !=
        specials.begin() + static_cast<std::ptrdiff_t>(k)) {
      usage_fail("special token \"", special, "\" is given twice");
    }
  }
}

}  // namespace

BpeTrainingResult train_bpe(const std::vector<std::string>& inputs, const BpeTrainerOptions& options) {
  check_options(options);
  if (inputs.empty()) usage_fail("no input files given");
  const std::vector<std::string> files = expand_inputs(inputs);

  BpeTrainingResult result;
  const auto pieces = count_pieces(files, options, result);
  if (pieces.empty()) fail("the inputs hold no text to train on");
  result.distinct_pieces = static_cast<int64_t>(pieces.size());
  for (const auto& [piece, count] : pieces) {
    result.pieces += count;
    result.piece_bytes += count * static_cast<int64_t>(piece.size());
  }
  log::info(cat("read ", result.text_bytes, " bytes from ", result.files, " files: ", result.pieces, " pieces, ",
                result.distinct_pieces, " distinct"));

  BpeMerger merger(pieces, options.min_frequency);
  const size_t base_tokens = static_cast<size_t>(options.vocab_size) - options.special_tokens.size();
  {
    ProgressBar bar("merge", static_cast<int64_t>(base_tokens - 256), "merges");
    merger.run(base_tokens, [&] { bar.advance(); });
  }
  result.tokens = std::move(merger.tokens());
  result.merges = std::move(merger.merges());
  result.special_tokens = options.special_tokens;
  result.piece_tokens = merger.token_count();
  if (result.tokens.size() < base_tokens) {
    log::warn(cat("stopped at a vocabulary of ", result.vocab_size(), " (not ", options.vocab_size,
                  "): no pair of adjacent tokens is left that occurs at least min_frequency = ", options.min_frequency,
                  " times"));
  }
  // A special token spelt like an ordinary one would give two ids the same name.
  std::unordered_set<std::string> spelled;
  for (const std::string& token : result.tokens) spelled.insert(bytes_to_byte_level(token));
  for (const std::string& special : result.special_tokens) {
    if (spelled.count(special)) {
      usage_fail("special token \"", special,
                 "\" is also the spelling of an ordinary token in tokenizer.json; choose another");
    }
  }
  return result;
}

void write_tokenizer_json(const std::string& dir, const BpeTrainingResult& result) {
  using nlohmann::ordered_json;
  const ordered_json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  ordered_json added_tokens = ordered_json::array();
  ordered_json added_tokens_decoder = ordered_json::object();
  for (size_t k = 0; k < result.special_tokens.size(); ++k) {
    const int32_t id = static_cast<int32_t>(result.tokens.size() + k);
    const std::string& content = result.special_tokens[k];
    added_tokens.push_back({{"id", id},
                            {"content", content},
                            {"single_word", false},
                            {"lstrip", false},
                            {"rstrip", false},
                            {"normalized", false},
                            {"special", true}});
    added_tokens_decoder[std::to_string(id)] = {{"content", content}, {"lstrip", false},      {"normalized", false},
                                                {"rstrip", false},    {"single_word", false}, {"special", true}};
  }
  ordered_json vocab = ordered_json::object();
  std::vector<std::string> spelled;
  spelled.reserve(result.tokens.size());
  for (size_t id = 0; id < result.tokens.size(); ++id) {
    spelled.push_back(bytes_to_byte_level(result.tokens[id]));
    vocab[spelled.back()] = id;
  }
  ordered_json merges = ordered_json::array();
  for (const auto& [left, right] : result.merges) merges.push_back({spelled[left], spelled[right]});

  ordered_json tokenizer = {{"version", "1.0"},
                            {"truncation", nullptr},
                            {"padding", nullptr},
                            {"added_tokens", added_tokens},
                            {"normalizer", {{"type", "NFC"}}},
                            {"pre_tokenizer",
                             {{"type", "Sequence"},
                              {"pretokenizers",
                               {{{"type", "Split"},
                                 {"pattern", {{"Regex", kQwen3PreTokenizerRegex}}},
                                 {"behavior", "Isolated"},
                                 {"invert", false}},
                                byte_level}}}},
                            {"post_processor", byte_level},
                            {"decoder", byte_level},
                            {"model",
                             {{"type", "BPE"},
                              {"dropout", nullptr},
                              {"unk_token", nullptr},
                              {"continuing_subword_prefix", ""},
                              {"end_of_word_suffix", ""},
                              {"fuse_unk", false},
                              {"byte_fallback", false},
                              {"ignore_merges", false},
                              {"vocab", std::move(vocab)},
                              {"merges", std::move(merges)}}}};

  const ordered_json eos =
      result.special_tokens.empty() ? ordered_json(nullptr) : ordered_json(result.special_tokens.front());
  const ordered_json config = {{"add_bos_token", false},
                               {"add_prefix_space", false},
                               {"added_tokens_decoder", added_tokens_decoder},
                               {"bos_token", nullptr},
                               {"clean_up_tokenization_spaces", false},
                               {"eos_token", eos},
                               {"errors", "replace"},
                               {"pad_token", eos},
                               {"tokenizer_class", "PreTrainedTokenizerFast"},
                               {"unk_token", nullptr}};
  create_directories(dir);
  write_file_atomic(join_path(dir, "tokenizer.json"), tokenizer.dump(2) + "\n");
  write_file_atomic(join_path(dir, "tokenizer_config.json"), config.dump(2) + "\n");
}

}  // namespace halo
