// The error measure of the GPU-against-CPU tests: ||got - want|| / ||want||, both moved to the
// CPU in float64 (a test failure when the shapes differ).
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace halo::test {

inline double relative_error(const at::Tensor& got, const at::Tensor& want) {
  at::Tensor g = got.to(at::kCPU).to(at::kDouble), w = want.to(at::kCPU).to(at::kDouble);
  EXPECT_EQ(g.sizes(), w.sizes());
  return ((g - w).norm() / w.norm()).item<double>();
}

}  // namespace halo::test
