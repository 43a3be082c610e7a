// CUDA kernels of the lm-head losses (lm_losses_cuda.cu, built with HALO_CUDA=ON only): one
// pass per row of float32 logits [n, V] gives the row's loss from online-softmax statistics, and
// a second pass writes dLoss_row/dlogits in the model's dtype (float32, bfloat16 or float16), so
// lm_losses.cpp pushes the gradient through the lm head without any other [n, V] pass. Rows must
// be contiguous; all run on the current CUDA stream.
#pragma once
#include <ATen/core/Tensor.h>

namespace halo {

// Whether the row kernels take these logits (CUDA, float32, contiguous [n, V]).
bool lm_losses_cuda_supported(const at::Tensor& logits);

// Per row i: KL(softmax(teacher_i) || softmax(student_i)) as float32 [n]. With `grad` defined
// ([n, V]), grad_i <- softmax(student_i) - softmax(teacher_i).
at::Tensor kl_divergence_rows_cuda(const at::Tensor& student, const at::Tensor& teacher, const at::Tensor& grad);

// Per row i: logsumexp(logits_i) - logits_i[targets_i] as float32 [n], 0 where targets_i < 0.
// With `grad` defined, grad_i <- softmax(logits_i) - onehot(targets_i) (zeros where ignored).
at::Tensor cross_entropy_rows_cuda(const at::Tensor& logits, const at::Tensor& targets, const at::Tensor& grad);

// acc += a^T b through cuBLAS with float32 accumulation into float32 acc [m, k]: a [n, m] and
// b [n, k] contiguous, one dtype (bfloat16, float16 or float32). No extra pass over acc.
void add_transposed_product_cuda(const at::Tensor& acc, const at::Tensor& a, const at::Tensor& b);

}  // namespace halo
