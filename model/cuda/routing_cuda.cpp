// LibTorch glue for the CUDA routing kernels: shape checks, device guard, current stream,
// output allocation, autograd. See routing_cuda.h.
#include "model/cuda/routing_cuda.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/torch.h>

#include "model/cuda/routing_kernels.cuh"
#include "model/routing.h"

namespace brainage::model {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void check_cuda(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, ": ", cudaGetErrorString(err));
}

cuda::RoutingShape shape_of(const Tensor& tokens, const Tensor& bases, int64_t top_k) {
  cuda::RoutingShape shape;
  shape.num_tokens = tokens.size(0);
  shape.dim = tokens.size(1);
  shape.num_experts = bases.size(0);
  shape.rank = bases.size(2);
  shape.top_k = top_k;
  return shape;
}

/// Forward: the two routing launches. Backward: the weights' derivative w.r.t. the
/// selected scores (ATen on the GPU) folded into grad_scores, then the score kernels.
class EigenbasisRouting : public torch::autograd::Function<EigenbasisRouting> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& tokens, const Tensor& bases, int64_t top_k,
                               double top_d_threshold) {
    const auto shape = shape_of(tokens, bases, top_k);
    const auto f32 = tokens.options();
    const auto i64 = tokens.options().dtype(torch::kInt64);
    Tensor scores = torch::empty({shape.num_tokens, shape.num_experts}, f32);  // [T, E]
    Tensor ids = torch::empty({shape.num_tokens, top_k}, i64);                 // [T, k]
    Tensor weights = torch::empty({shape.num_tokens, top_k}, f32);             // [T, k]
    Tensor counts = torch::empty({shape.num_experts}, i64);                    // [E]
    Tensor offsets = torch::empty({shape.num_experts + 1}, i64);               // [E + 1]
    Tensor permutation = torch::empty({shape.num_tokens * top_k}, i64);        // [T * k]
    Tensor workspace = torch::empty({static_cast<int64_t>(cuda::routing_workspace_bytes(shape))},
                                    tokens.options().dtype(torch::kUInt8));
    cuda::RoutingBuffers out;
    out.scores = scores.data_ptr<float>();
    out.expert_ids = ids.data_ptr<int64_t>();
    out.weights = weights.data_ptr<float>();
    out.counts = counts.data_ptr<int64_t>();
    out.offsets = offsets.data_ptr<int64_t>();
    out.permutation = permutation.data_ptr<int64_t>();
    out.workspace = workspace.data_ptr();
    check_cuda(cuda::route_forward(tokens.data_ptr<float>(), bases.data_ptr<float>(), shape, top_d_threshold, out,
                                   at::cuda::getCurrentCUDAStream()),
               "route_cuda: routing kernels");
    ctx->save_for_backward({tokens, bases, scores, ids, weights});
    ctx->saved_data["top_d_threshold"] = top_d_threshold;
    ctx->mark_non_differentiable({ids, counts, offsets, permutation});
    return {scores, weights, ids, counts, offsets, permutation};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor& tokens = saved[0];
    const Tensor& bases = saved[1];
    const Tensor& scores = saved[2];
    const Tensor& ids = saved[3];
    const Tensor& weights = saved[4];
    const double top_d_threshold = ctx->saved_data["top_d_threshold"].toDouble();
    const c10::cuda::CUDAGuard guard(tokens.device());

    Tensor grad_scores = grads[0].defined() ? grads[0].contiguous().clone() : torch::zeros_like(scores);
    if (grads[1].defined()) {
      // w_j = keep_j s_j / S with S = Σ keep s (> 0): dL/ds_m = keep_m (g_m − Σ_j g_j w_j) / S;
      // for S = 0 the weights are constant (equal share), as in the CPU reference.
      const Tensor selected = scores.gather(1, ids);
      // The forward kernel's rule, decided in double (model/routing.h top_d_keep_mask).
      const Tensor keep = top_d_keep_mask(selected, top_d_threshold).to(selected.dtype());
      const Tensor total = (selected * keep).sum(1, /*keepdim=*/true);
      const Tensor g = grads[1];
      Tensor grad_selected = keep * (g - (g * weights).sum(1, true)) / total.clamp_min(1e-30);
      grad_selected = torch::where(total > 0, grad_selected, torch::zeros_like(grad_selected));
      grad_scores.scatter_add_(1, ids, grad_selected);
    }

    const auto shape = shape_of(tokens, bases, ids.size(1));
    Tensor grad_tokens;
    Tensor grad_bases;
    if (ctx->needs_input_grad(0)) grad_tokens = torch::empty_like(tokens);
    if (ctx->needs_input_grad(1)) grad_bases = torch::empty_like(bases);
    if (grad_tokens.defined() || grad_bases.defined()) {
      Tensor workspace = torch::empty({static_cast<int64_t>(cuda::scores_backward_workspace_bytes(shape))},
                                      tokens.options().dtype(torch::kUInt8));
      check_cuda(cuda::scores_backward(tokens.data_ptr<float>(), bases.data_ptr<float>(),
                                       grad_scores.data_ptr<float>(), shape,
                                       grad_tokens.defined() ? grad_tokens.data_ptr<float>() : nullptr,
                                       grad_bases.defined() ? grad_bases.data_ptr<float>() : nullptr,
                                       workspace.data_ptr(), at::cuda::getCurrentCUDAStream()),
                 "route_cuda: scores backward");
    }
    return {grad_tokens, grad_bases, Tensor(), Tensor()};
  }
};

