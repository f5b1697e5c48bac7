// route(): the device dispatch, plus the back-end independent dispatch/combine helpers.
#include "model/routing.h"

#if defined(BRAINAGE_CUDA_ROUTING)
#include "model/cuda/routing_cuda.h"
#endif

namespace brainage::model {

RoutingResult route_cpu_for_device(const torch::Tensor& tokens, const torch::Tensor& bases,
                                   const RoutingOptions& options) {
  auto result = route_cpu(tokens.cpu(), bases.cpu(), options);
  const auto device = tokens.device();
  for (torch::Tensor* t : {&result.scores, &result.weights, &result.expert_ids, &result.counts, &result.offsets,
                           &result.permutation})
    *t = t->to(device);
  return result;
}

RoutingResult route(const torch::Tensor& tokens, const torch::Tensor& bases, const RoutingOptions& options) {
  if (tokens.is_cuda()) {
#if defined(BRAINAGE_CUDA_ROUTING)
    return route_cuda(tokens, bases, options);
#else
    // No kernels compiled: route on the CPU and bring the result back to the device.
    return route_cpu_for_device(tokens, bases, options);
#endif
  }
  return route_cpu(tokens, bases, options);
}

torch::Tensor top_d_keep_mask(const torch::Tensor& selected_scores, double top_d_threshold) {
  TORCH_CHECK(selected_scores.dim() == 2, "top_d_keep_mask: expected selected scores [T, k], got ",
              selected_scores.dim(), "D");
  auto keep = selected_scores.detach().to(torch::kFloat64).ge(top_d_threshold);
  if (keep.size(1) > 0) keep.select(1, 0).fill_(true);
  return keep;
}

torch::Tensor dispatch_tokens(const torch::Tensor& tokens, const RoutingResult& routing) {
  const int64_t k = routing.expert_ids.size(1);
  return tokens.index_select(0, torch::div(routing.permutation, k, "floor"));
}

torch::Tensor combine(const torch::Tensor& expert_outputs, const RoutingResult& routing) {
  const int64_t num_tokens = routing.expert_ids.size(0);
  const int64_t k = routing.expert_ids.size(1);
  TORCH_CHECK(expert_outputs.dim() == 2 && expert_outputs.size(0) == num_tokens * k,
              "combine: expected expert_outputs [T*k = ", num_tokens * k, ", d], got ", expert_outputs.sizes());
  // Row i holds slot permutation[i] = t*k + j: scale it by weights[t, j] and add it to
  // token t (index_add_ is deterministic on the CPU; its backward is an index_select).
  const auto row_weights = routing.weights.reshape({-1}).index_select(0, routing.permutation).to(expert_outputs.dtype());
  const auto row_tokens = torch::div(routing.permutation, k, "floor");
  return torch::zeros({num_tokens, expert_outputs.size(1)}, expert_outputs.options())
      .index_add(0, row_tokens, expert_outputs * row_weights.unsqueeze(1));
}

}  // namespace brainage::model
