// Training batches from a prepared token corpus (see token_corpus.h), by concatenate-and-chunk.
//
// TokenDataset maps tokens.bin read-only after checking it against manifest.json (format, and a
// size of exactly tokens * 4 bytes); opening costs no scan of the tokens. Ids are checked
// against the vocabulary lazily, as batches are assembled.
//
// TokenBatcher cuts the token stream into windows of T + 1 tokens starting every T tokens:
// window w holds tokens [w*T, w*T + T], so consecutive windows share one boundary token and
// every token after the first is a target exactly once (inputs row[:-1], targets row[1:]).
// There are floor((N - 1) / T) windows; the tail that cannot fill one is not used. Windows
// ignore document boundaries (documents are joined by EOS, as in the reference recipe).
// Each epoch visits the windows in a permutation drawn from (seed, epoch) by Fisher-Yates over
// a SplitMix64 stream, so it is the same on every platform and differs across seeds and epochs.
// With world_size ranks, rank r takes the permutation's entries r, r + world_size, ...; every
// rank gets floor(windows / world_size) windows per epoch (the last few are dropped so that
// ranks stay in step), and an epoch's last partial batch is skipped. The cursor
// {epoch, position} counts windows this rank has consumed in the epoch; it is the same on all
// ranks, and restoring it makes the next batches exactly those an uninterrupted run would get.
#pragma once
#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "halo/token_corpus.h"

namespace halo {

class TokenDataset {
 public:
  // Opens DIR (made by halo data prepare); fails naming the file when the manifest is absent or
  // invalid, or when tokens.bin does not hold exactly the manifest's tokens.
  explicit TokenDataset(const std::string& dir);
  ~TokenDataset();
  TokenDataset(const TokenDataset&) = delete;
  TokenDataset& operator=(const TokenDataset&) = delete;

  const TokenCorpusManifest& manifest() const { return manifest_; }
  const std::string& tokens_path() const { return tokens_path_; }
  int64_t size() const { return manifest_.tokens; }
  const uint32_t* tokens() const { return tokens_; }

 private:
  TokenCorpusManifest manifest_;
  std::string tokens_path_;
  const uint32_t* tokens_ = nullptr;
  size_t mapped_bytes_ = 0;
};

struct TokenCursor {
  int64_t epoch = 0;
  int64_t position = 0;  // windows of this rank consumed in `epoch`
  bool operator==(const TokenCursor& o) const { return epoch == o.epoch && position == o.position; }
};
// {"epoch": E, "position": P}; reading fails with a halo::Error on anything else.
void to_json(nlohmann::json& j, const TokenCursor& cursor);
void from_json(const nlohmann::json& j, TokenCursor& cursor);

struct TokenBatcherOptions {
  int64_t batch_size = 1;  // B: windows per batch on each rank
  int64_t seq_len = 0;     // T: input positions per window (a window holds T + 1 tokens)
  uint64_t seed = 0;
  int64_t rank = 0, world_size = 1;
};

class TokenBatcher {
 public:
  // The dataset must outlive the batcher. Fails when one rank would get fewer than B windows.
  TokenBatcher(const TokenDataset& dataset, const TokenBatcherOptions& options);

  // The next batch: [B, T + 1] int64 on the CPU. Moves to the next epoch when the current one
  // has fewer than B windows left. Fails naming tokens.bin on an id outside the vocabulary.
  at::Tensor next();

  TokenCursor cursor() const { return cursor_; }
  // Continues from `cursor` (from cursor() of a batcher with the same dataset and options).
  void restore(const TokenCursor& cursor);

  int64_t windows() const { return windows_; }
  int64_t windows_per_rank() const { return windows_per_rank_; }
  int64_t batches_per_epoch() const { return windows_per_rank_ / options_.batch_size; }

 private:
  const std::vector<int64_t>& order(int64_t epoch);

  const TokenDataset& dataset_;
  TokenBatcherOptions options_;
  int64_t windows_ = 0, windows_per_rank_ = 0;
  TokenCursor cursor_;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace halo
