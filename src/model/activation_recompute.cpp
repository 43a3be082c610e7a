// recomputed(): a torch::autograd::Function whose forward runs the block without a graph and
// whose backward replays it under AutoGradMode(true) and calls autograd::grad on the replay.
#include "model/activation_recompute.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace halo {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Block = std::function<at::Tensor(const at::Tensor&)>;

// Keeps a copy of the block alive in the autograd context until the backward pass.
struct BlockHolder : torch::CustomClassHolder {
  explicit BlockHolder(Block b) : block(std::move(b)) {}
  Block block;
};

struct CheckpointedBlock : public torch::autograd::Function<CheckpointedBlock> {
  static at::Tensor forward(AutogradContext* ctx, const Block& block, const at::Tensor& x, at::TensorList parameters) {
    ctx->save_for_backward({x});
    ctx->saved_data["block"] = c10::IValue::make_capsule(c10::make_intrusive<BlockHolder>(block));
    ctx->saved_data["parameters"] = parameters.vec();
    return block(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["block"].toCapsule());
    const Block& block = holder->block;
    std::vector<at::Tensor> parameters = ctx->saved_data["parameters"].toTensorVector();
    at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    at::Tensor y;
    {
      at::AutoGradMode enable(true);
      y = block(x);
    }
    variable_list inputs{x};
    inputs.insert(inputs.end(), parameters.begin(), parameters.end());
    variable_list grads = torch::autograd::grad({y}, inputs, {grad_outputs[0]}, /*retain_graph=*/false,
                                                /*create_graph=*/false, /*allow_unused=*/true);
    variable_list out{at::Tensor()};  // the block
    out.insert(out.end(), grads.begin(), grads.end());
    return out;
  }
};

}  // namespace

at::Tensor recomputed(const Block& block, const at::Tensor& x, const std::vector<at::Tensor>& parameters) {
  return CheckpointedBlock::apply(block, x, at::TensorList(parameters));
}

}  // namespace halo