Tensor inverse_of(const Tensor& permutation) {
  Tensor inverse = torch::empty_like(permutation);
  check_cuda(cuda::invert_permutation(permutation.data_ptr<int64_t>(), permutation.numel(),
                                      inverse.data_ptr<int64_t>(), at::cuda::getCurrentCUDAStream()),
             "route_cuda: invert permutation");
  return inverse;
}

class DispatchTokens : public torch::autograd::Function<DispatchTokens> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& tokens, const Tensor& permutation, int64_t top_k) {
    const int64_t num_tokens = tokens.size(0);
    const int64_t dim = tokens.size(1);
    Tensor out = torch::empty({num_tokens * top_k, dim}, tokens.options());  // [T*k, d]
    check_cuda(cuda::gather_rows(tokens.data_ptr<float>(), permutation.data_ptr<int64_t>(), num_tokens, dim, top_k,
                                 out.data_ptr<float>(), at::cuda::getCurrentCUDAStream()),
               "dispatch_tokens_cuda: gather");
    ctx->save_for_backward({permutation});
    ctx->saved_data["num_tokens"] = num_tokens;
    ctx->saved_data["top_k"] = top_k;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Tensor permutation = ctx->get_saved_variables()[0];
    const int64_t num_tokens = ctx->saved_data["num_tokens"].toInt();
    const int64_t top_k = ctx->saved_data["top_k"].toInt();
    const c10::cuda::CUDAGuard guard(permutation.device());
    const Tensor grad_out = grads[0].contiguous();
    const int64_t dim = grad_out.size(1);
    Tensor grad_tokens = torch::empty({num_tokens, dim}, grad_out.options());
    const Tensor inverse = inverse_of(permutation);
    check_cuda(cuda::gather_rows_backward(grad_out.data_ptr<float>(), inverse.data_ptr<int64_t>(), num_tokens, dim,
                                          top_k, grad_tokens.data_ptr<float>(), at::cuda::getCurrentCUDAStream()),
               "dispatch_tokens_cuda: backward");
    return {grad_tokens, Tensor(), Tensor()};
  }
};

