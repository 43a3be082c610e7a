// Data parallelism across processes on PyTorch's own distributed engine (c10d, shipped in the
// torch wheel), launched by torchrun:
//   torchrun --no-python --nproc-per-node N build/bin/halo run X.yaml
// torchrun's env:// rendezvous sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
// ProcessGroup::init reads them, meets the other ranks through a c10d::TCPStore on
// MASTER_ADDR:MASTER_PORT (rank 0 serves it) and opens two backends, as torch's
// "cpu:gloo,cuda:nccl": ProcessGroupGloo for CPU tensors, barriers and numbers, and
// ProcessGroupNCCL for CUDA tensors (builds with NCCL's headers; without them Gloo reduces CUDA
// tensors too). Under torchrun each rank's current GPU is its LOCAL_RANK. Without those
// variables halo is one process, rank 0 of 1, and nothing here communicates; torchrun with one
// rank sets the group up all the same (so that `halo bench training` measures the overhead of
// the data-parallel machinery). One world per process: the trainer averages gradients over it,
// rank 0 alone writes logs, checkpoints and models, and the others wait at barriers.
// A rank that dies makes the others' next Gloo collective fail (its sockets close); NCCL does not
// notice a lost peer by itself: torchrun stops the other ranks when one fails, and NCCL's
// watchdog ends a collective stuck longer than its timeout (HALO_DISTRIBUTED_TIMEOUT_S, default
// 10 minutes for NCCL, 4 hours for Gloo, whose barriers wait while rank 0 evaluates).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
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

// One collective in flight (ProcessGroup::start_*): done() asks without waiting, wait() waits
// (for a CUDA tensor: until the current stream is ordered after it) and turns a failure into a
// one-line halo::Error.
struct PendingCollective {
  std::function<bool()> done;
  std::function<void()> wait;
};

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
  // Launched by torchrun (any world size): collectives run, through the backends.
  bool distributed() const { return backend_ != nullptr; }
  // The backend that reduces CUDA tensors: "nccl" or "gloo"; "none" for one process.
  std::string cuda_backend_name() const;

  // Sums the tensors over the ranks, in place: flattened into buckets of one dtype and device
  // (at most kBucketBytes each), one all-reduce per bucket, all in flight together.
  void all_reduce_sum(std::vector<at::Tensor>& tensors);
  // Sends tensors from rank `root` to every rank, in place (flattened in buckets as above).
  void broadcast(std::vector<at::Tensor>& tensors, int root);
  // Starts summing one flat tensor over the ranks, in place.
  PendingCollective start_sum(const at::Tensor& flat);
  // Starts summing one flat tensor into rank `root`'s copy (the others' copies are left as they
  // were or clobbered: only root's is meaningful after wait()).
  PendingCollective start_reduce(const at::Tensor& flat, int root);
  // The largest of each number over the ranks (one collective).
  std::vector<double> max(const std::vector<double>& values);
  // Every rank waits here until all have arrived.
  void barrier();
  // Closes the backends (torch's destroy_process_group), before the process exits: NCCL's
  // cannot be torn down once the CUDA driver unloads at static destruction. `clean` false (after
  // an error): aborts NCCL's communicators instead of waiting on them. Never throws.
  void shutdown(bool clean);

  static constexpr int64_t kBucketBytes = int64_t{25} << 20;

 private:
  ProcessGroup() = default;
  struct Backend;
  std::shared_ptr<Backend> backend_;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

}  // namespace halo
