// DecodeGraph: the first step runs CausalLM::decode_step eagerly, which is the real first step
// and also the warm-up a capture needs (kernels loaded, cuBLAS handles made, buffers sized);
// then the same step is captured on a side stream into a CUDA graph with its own memory pool.
// Capture records without executing, so the cache is not touched twice. Every later step copies
// its ids into the static buffer and replays the graph on the current stream; the graph writes
// K/V at the device position, updates the lightning states in place and advances the position,
// and the host only advances the cache's length to match.
#include "halo/decode_graph.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#ifdef HALO_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "halo/causal_lm.h"
#include "halo/error.h"
#include "halo/inference_cache.h"

namespace halo {

struct DecodeGraph::Captured {
#ifdef HALO_WITH_CUDA_KERNELS
  at::cuda::CUDAGraph graph;
#endif
};

bool DecodeGraph::replays_on(const c10::Device& device) {
#ifdef HALO_WITH_CUDA_KERNELS
  return device.is_cuda();
#else
  return false;
#endif
}

DecodeGraph::DecodeGraph(CausalLM& model, InferenceCache& cache)
    : model_(model), cache_(cache), length_(cache.length()) {
  c10::InferenceMode guard;
  if (length_ == 0) fail("decode graph: the cache is empty; prefill the prompt first");
  const at::Tensor& padding = cache.left_padding();
  if (padding.defined() && (padding.device() != model.device() || padding.scalar_type() != at::kLong)) {
    cache.set_left_padding(padding.to(model.device(), at::kLong));
  }
  cache.zero_unused_slots();
  position_ = at::full({1}, length_, at::TensorOptions().dtype(at::kLong).device(model.device()));
}

DecodeGraph::~DecodeGraph() = default;

at::Tensor DecodeGraph::run_step() {
  at::Tensor logits = model_.decode_step(ids_, position_, cache_);
  position_.add_(1);
  return logits;
}

void DecodeGraph::capture() {
#ifdef HALO_WITH_CUDA_KERNELS
  const c10::cuda::CUDAGuard device_guard(model_.device());
  c10::cuda::device_synchronize();
  captured_ = std::make_unique<Captured>();
  // Capture needs a stream other than the default one; replays may run on any.
  const c10::cuda::CUDAStreamGuard stream_guard(c10::cuda::getStreamFromPool(false, model_.device().index()));
  captured_->graph.capture_begin();
  logits_ = run_step();
  captured_->graph.capture_end();
#endif
}

at::Tensor DecodeGraph::step(const at::Tensor& ids) {
  c10::InferenceMode guard;
  if (cache_.length() != length_) {
    fail("decode graph: the cache is at length ", cache_.length(), " but the graph at ", length_,
         "; advance it only through the graph");
  }
  if (cache_.capacity() > 0 && length_ >= cache_.capacity()) {
    fail("decode graph: the cache is full (", cache_.capacity(), " positions); reserve room for every new token");
  }
  const at::Tensor rows = ids.reshape({-1, 1});
  at::Tensor logits;
  if (!ids_.defined()) {
    ids_ = rows.to(model_.device(), at::kLong, /*non_blocking=*/false, /*copy=*/true);
    logits = run_step();
    if (replays_on(model_.device())) capture();
  } else {
    if (rows.sizes() != ids_.sizes()) fail("decode graph: ", ids_.size(0), " rows per step, got ", rows.size(0));
    ids_.copy_(rows);
    if (captured_ != nullptr) {
#ifdef HALO_WITH_CUDA_KERNELS
      captured_->graph.replay();
#endif
      logits = logits_;
    } else {
      logits = run_step();
    }
  }
  cache_.advance(1);
  ++length_;
  return logits;
}

}  // namespace halo
