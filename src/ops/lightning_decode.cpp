// The fused lightning decode step's entry point (lightning_decode.h): the CUDA kernel's dispatch,
// compiled with HALO_WITH_CUDA_KERNELS in HALO_CUDA builds like every op's entry point, and the
// HALO_LIGHTNING_DECODE switch, read once.
#include "ops/lightning_decode.h"

#ifdef HALO_WITH_CUDA_KERNELS
#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>

#include "halo/error.h"
#include "ops/lightning_decode_cuda.h"
#endif

namespace halo {
namespace {

#ifdef HALO_WITH_CUDA_KERNELS
bool fused_decode_enabled() {
  static const bool fused = [] {
    const char* choice = std::getenv("HALO_LIGHTNING_DECODE");
    if (choice == nullptr || std::strcmp(choice, "fused") == 0) return true;
    if (std::strcmp(choice, "aten") != 0) usage_fail("HALO_LIGHTNING_DECODE must be fused or aten, not '", choice, "'");
    return false;
  }();
  return fused;
}
#endif

}  // namespace

std::optional<at::Tensor> fused_lightning_decode(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                 const at::Tensor& q_norm, const at::Tensor& k_norm, double eps,
                                                 const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& decay,
                                                 double scale, const at::Tensor& state) {
#ifdef HALO_WITH_CUDA_KERNELS
  if (!fused_decode_enabled() || !lightning_decode_cuda_supported(q, k, v, q_norm, k_norm, state, cos))
    return std::nullopt;
  return lightning_decode_cuda(q, k, v, q_norm, k_norm, eps, cos, sin, decay.to(at::kFloat), scale, state);
#else
  (void)q, (void)k, (void)v, (void)q_norm, (void)k_norm, (void)eps, (void)cos, (void)sin, (void)decay, (void)scale,
      (void)state;
  return std::nullopt;
#endif
}

}  // namespace halo
