// Per-layer state carried between forward calls during generation: growing K/V buffers for
// softmax-attention layers (capacity doubles, so appending a token is amortized O(1)) and the
// float32 recurrent state [B, H, D, D] of lightning layers. Every sequence of the batch shares
// one length; sequences shorter than the longest are left-padded, and the cache remembers each
// row's padding so that padded positions never reach the attention or the recurrent state.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace halo {

class InferenceCache {
 public:
  explicit InferenceCache(int64_t num_layers);

  // Positions already stored (the offset of the next token).
  int64_t length() const { return length_; }

  // Appends k, v [B, KV, T, D] for `layer` at positions length()..length()+T-1 and returns the
  // whole cache of that layer so far, [B, KV, length()+T, D] (views, no copy).
  std::pair<at::Tensor, at::Tensor> append_kv(int64_t layer, const at::Tensor& k, const at::Tensor& v);

  // Writes k, v [B, KV, 1, D] for `layer` at the slot given as device data (int64 [1]) and
  // returns the layer's whole buffers [B, KV, capacity, D], with no host synchronization: the
  // decode step of CausalLM::decode_step. The buffers must exist (an append first).
  std::pair<at::Tensor, at::Tensor> write_kv_at(int64_t layer, const at::Tensor& k, const at::Tensor& v,
                                                const at::Tensor& slot);

  // Positions the K/V buffers hold (0 while there are none).
  int64_t capacity() const;

  // Sets the K/V slots from length() to the capacity to zero, so that attention over whole
  // buffers (decode_attention without its kernel) reads finite values there.
  void zero_unused_slots();

  // The recurrent state of a lightning layer (undefined before the first call).
  at::Tensor& lightning_state(int64_t layer) { return states_.at(layer); }

  // Left padding per row, int64 [B] (undefined: no padding). Set before the first forward.
  void set_left_padding(const at::Tensor& padding) { left_padding_ = padding; }
  const at::Tensor& left_padding() const { return left_padding_; }

  // Commits `tokens` new positions once every layer has appended them.
  void advance(int64_t tokens) { length_ += tokens; }

  // Sizes the K/V buffers for `positions` in all when they are first made, instead of growing
  // them by doubling (a 1M-token prompt would otherwise hold up to twice its cache).
  void reserve(int64_t positions) { reserved_ = positions; }

  // Bytes held by the cache buffers (capacity, not just the used part).
  int64_t bytes() const;

 private:
  int64_t length_ = 0, reserved_ = 0;
  std::vector<at::Tensor> keys_, values_;  // [B, KV, capacity, D]
  std::vector<at::Tensor> states_;         // [B, H, D, D] float32
  at::Tensor left_padding_;
};

}  // namespace halo
