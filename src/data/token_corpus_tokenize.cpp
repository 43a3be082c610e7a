// tokenize_corpus: inputs -> documents -> token ids -> tokens.bin + manifest.json.
// Threads: one reader cuts each file into batches of documents (DocumentReader, a batch never
// spans two files, so per-file counts come out of the batches), `threads` workers tokenize
// batches in any order, and the calling thread writes them in reading order (batches are
// numbered by the reader). A bound on batches read but not yet written keeps memory flat
// whatever the corpus size (a batch is about batch_bytes, or one whole-file document). The
// first error anywhere stops every thread and is rethrown to the caller; the partial
// tokens.bin.tmp is then removed.
#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "halo/document_reader.h"
#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/logging.h"
#include "halo/progress.h"
#include "halo/token_corpus.h"
#include "halo/tokenizer.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tokens.bin is little-endian; this writer copies host-order uint32 values"
#endif

namespace halo {
namespace {

bool is_blank(std::string_view text) {
  return text.find_first_not_of(" \t\n\r\v\f") == std::string_view::npos;
}

std::string utc_now_iso8601() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct DocumentBatch {
  int64_t sequence = 0;
  size_t source = 0;
  std::vector<Document> documents;
  int64_t text_bytes = 0;   // size of the documents' text
  int64_t input_bytes = 0;  // bytes of the file read for this batch
  int64_t skipped = 0;
};

struct TokenBatch {
  size_t source = 0;
  std::vector<uint32_t> tokens;
  int64_t documents = 0, skipped = 0, input_bytes = 0;
};

class TokenizationPipeline {
 public:
  TokenizationPipeline(const Tokenizer& tokenizer, const TokenizeCorpusOptions& options,
                       const std::vector<std::string>& files)
      : tokenizer_(tokenizer),
        options_(options),
        files_(files),
        vocab_size_(tokenizer.vocab_size()),
        max_in_flight_(4 * static_cast<int64_t>(options.threads)) {
    if (options.append_eos) eos_ = static_cast<uint32_t>(*tokenizer.eos_id());
  }

  // Calls `write` on this thread for each batch, in reading order.
  void run(const std::function<void(const TokenBatch&)>& write) {
    std::vector<std::thread> threads;
    threads.emplace_back([this] { guarded([this] { read_all(); }); });
    for (int i = 0; i < options_.threads; ++i) threads.emplace_back([this] { guarded([this] { work(); }); });
    guarded([&] { write_in_order(write); });
    for (auto& t : threads) t.join();
    if (error_) std::rethrow_exception(error_);
  }

 private:
  template <class F>
  void guarded(F&& f) {
    try {
      f();
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      reader_cv_.notify_all();
      worker_cv_.notify_all();
      writer_cv_.notify_all();
    }
  }

  // Hands a batch to the workers once fewer than max_in_flight_ batches are unwritten; false
  // when the pipeline has stopped on an error.
  bool submit(DocumentBatch&& batch) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      reader_cv_.wait(lock, [&] { return error_ || in_flight_ < max_in_flight_; });
      if (error_) return false;
      batch.sequence = batches_read_++;
      ++in_flight_;
      pending_.push_back(std::move(batch));
    }
    worker_cv_.notify_one();
    return true;
  }

  void read_all() {
    for (size_t source = 0; source < files_.size(); ++source) {
      DocumentReader reader(files_[source], options_.documents);
      DocumentBatch batch;
      batch.source = source;
      int64_t submitted_bytes = 0;
      Document doc;
      while (reader.next(doc)) {
        if (is_blank(doc.text)) {
          ++batch.skipped;
          continue;
        }
        batch.text_bytes += static_cast<int64_t>(doc.text.size());
        batch.documents.push_back(std::move(doc));
        if (batch.text_bytes >= options_.batch_bytes) {
          batch.input_bytes = reader.bytes_read() - submitted_bytes;
          submitted_bytes = reader.bytes_read();
          if (!submit(std::move(batch))) return;
          batch = DocumentBatch();
          batch.source = source;
        }
      }
      // Always submitted, even when empty: it carries the file's last bytes and skipped documents.
      batch.input_bytes = reader.bytes_read() - submitted_bytes;
      if (!submit(std::move(batch))) return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      reading_done_ = true;
    }
    worker_cv_.notify_all();
    writer_cv_.notify_all();
  }

