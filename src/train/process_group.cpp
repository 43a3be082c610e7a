// ProcessGroup (see process_group.h) over c10d: a TCPStore for the rendezvous, a
// ProcessGroupGloo backend and, where built with NCCL (HALO_WITH_NCCL, and torch's
// USE_C10D_NCCL), a ProcessGroupNCCL for CUDA tensors. Gloo's headers come from Debian's libgloo-dev and NCCL's from the torch wheel's
// nvidia-nccl package (the wheel ships both libraries' code, not their headers); this is the one
// file that includes them. Every c10d failure becomes a one-line halo::Error that names the rank
// and what the others should do.
#include "halo/process_group.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(HALO_WITH_NCCL) && defined(USE_C10D_NCCL)
#define HALO_NCCL 1
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>

#include "halo/error.h"

namespace halo {
namespace {

// How long a collective (a barrier included) may wait for the other ranks: HALO_DISTRIBUTED_TIMEOUT_S,
// else `fallback`. Rank 0 alone runs the evaluation stages while the others wait at a Gloo
// barrier, so Gloo's is long; a rank that dies is noticed at once through its closed sockets,
// not after the timeout. NCCL's (only training steps) is torch's default, 10 minutes.
std::chrono::milliseconds collective_timeout(std::chrono::milliseconds fallback) {
  const char* text = std::getenv("HALO_DISTRIBUTED_TIMEOUT_S");
  if (text == nullptr) return fallback;
  char* end = nullptr;
  const long long seconds = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || seconds < 1 || seconds > 30LL * 24 * 3600) {
    usage_fail("HALO_DISTRIBUTED_TIMEOUT_S='", text, "' must be a whole number of seconds from 1 to 2592000 (30 days)");
  }
  return std::chrono::seconds(seconds);
}

// The variable's value as an integer in [lo, hi]; fails naming it.
int integer_variable(const char* name, int lo, int hi) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') {
    usage_fail(name, " is not set, but other torchrun variables are (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, "
               "MASTER_PORT); launch with torchrun or set all five");
  }
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < lo || value > hi) {
    usage_fail(name, "='", text, "' must be an integer from ", lo, " to ", hi);
  }
  return static_cast<int>(value);
}

[[noreturn]] void collective_failed(int rank, const char* what, const std::exception& e) {
  std::string why = e.what();
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) why = c10_error->what_without_backtrace();
  fail("rank ", rank, ": ", what, " with the other ranks failed (", why.substr(0, why.find('\n')),
       "); another rank has probably stopped; run the same command again to resume from the last checkpoint");
}

}  // namespace

struct ProcessGroup::Backend {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  c10::intrusive_ptr<c10d::Backend> nccl;  // null: Gloo reduces CUDA tensors too

  c10d::Backend& for_tensor(const at::Tensor& t) const {
    if (t.is_cuda() && nccl) return *nccl;
    return *gloo;
  }
};

LaunchEnvironment launch_environment() {
  LaunchEnvironment launch;
  const char* names[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"};
  bool any = false;
  for (const char* name : names) any |= std::getenv(name) != nullptr;
  if (!any) return launch;
  launch.world_size = integer_variable("WORLD_SIZE", 1, 65536);
  launch.rank = integer_variable("RANK", 0, launch.world_size - 1);
  launch.local_rank = integer_variable("LOCAL_RANK", 0, launch.world_size - 1);
  launch.master_port = integer_variable("MASTER_PORT", 1, 65535);
  const char* addr = std::getenv("MASTER_ADDR");
  if (addr == nullptr || *addr == '\0') usage_fail("MASTER_ADDR is not set; launch with torchrun or set it");
  launch.master_addr = addr;
  return launch;
}

ProcessGroup& ProcessGroup::world() {
  static ProcessGroup group;
  return group;
}

void ProcessGroup::init(const LaunchEnvironment& launch) {
  if (backend_) fail("the process group is already set up");
  rank_ = launch.rank;
  local_rank_ = launch.local_rank;
  if (launch.master_addr.empty()) return;  // not launched by torchrun: one process
  // Bad values fail before the rendezvous.
  const std::chrono::milliseconds gloo_timeout = collective_timeout(std::chrono::hours(4));
  const std::chrono::milliseconds nccl_timeout = collective_timeout(std::chrono::minutes(10));
  auto backend = std::make_shared<Backend>();
  try {
    // torchrun's agent serves the store itself (TORCHELASTIC_USE_AGENT_STORE): every rank is a
    // client under the attempt's prefix, as torch.distributed's env:// does. Otherwise rank 0
    // serves it.
    const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    const bool agent = agent_store != nullptr && std::string(agent_store) == "True";
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(launch.master_port);
    options.isServer = !agent && launch.rank == 0;
    options.numWorkers = launch.world_size;
    options.waitWorkers = !agent;
    options.timeout = std::chrono::minutes(5);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, options);
    if (agent) {
      const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
      backend->store = c10::make_intrusive<c10d::PrefixStore>(cat("/worker/attempt_", attempt ? attempt : "0"), tcp);
    } else {
      backend->store = tcp;
    }
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(gloo_timeout);
    gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    backend->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo", backend->store), launch.rank, launch.world_size, gloo_options);
#ifdef HALO_NCCL
    if (at::hasCUDA() && at::getNumGPUs() > 0) {  // every rank alike, whatever its device
      if (launch.local_rank < static_cast<int>(at::getNumGPUs()))
        c10::cuda::set_device(static_cast<c10::DeviceIndex>(launch.local_rank));
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = nccl_timeout;
      backend->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl", backend->store), launch.rank, launch.world_size,
          nccl_options);
    }
#else
    (void)nccl_timeout;
#endif
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    collective_failed(launch.rank,
                      cat("meeting at ", launch.master_addr, ":", launch.master_port, " (MASTER_ADDR:MASTER_PORT)").c_str(),
                      e);
  }
  backend_ = std::move(backend);
  size_ = launch.world_size;
}

