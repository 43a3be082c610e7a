// Data-parallel gradient reduction that overlaps the backward pass, as torch's DDP Reducer.
// The parameters go into buckets (at most ProcessGroup::kBucketBytes, one dtype and device each)
// in reverse order, the order in which backward produces their gradients. A post-accumulate-grad
// hook on each parameter copies its gradient into its bucket during the backward of the step's
// last micro-batch (arm()), and a bucket whose gradients are all in starts its collective at
// once, while backward goes on. Buckets start in index order, the same on every rank, whatever
// order their gradients come in. finish() fills the gradients that never came (zeros, as DDP's
// unused parameters), waits, and gives each parameter its averaged gradient as a view into its
// bucket (no copy back).
//
// ZeRO-2 (owners given): a bucket holds one owner's parameters and is summed into the owner's
// copy only (a reduce, half the traffic of an all-reduce). The other ranks drop a parameter's
// gradient as soon as it is in the bucket and the bucket once its reduce is done, so that after
// the backward a rank keeps gradients only for the parameters it updates.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "halo/process_group.h"

namespace halo {

class GradientReducer {
 public:
  // owners empty: every rank gets every averaged gradient (all-reduce); else owners[i] is the
  // rank that gets parameter i's averaged gradient (ZeRO-2).
  GradientReducer(std::vector<at::Tensor> parameters, std::vector<int> owners, ProcessGroup& world);
  ~GradientReducer();  // takes the hooks off the parameters
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The next backward is the step's last: its gradients go to the buckets as they come.
  void arm();
  // After that backward: the rest of the collectives, then every parameter's averaged gradient
  // (an undefined gradient for another owner's parameter under ZeRO-2).
  void finish();

  // Called by the hook on parameter i once its gradient is accumulated.
  void gradient_ready(size_t i);

 private:
  struct Bucket {
    std::vector<size_t> members;  // parameter indices, in the order they sit in `flat`
    int64_t numel = 0;
    int owner = -1;  // -1: all-reduce
    size_t ready = 0;
    at::Tensor flat;  // allocated at the first gradient of the step
    PendingCollective pending;
    bool started = false, released = false;
  };
  void start_ready_buckets();
  void start(Bucket& bucket);
  void release_finished_buckets();
  at::Tensor slot(Bucket& bucket, size_t i);
  bool keeps(const Bucket& bucket) const { return bucket.owner < 0 || bucket.owner == world_.rank(); }

  std::vector<at::Tensor> parameters_;
  ProcessGroup& world_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_, offset_;
  std::vector<bool> ready_;
  size_t next_ = 0;  // the first bucket not started
  bool armed_ = false;
};

}  // namespace halo