  void work() {
    for (;;) {
      DocumentBatch batch;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        worker_cv_.wait(lock, [&] { return error_ || !pending_.empty() || reading_done_; });
        if (error_ || pending_.empty()) return;
        batch = std::move(pending_.front());
        pending_.pop_front();
      }
      TokenBatch tokens = tokenize(batch);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        finished_.emplace(batch.sequence, std::move(tokens));
      }
      writer_cv_.notify_one();
    }
  }

  TokenBatch tokenize(const DocumentBatch& batch) const {
    TokenBatch out;
    out.source = batch.source;
    out.documents = static_cast<int64_t>(batch.documents.size());
    out.skipped = batch.skipped;
    out.input_bytes = batch.input_bytes;
    out.tokens.reserve(static_cast<size_t>(batch.text_bytes / 3 + out.documents));
    for (const auto& doc : batch.documents) {
      auto where = [&] { return doc.line > 0 ? cat(files_[batch.source], ":", doc.line) : files_[batch.source]; };
      std::vector<int32_t> ids;
      try {
        ids = tokenizer_.encode(doc.text);
      } catch (const std::exception& e) {
        fail(where(), ": cannot tokenize: ", e.what());
      }
      for (int32_t id : ids) {
        if (id < 0 || id >= vocab_size_) {
          fail(where(), ": the tokenizer returned id ", id, ", outside its vocabulary of ", vocab_size_);
        }
        out.tokens.push_back(static_cast<uint32_t>(id));
      }
      if (options_.append_eos) out.tokens.push_back(eos_);
    }
    return out;
  }

  void write_in_order(const std::function<void(const TokenBatch&)>& write) {
    for (int64_t next = 0;; ++next) {
      TokenBatch batch;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        writer_cv_.wait(lock,
                        [&] { return error_ || finished_.count(next) || (reading_done_ && next == batches_read_); });
        if (error_) return;
        auto it = finished_.find(next);
        if (it == finished_.end()) return;  // every batch written
        batch = std::move(it->second);
        finished_.erase(it);
      }
      write(batch);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --in_flight_;
      }
      reader_cv_.notify_one();
    }
  }

  const Tokenizer& tokenizer_;
  const TokenizeCorpusOptions& options_;
  const std::vector<std::string>& files_;
  const int32_t vocab_size_;
  const int64_t max_in_flight_;
  uint32_t eos_ = 0;

  std::mutex mutex_;
  std::condition_variable reader_cv_, worker_cv_, writer_cv_;
  std::deque<DocumentBatch> pending_;
  std::map<int64_t, TokenBatch> finished_;
  int64_t in_flight_ = 0, batches_read_ = 0;
  bool reading_done_ = false;
  std::exception_ptr error_;
};

// tokens.bin.tmp while being written; commit() makes it tokens.bin. Removed if never committed.
class TokenFileWriter {
 public:
  explicit TokenFileWriter(const std::string& dir)
      : final_path_(join_path(dir, kTokensFile)), tmp_path_(final_path_ + ".tmp") {
    fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd_ < 0) fail(tmp_path_, ": cannot create (", std::strerror(errno), ")");
  }
  ~TokenFileWriter() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(tmp_path_.c_str());
    }
  }
  TokenFileWriter(const TokenFileWriter&) = delete;
  TokenFileWriter& operator=(const TokenFileWriter&) = delete;

  void write(const std::vector<uint32_t>& tokens) {
    const char* data = reinterpret_cast<const char*>(tokens.data());
    size_t left = tokens.size() * sizeof(uint32_t);
    while (left > 0) {
      ssize_t n = ::write(fd_, data, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail(tmp_path_, ": write failed (", std::strerror(errno), ")");
      }
      data += n;
      left -= static_cast<size_t>(n);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) fail(tmp_path_, ": cannot flush to disk (", std::strerror(errno), ")");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
      ::unlink(tmp_path_.c_str());
      fail(tmp_path_, ": cannot close (", std::strerror(errno), ")");
    }
    if (std::rename(tmp_path_.c_str(), final_path_.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp_path_.c_str());
      fail(final_path_, ": cannot rename ", tmp_path_, " into place (", std::strerror(err), ")");
    }
  }

 private:
  std::string final_path_, tmp_path_;
  int fd_ = -1;
};