std::string ProcessGroup::cuda_backend_name() const {
  if (!backend_) return "none";
  return backend_->nccl ? "nccl" : "gloo";
}

namespace {

// Runs `collective` (which starts a c10d operation on one flat tensor) on buckets of `tensors`:
// one dtype and device each, at most ProcessGroup::kBucketBytes, all in flight together; then
// copies each bucket back into its tensors.
template <class Collective>
void in_buckets(std::vector<at::Tensor>& tensors, int rank, const char* what, Collective collective) {
  struct Bucket {
    std::vector<size_t> members;
    int64_t bytes = 0;
    at::Tensor flat;
  };
  std::vector<Bucket> buckets;
  std::map<std::tuple<int, int, int>, size_t> open;  // (dtype, device) -> the bucket being filled
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    const auto key = std::make_tuple(static_cast<int>(t.scalar_type()), static_cast<int>(t.device().type()),
                                     static_cast<int>(t.device().index()));
    auto it = open.find(key);
    if (it == open.end() ||
        buckets[it->second].bytes + static_cast<int64_t>(t.nbytes()) > ProcessGroup::kBucketBytes) {
      buckets.emplace_back();
      it = open.insert_or_assign(key, buckets.size() - 1).first;
    }
    buckets[it->second].members.push_back(i);
    buckets[it->second].bytes += static_cast<int64_t>(t.nbytes());
  }
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  try {
    for (Bucket& bucket : buckets) {
      std::vector<at::Tensor> pieces;
      for (size_t i : bucket.members) pieces.push_back(tensors[i].reshape({-1}));
      bucket.flat = at::cat(pieces);
      works.push_back(collective(bucket.flat));
    }
    for (auto& work : works) work->wait();
  } catch (const std::exception& e) {
    collective_failed(rank, what, e);
  }
  for (Bucket& bucket : buckets) {
    int64_t offset = 0;
    for (size_t i : bucket.members) {
      const int64_t n = tensors[i].numel();
      tensors[i].copy_(bucket.flat.narrow(0, offset, n).view(tensors[i].sizes()));
      offset += n;
    }
  }
}

}  // namespace

void ProcessGroup::all_reduce_sum(std::vector<at::Tensor>& tensors) {
  if (!backend_) return;
  in_buckets(tensors, rank_, "summing", [&](at::Tensor& flat) {
    std::vector<at::Tensor> arg{flat};
    return backend_->for_tensor(flat).allreduce(arg);
  });
}

void ProcessGroup::broadcast(std::vector<at::Tensor>& tensors, int root) {
  if (!backend_) return;
  in_buckets(tensors, rank_, "sending parameters", [&](at::Tensor& flat) {
    std::vector<at::Tensor> arg{flat};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    return backend_->for_tensor(flat).broadcast(arg, options);
  });
}

namespace {
PendingCollective pending(c10::intrusive_ptr<c10d::Work> work, int rank, const char* what) {
  return {[work] { return work->isCompleted(); },
          [work, rank, what] {
            try {
              work->wait();
            } catch (const std::exception& e) {
              collective_failed(rank, what, e);
            }
          }};
}
}  // namespace

PendingCollective ProcessGroup::start_sum(const at::Tensor& flat) {
  if (!backend_) fail("start_sum: the process group is not set up");
  std::vector<at::Tensor> arg{flat};
  try {
    return pending(backend_->for_tensor(flat).allreduce(arg), rank_, "averaging gradients");
  } catch (const std::exception& e) {
    collective_failed(rank_, "averaging gradients", e);
  }
}

PendingCollective ProcessGroup::start_reduce(const at::Tensor& flat, int root) {
  if (!backend_) fail("start_reduce: the process group is not set up");
  std::vector<at::Tensor> arg{flat};
  c10d::ReduceOptions options;
  options.rootRank = root;
  try {
    return pending(backend_->for_tensor(flat).reduce(arg, options), rank_, "reducing gradients");
  } catch (const std::exception& e) {
    collective_failed(rank_, "reducing gradients", e);
  }
}

std::vector<double> ProcessGroup::max(const std::vector<double>& values) {
  if (!backend_ || values.empty()) return values;
  std::vector<at::Tensor> arg{at::tensor(at::ArrayRef<double>(values), at::kDouble)};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::MAX;
  try {
    backend_->gloo->allreduce(arg, options)->wait();
  } catch (const std::exception& e) {
    collective_failed(rank_, "a reduction", e);
  }
  const double* maxima = arg[0].data_ptr<double>();
  return {maxima, maxima + values.size()};
}

void ProcessGroup::barrier() {
  if (!backend_) return;
  try {
    backend_->gloo->barrier()->wait();
  } catch (const std::exception& e) {
    collective_failed(rank_, "waiting at a barrier", e);
  }
}

void ProcessGroup::shutdown(bool clean) {
  if (!backend_) return;
  try {
    if (backend_->nccl) {
      if (clean) {
        backend_->nccl->shutdown();
      } else {
        backend_->nccl->abort();
      }
    }
  } catch (const std::exception&) {  // exiting anyway
  }
  backend_.reset();
  size_ = 1;
}

}  // namespace halo