class Combine : public torch::autograd::Function<Combine> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& expert_outputs, const Tensor& weights,
                        const Tensor& permutation) {
    const int64_t num_tokens = weights.size(0);
    const int64_t top_k = weights.size(1);
    const int64_t dim = expert_outputs.size(1);
    const Tensor inverse = inverse_of(permutation);
    Tensor out = torch::empty({num_tokens, dim}, expert_outputs.options());  // [T, d]
    check_cuda(cuda::combine(expert_outputs.data_ptr<float>(), weights.data_ptr<float>(), inverse.data_ptr<int64_t>(),
                             num_tokens, dim, top_k, out.data_ptr<float>(), at::cuda::getCurrentCUDAStream()),
               "combine_cuda: combine");
    ctx->save_for_backward({expert_outputs, weights, permutation, inverse});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor& expert_outputs = saved[0];
    const Tensor& weights = saved[1];
    const Tensor& permutation = saved[2];
    const Tensor& inverse = saved[3];
    const c10::cuda::CUDAGuard guard(expert_outputs.device());
    const Tensor grad_out = grads[0].contiguous();
    Tensor grad_outputs;
    Tensor grad_weights;
    if (ctx->needs_input_grad(0)) grad_outputs = torch::empty_like(expert_outputs);
    if (ctx->needs_input_grad(1)) grad_weights = torch::empty_like(weights);
    check_cuda(cuda::combine_backward(grad_out.data_ptr<float>(), expert_outputs.data_ptr<float>(),
                                      weights.data_ptr<float>(), permutation.data_ptr<int64_t>(),
                                      inverse.data_ptr<int64_t>(), weights.size(0), expert_outputs.size(1),
                                      weights.size(1), grad_outputs.defined() ? grad_outputs.data_ptr<float>() : nullptr,
                                      grad_weights.defined() ? grad_weights.data_ptr<float>() : nullptr,
                                      at::cuda::getCurrentCUDAStream()),
               "combine_cuda: backward");
    return {grad_outputs, grad_weights, Tensor()};
  }
};

}  // namespace

RoutingResult route_cuda(const torch::Tensor& tokens, const torch::Tensor& bases, const RoutingOptions& options) {
  TORCH_CHECK(tokens.dim() == 2, "route: expected tokens [T, d], got ", tokens.dim(), "D");
  TORCH_CHECK(bases.dim() == 3, "route: expected bases [E, d, r], got ", bases.dim(), "D");
  TORCH_CHECK(bases.size(1) == tokens.size(1), "route: bases have d = ", bases.size(1), " but tokens have d = ",
              tokens.size(1));
  TORCH_CHECK(tokens.is_cuda() && bases.device() == tokens.device(), "route_cuda: tokens on ", tokens.device(),
              " and bases on ", bases.device(), " must be on the same GPU");
  TORCH_CHECK(bases.scalar_type() == tokens.scalar_type(), "route: tokens are ", tokens.scalar_type(),
              " but bases are ", bases.scalar_type());
  const int64_t k = options.top_k;
  TORCH_CHECK(k >= 1 && k <= bases.size(0), "route: top_k must be in [1, ", bases.size(0), "], got ", k);

  const c10::cuda::CUDAGuard guard(tokens.device());
  const auto shape = shape_of(tokens, bases, k);
  if (tokens.scalar_type() != torch::kFloat32 || cuda::routing_shape_problem(shape) != nullptr)
    return route_cpu_for_device(tokens, bases, options);

  const auto outputs =
      EigenbasisRouting::apply(tokens.contiguous(), bases.contiguous(), k, options.top_d_threshold);
  RoutingResult result;
  result.scores = outputs[0];
  result.weights = outputs[1];
  result.expert_ids = outputs[2];
  result.counts = outputs[3];
  result.offsets = outputs[4];
  result.permutation = outputs[5];
  return result;
}

torch::Tensor dispatch_tokens_cuda(const torch::Tensor& tokens, const RoutingResult& routing) {
  TORCH_CHECK(tokens.is_cuda() && tokens.dim() == 2, "dispatch_tokens_cuda: expected CUDA tokens [T, d], got ",
              tokens.sizes(), " on ", tokens.device());
  if (tokens.scalar_type() != torch::kFloat32) return dispatch_tokens(tokens, routing);
  const c10::cuda::CUDAGuard guard(tokens.device());
  return DispatchTokens::apply(tokens.contiguous(), routing.permutation.contiguous(), routing.expert_ids.size(1));
}

torch::Tensor combine_cuda(const torch::Tensor& expert_outputs, const RoutingResult& routing) {
  const int64_t num_slots = routing.expert_ids.size(0) * routing.expert_ids.size(1);
  TORCH_CHECK(expert_outputs.is_cuda() && expert_outputs.dim() == 2 && expert_outputs.size(0) == num_slots,
              "combine_cuda: expected CUDA expert_outputs [T*k = ", num_slots, ", d], got ", expert_outputs.sizes());
  if (expert_outputs.scalar_type() != torch::kFloat32) return combine(expert_outputs, routing);
  const c10::cuda::CUDAGuard guard(expert_outputs.device());
  return Combine::apply(expert_outputs.contiguous(), routing.weights.to(torch::kFloat32).contiguous(),
                        routing.permutation.contiguous());
}

}  // namespace brainage::model