bool is_inside(const std::string& file, const std::string& dir) {
  const std::string canonical_dir = canonical_path(dir);
  return !canonical_dir.empty() && canonical_path(file).rfind(canonical_dir + "/", 0) == 0;
}

}  // namespace

TokenCorpusManifest tokenize_corpus(const Tokenizer& tokenizer, const TokenizeCorpusOptions& options) {
  if (options.threads < 1 || options.threads > kMaxWorkerThreads) {
    usage_fail("--threads must be 1 to ", kMaxWorkerThreads, ", not ", options.threads);
  }
  if (options.batch_bytes < 1) usage_fail("batch_bytes must be >= 1");
  if (options.out_dir.empty()) usage_fail("no output directory given");
  if (options.append_eos && !tokenizer.eos_id()) {
    fail(
        "the tokenizer has no EOS token (no eos_token in tokenizer_config.json), so documents cannot be "
        "separated; pass --no-eos to concatenate them without one");
  }
  std::vector<std::string> files;
  for (auto& file : expand_inputs(options.inputs)) {
    if (is_inside(file, options.out_dir)) {
      log::warn(cat("skipping ", file, ": it is inside the output directory"));
    } else {
      files.push_back(std::move(file));
    }
  }
  if (files.empty()) fail("no input files to tokenize");

  TokenCorpusManifest manifest;
  manifest.tokenizer_path = options.tokenizer.path;
  manifest.tokenizer_sha256 = options.tokenizer.sha256;
  manifest.vocab_size = tokenizer.vocab_size();
  manifest.eos_id = tokenizer.eos_id();
  manifest.eos_appended = options.append_eos;
  int64_t total_bytes = 0;
  for (const auto& file : files) {
    manifest.sources.push_back({file, 0, 0, 0, 0});
    total_bytes += static_cast<int64_t>(file_size(file));
  }
  log::info(cat("tokenizing ", files.size(), " files (", total_bytes, " bytes) with ", options.threads,
                " threads into ", options.out_dir));

  const std::string& out_dir = options.out_dir;
  create_directories(out_dir);
  // From here on the directory is not a complete corpus until the new manifest is written.
  const std::string manifest_path = join_path(out_dir, kManifestFile);
  if (::unlink(manifest_path.c_str()) != 0 && errno != ENOENT) {
    fail(manifest_path, ": cannot remove the previous manifest (", std::strerror(errno), ")");
  }
  TokenFileWriter tokens_file(out_dir);
  ProgressBar bar("tokenize", (total_bytes + 1023) / 1024, "KiB");
  int64_t bytes_done = 0;
  TokenizationPipeline(tokenizer, options, files).run([&](const TokenBatch& batch) {
    tokens_file.write(batch.tokens);
    TokenCorpusSource& source = manifest.sources[batch.source];
    source.documents += batch.documents;
    source.skipped_documents += batch.skipped;
    source.tokens += static_cast<int64_t>(batch.tokens.size());
    source.bytes += batch.input_bytes;
    const int64_t shown_kib = (bytes_done + 1023) / 1024;
    bytes_done += batch.input_bytes;
    bar.advance((bytes_done + 1023) / 1024 - shown_kib);
  });
  bar.finish();
  tokens_file.commit();

  for (const auto& source : manifest.sources) {
    manifest.documents += source.documents;
    manifest.skipped_documents += source.skipped_documents;
    manifest.tokens += source.tokens;
    manifest.bytes += source.bytes;
  }
  manifest.created = utc_now_iso8601();
  write_file_atomic(manifest_path, manifest_to_json(manifest));
  return manifest;
}

}  // namespace halo
