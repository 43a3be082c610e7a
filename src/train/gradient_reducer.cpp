// GradientReducer (see gradient_reducer.h): buckets, the post-accumulate-grad hooks and the
// ordered start of their collectives.
#include "train/gradient_reducer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <map>
#include <memory>
#include <tuple>

#include "halo/error.h"

namespace halo {
namespace {

struct ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(GradientReducer& reducer, size_t index) : reducer(reducer), index(index) {}
  void operator()(const torch::autograd::Variable& /*parameter*/) override { reducer.gradient_ready(index); }
  GradientReducer& reducer;
  size_t index;
};

}  // namespace

GradientReducer::GradientReducer(std::vector<at::Tensor> parameters, std::vector<int> owners, ProcessGroup& world)
    : parameters_(std::move(parameters)), world_(world) {
  if (!owners.empty() && owners.size() != parameters_.size())
    fail("GradientReducer: owners of ", owners.size(), " parameters given for ", parameters_.size());
  const size_t n = parameters_.size();
  bucket_of_.assign(n, 0);
  offset_.assign(n, 0);
  ready_.assign(n, false);
  std::map<std::tuple<int, int, int, int>, size_t> open;  // (dtype, device, owner) -> bucket being filled
  for (size_t k = n; k-- > 0;) {
    const at::Tensor& p = parameters_[k];
    const int owner = owners.empty() ? -1 : owners[k];
    const auto key = std::make_tuple(static_cast<int>(p.scalar_type()), static_cast<int>(p.device().type()),
                                     static_cast<int>(p.device().index()), owner);
    auto it = open.find(key);
    if (it == open.end() ||
        (buckets_[it->second].numel + p.numel()) * p.element_size() > ProcessGroup::kBucketBytes) {
      buckets_.emplace_back();
      buckets_.back().owner = owner;
      it = open.insert_or_assign(key, buckets_.size() - 1).first;
    }
    Bucket& bucket = buckets_[it->second];
    bucket_of_[k] = it->second;
    offset_[k] = static_cast<size_t>(bucket.numel);
    bucket.members.push_back(k);
    bucket.numel += p.numel();
  }
  for (size_t k = 0; k < n; ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(parameters_[k], std::make_unique<ReadyHook>(*this, k));
}

GradientReducer::~GradientReducer() {
  for (const at::Tensor& p : parameters_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradientReducer::arm() {
  if (armed_) fail("GradientReducer: armed twice without finish()");
  armed_ = true;
  next_ = 0;
  ready_.assign(ready_.size(), false);
  for (Bucket& bucket : buckets_) {
    bucket.ready = 0;
    bucket.flat = at::Tensor();
    bucket.started = bucket.released = false;
  }
}

at::Tensor GradientReducer::slot(Bucket& bucket, size_t i) {
  const at::Tensor& p = parameters_[i];
  if (!bucket.flat.defined()) bucket.flat = at::empty({bucket.numel}, p.options());
  return bucket.flat.narrow(0, static_cast<int64_t>(offset_[i]), p.numel()).view(p.sizes());
}

void GradientReducer::gradient_ready(size_t i) {
  if (!armed_) return;
  // A second gradient would land after its bucket may have started: as torch's DDP, refuse.
  if (ready_[i]) fail("data-parallel training: parameter ", i, " received two gradients in one backward pass");
  c10::NoGradGuard no_grad;
  Bucket& bucket = buckets_[bucket_of_[i]];
  slot(bucket, i).copy_(parameters_[i].grad());
  parameters_[i].mutable_grad() = at::Tensor();  // the bucket holds it now
  ready_[i] = true;
  ++bucket.ready;
  start_ready_buckets();
  release_finished_buckets();
}

void GradientReducer::start(Bucket& bucket) {
  bucket.pending = bucket.owner < 0 ? world_.start_sum(bucket.flat) : world_.start_reduce(bucket.flat, bucket.owner);
  bucket.started = true;
}

void GradientReducer::start_ready_buckets() {
  while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].members.size()) start(buckets_[next_++]);
}

void GradientReducer::release_finished_buckets() {
  for (size_t b = 0; b < next_; ++b) {
    Bucket& bucket = buckets_[b];
    if (keeps(bucket) || bucket.released || !bucket.pending.done()) continue;
    bucket.pending.wait();
    bucket.flat = at::Tensor();
    bucket.released = true;
  }
}

void GradientReducer::finish() {
  if (!armed_) fail("GradientReducer: finish() without arm()");
  c10::NoGradGuard no_grad;
  // Gradients that never came: the ones of earlier micro-batches, or zeros.
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (ready_[i]) continue;
    Bucket& bucket = buckets_[bucket_of_[i]];
    at::Tensor target = slot(bucket, i);
    const at::Tensor& grad = parameters_[i].grad();
    if (grad.defined()) {
      target.copy_(grad);
    } else {
      target.zero_();
    }
    parameters_[i].mutable_grad() = at::Tensor();
    ready_[i] = true;
    ++bucket.ready;
  }
  start_ready_buckets();
  armed_ = false;
  const double scale = 1.0 / world_.size();
  for (Bucket& bucket : buckets_) {
    if (!bucket.released) bucket.pending.wait();
    bucket.pending = {};
    if (!keeps(bucket)) {
      bucket.flat = at::Tensor();
      continue;
    }
    if (scale != 1) bucket.flat.mul_(scale);
    for (size_t i : bucket.members) parameters_[i].mutable_grad() = slot(bucket, i);
    bucket.flat = at::Tensor();  // the gradients hold it until the optimizer drops them
  }
}

}  // namespace halo
