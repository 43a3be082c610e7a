// Activation recomputation for one block: the forward pass keeps only the block's input; the
// backward pass runs the block again with autograd on and backpropagates through that replay.
// Trades one extra forward per block for not storing its activations (long-context training).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace halo {

// y = block(x), with gradients to x and to every tensor in `parameters` (the tensors the block
// reads that need gradients). `block` must be deterministic (it runs twice).
at::Tensor recomputed(const std::function<at::Tensor(const at::Tensor&)>& block, const at::Tensor& x,
                      const std::vector<at::Tensor>& parameters);

}  // namespace halo
