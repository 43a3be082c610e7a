// Data parallelism across processes on PyTorch's own distributed engine (c10d, shipped in the
// torch wheel), launched by torchrun:
//   torchrun --no-python --nproc-per-node N build/bin/halo run X.yaml
// torchrun's env:// rendezvous sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
// ProcessGroup::init reads them, meets the other ranks through a c10d::TCPStore on
// MASTER_ADDR:MASTER_PORT (rank 0 serves it) and opens a Gloo backend (ProcessGroupGloo; it
// reduces CPU and CUDA tensors). Without those variables halo is one process, rank 0 of 1, and
// nothing here communicates. One world per process: the trainer averages gradients over it,
// rank 0 alone writes logs, checkpoints and models, and the others wait at barriers.
// A rank that dies makes the others' next collective fail (its sockets close), so a job never
// hangs on a lost peer longer than the collective timeout.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

namespace halo {

// What torchrun put in the environment; world_size 1 when it put nothing.
struct LaunchEnvironment {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 0;
};
// Reads the five variables; all absent: one process. Some set and others not, or a value that
// is not a number in range: a one-line error naming the variable.
LaunchEnvironment launch_environment();

class ProcessGroup {
 public:
  // The process's world: rank 0 of 1 until init() met the other ranks.
  static ProcessGroup& world();

  // Meets the ranks torchrun started (launch_environment); a no-op for one process. Fails
  // with a one-line error when the rendezvous or the backend cannot be set up in time.
  void init(const LaunchEnvironment& launch);

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  bool is_main() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }

  // Averages the tensors over the ranks, in place: flattened into buckets of one dtype and
  // device (at most kBucketBytes each), one all-reduce per bucket, all in flight together.
  void all_reduce_mean(std::vector<at::Tensor>& tensors);
  // Sums the tensors over the ranks, in place, the same way.
  void all_reduce_sum(std::vector<at::Tensor>& tensors);
  // Sends tensors from rank `root` to every rank, in place (flattened in buckets as above).
  void broadcast(std::vector<at::Tensor>& tensors, int root);
  // The largest of one number over the ranks.
  double max(double value);
  // Every rank waits here until all have arrived.
  void barrier();

  static constexpr int64_t kBucketBytes = int64_t{25} << 20;

 private:
  ProcessGroup() = default;
  struct Backend;
  std::shared_ptr<Backend> backend_;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

}  // namespace halo
