// Single-token decode steps replayed as one CUDA graph. One eager decode step issues about 1,500
// small kernels through ATen dispatch, and on a slow host launching them takes far longer than
// running them; captured once, the whole step (embedding of a static id buffer, every layer, the
// final norm, logits into a static buffer) is one graph launch. The step's cache position is a
// device counter that the graph itself advances, and attention reads the valid length from
// device memory (CausalLM::decode_step), so one graph serves every step of a cache of fixed
// capacity (InferenceCache::reserve).
// Graphs need halo built with HALO_CUDA (only then does decode_graph.cpp use
// at::cuda::CUDAGraph, so the CPU build needs no CUDA headers) and a model on a CUDA device.
// Otherwise every step runs the same static-shaped step eagerly: the CPU tests check it that way,
// while generation keeps its plain eager path there (replays_on is false).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>

namespace halo {

class CausalLM;
class InferenceCache;

class DecodeGraph {
 public:
  // Whether steps on `device` replay a CUDA graph (a HALO_CUDA build and a CUDA device).
  static bool replays_on(const c10::Device& device);

  // For `model` continuing `cache`, which must be prefilled with its K/V buffers at their final
  // capacity. While the graph is in use the cache advances only through step().
  DecodeGraph(CausalLM& model, InferenceCache& cache);
  ~DecodeGraph();
  DecodeGraph(const DecodeGraph&) = delete;
  DecodeGraph& operator=(const DecodeGraph&) = delete;

  // One step: ids [B] or [B, 1] int64 (B fixed by the first call) -> logits [B, vocab], valid
  // until the next step; the cache advances by one position. The first step runs eagerly (the
  // warm-up) and then captures the graph; later steps replay it.
  at::Tensor step(const at::Tensor& ids);

 private:
  struct Captured;  // the CUDA graph (HALO_CUDA builds only)

  at::Tensor run_step();
  void capture();

  std::unique_ptr<Captured> captured_;  // declared first: outlives the tensors of its memory pool
  CausalLM& model_;
  InferenceCache& cache_;
  at::Tensor ids_;       // [B, 1] int64, the tokens of the step
  at::Tensor position_;  // int64 [1]: the cache slot of the next step, advanced by each step
  at::Tensor logits_;    // the captured step's output
  int64_t length_;       // the cache length that position_ holds
};

}  // namespace halo
