// TokenDataset (mmap of tokens.bin) and TokenBatcher (shuffled windows with a resumable
// cursor). The window order of an epoch is computed once per epoch and kept (8 bytes a window).
#include "data/token_dataset.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>

#include "halo/error.h"
#include "halo/file_system.h"

namespace halo {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A permutation of 0..n-1 determined by (seed, epoch).
std::vector<int64_t> window_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  uint64_t state = seed;
  state = splitmix64(state) ^ static_cast<uint64_t>(epoch);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    // A uniform draw from [0, i] by multiply-shift (bias below 2^-40 for any realistic i).
    const auto j =
        static_cast<int64_t>((static_cast<unsigned __int128>(splitmix64(state)) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(order[i], order[j]);
  }
  return order;
}

}  // namespace

TokenDataset::TokenDataset(const std::string& dir)
    : manifest_(read_manifest(dir)), tokens_path_(join_path(dir, kTokensFile)) {
  require_regular_file(tokens_path_);
  const int fd = ::open(tokens_path_.c_str(), O_RDONLY);
  if (fd < 0) fail(tokens_path_, ": cannot open (", std::strerror(errno), ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(tokens_path_, ": cannot stat (", std::strerror(errno), ")");
  }
  const int64_t expected = manifest_.tokens * static_cast<int64_t>(sizeof(uint32_t));
  if (st.st_size != expected) {
    ::close(fd);
    fail(tokens_path_, ": ", st.st_size, " bytes, but its manifest lists ", manifest_.tokens, " tokens (", expected,
         " bytes): the file is truncated or from another run; prepare the corpus again");
  }
  if (expected > 0) {
    void* map = ::mmap(nullptr, static_cast<size_t>(expected), PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail(tokens_path_, ": cannot map (", std::strerror(err), ")");
    }
    tokens_ = static_cast<const uint32_t*>(map);
    mapped_bytes_ = static_cast<size_t>(expected);
  }
  ::close(fd);
}

TokenDataset::~TokenDataset() {
  if (tokens_ != nullptr) ::munmap(const_cast<uint32_t*>(tokens_), mapped_bytes_);
}

void to_json(nlohmann::json& j, const TokenCursor& cursor) {
  j = nlohmann::json{{"epoch", cursor.epoch}, {"position", cursor.position}};
}

void from_json(const nlohmann::json& j, TokenCursor& cursor) {
  auto count = [&](const char* key) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < 0) {
      fail("data cursor ", j.dump(), ": \"", key, "\" must be an integer >= 0");
    }
    return j[key].get<int64_t>();
  };
  cursor.epoch = count("epoch");
  cursor.position = count("position");
}

TokenBatcher::TokenBatcher(const TokenDataset& dataset, const TokenBatcherOptions& options)
    : dataset_(dataset), options_(options) {
  if (options.batch_size < 1) usage_fail("batch size must be >= 1, not ", options.batch_size);
  if (options.seq_len < 1) usage_fail("sequence length must be >= 1, not ", options.seq_len);
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    usage_fail("rank ", options.rank, " is not in 0..world_size-1 (world_size ", options.world_size, ")");
  }
  windows_ = dataset.size() > 0 ? (dataset.size() - 1) / options.seq_len : 0;
  windows_per_rank_ = windows_ / options.world_size;
  if (windows_per_rank_ < options.batch_size) {
    fail(dataset.tokens_path(), ": ", dataset.size(), " tokens make ", windows_, " windows of ", options.seq_len + 1,
         " tokens, fewer than batch size ", options.batch_size, " x world size ", options.world_size,
         ": use more data or a shorter sequence length");
  }
}

const std::vector<int64_t>& TokenBatcher::order(int64_t epoch) {
  if (order_epoch_ != epoch) {
    order_ = window_permutation(windows_, options_.seed, epoch);
    order_epoch_ = epoch;
  }
  return order_;
}

at::Tensor TokenBatcher::next() {
  const int64_t B = options_.batch_size, T = options_.seq_len;
  if (cursor_.position + B > windows_per_rank_) {
    ++cursor_.epoch;
    cursor_.position = 0;
  }
  const std::vector<int64_t>& windows = order(cursor_.epoch);
  const int64_t vocab = dataset_.manifest().vocab_size;
  at::Tensor batch = at::empty({B, T + 1}, at::kLong);
  int64_t* out = batch.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t window = windows[(cursor_.position + b) * options_.world_size + options_.rank];
    const uint32_t* src = dataset_.tokens() + window * T;
    for (int64_t t = 0; t <= T; ++t) {
      if (src[t] >= vocab) {
        fail(dataset_.tokens_path(), ": token ", src[t], " at offset ", window * T + t, " is not below vocab_size ",
             vocab, ": the file is corrupt");
      }
      out[b * (T + 1) + t] = src[t];
    }
  }
  cursor_.position += B;
  return batch;
}

void TokenBatcher::restore(const TokenCursor& cursor) {
  if (cursor.epoch < 0 || cursor.position < 0 || cursor.position > windows_per_rank_) {
    fail("data cursor (epoch ", cursor.epoch, ", position ", cursor.position, ") does not fit this dataset (",
         windows_per_rank_, " windows per rank and epoch): was it saved with other data or options?");
  }
  cursor_ = cursor;
}

}  // namespace halo
