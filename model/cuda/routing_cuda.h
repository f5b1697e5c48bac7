#pragma once
// CUDA back-end of model/routing.h. Compiled only when LibTorch itself has CUDA (the CMake
// option detects it and defines BRAINAGE_CUDA_ROUTING); route() then calls route_cuda()
// for tensors on a GPU. The kernels are model/cuda/routing_kernels.cu.
//
// Autograd: scores and weights carry gradients to tokens and bases. Backward of the
// scores runs in CUDA kernels (scores_backward); the [T, k] derivative of the gate
// weights with respect to the selected scores is a few ATen ops on the GPU.
// float32 only on the kernels; other dtypes, or shapes outside the kernel limits
// (E > 64, k > 8, shared memory too small for d), go through route_cpu() and back.
#include "model/routing.h"

namespace brainage::model {

/// route() for CUDA tensors (tokens [T, d], bases [E, d, r] on the same GPU).
RoutingResult route_cuda(const torch::Tensor& tokens, const torch::Tensor& bases, const RoutingOptions& options);

/// dispatch_tokens() on the GPU: a gather kernel; backward sums each token's k rows.
torch::Tensor dispatch_tokens_cuda(const torch::Tensor& tokens, const RoutingResult& routing);

/// combine() on the GPU: deterministic weighted gather-sum through the inverse permutation;
/// differentiable w.r.t. expert_outputs and routing.weights.
torch::Tensor combine_cuda(const torch::Tensor& expert_outputs, const RoutingResult& routing);

}  // namespace brainage::model
