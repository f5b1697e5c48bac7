// CPU reference of Eigenbasis routing (model/routing.h): ATen for the differentiable
// scores and weights, plain loops for the selection, counts, prefix sum and permutation.
#include <algorithm>
#include <numeric>
#include <vector>

#include "model/routing.h"

namespace brainage::model {
namespace {

/// Top-k of one row, best first, ties -> lower index (a stable partial sort on -score).
template <typename scalar_t>
void select_top_k(const scalar_t* row, int64_t num_experts, int64_t k, std::vector<int64_t>& order,
                  int64_t* out) {
  std::iota(order.begin(), order.end(), int64_t{0});
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [row](int64_t a, int64_t b) {
    return row[a] > row[b] || (row[a] == row[b] && a < b);
  });
  std::copy(order.begin(), order.begin() + k, out);
}

}  // namespace

RoutingResult route_from_scores(const torch::Tensor& scores, const RoutingOptions& options) {
  TORCH_CHECK(scores.dim() == 2, "route_from_scores: expected scores [T, E], got ", scores.dim(), "D");
  TORCH_CHECK(scores.device().is_cpu(), "route_from_scores: the CPU reference needs CPU tensors");
  const int64_t num_tokens = scores.size(0);
  const int64_t num_experts = scores.size(1);
  const int64_t k = options.top_k;
  TORCH_CHECK(k >= 1 && k <= num_experts, "route: top_k must be in [1, ", num_experts, "], got ", k);

  RoutingResult result;
  result.scores = scores;
  const auto plain = scores.detach().contiguous();
  auto ids = torch::empty({num_tokens, k}, torch::kInt64);
  int64_t* id_ptr = ids.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(plain.scalar_type(), "route_select", [&] {
    const scalar_t* s = plain.data_ptr<scalar_t>();
    std::vector<int64_t> order(num_experts);
    for (int64_t t = 0; t < num_tokens; ++t) select_top_k(s + t * num_experts, num_experts, k, order, id_ptr + t * k);
  });
  result.expert_ids = ids;
  const auto keep = top_d_keep_mask(plain.gather(1, ids), options.top_d_threshold).to(scores.scalar_type());

  // Gate weights: kept selected scores normalised to sum 1 (differentiable via gather).
  const auto selected = scores.gather(1, ids) * keep;
  const auto total = selected.sum(1, /*keepdim=*/true);
  const auto kept_count = keep.sum(1, true);
  const auto all_zero = (total.detach() <= 0);
  result.weights = torch::where(all_zero, keep / kept_count, selected / total.clamp_min(1e-30));

  // Counting sort of the T*k slots by expert: counts, exclusive prefix sum, stable permutation.
  auto counts = torch::zeros({num_experts}, torch::kInt64);
  int64_t* c = counts.data_ptr<int64_t>();
  const int64_t num_slots = num_tokens * k;
  for (int64_t s = 0; s < num_slots; ++s) ++c[id_ptr[s]];
  auto offsets = torch::zeros({num_experts + 1}, torch::kInt64);
  int64_t* o = offsets.data_ptr<int64_t>();
  for (int64_t e = 0; e < num_experts; ++e) o[e + 1] = o[e] + c[e];
  auto permutation = torch::empty({num_slots}, torch::kInt64);
  int64_t* p = permutation.data_ptr<int64_t>();
  std::vector<int64_t> cursor(o, o + num_experts);
  for (int64_t s = 0; s < num_slots; ++s) p[cursor[id_ptr[s]]++] = s;
  result.counts = counts;
  result.offsets = offsets;
  result.permutation = permutation;
  return result;
}

RoutingResult route_cpu(const torch::Tensor& tokens, const torch::Tensor& bases, const RoutingOptions& options) {
  TORCH_CHECK(tokens.dim() == 2, "route: expected tokens [T, d], got ", tokens.dim(), "D");
  TORCH_CHECK(bases.dim() == 3, "route: expected bases [E, d, r], got ", bases.dim(), "D");
  TORCH_CHECK(bases.size(1) == tokens.size(1), "route: bases have d = ", bases.size(1), " but tokens have d = ",
              tokens.size(1));
  TORCH_CHECK(tokens.device().is_cpu() && bases.device().is_cpu(), "route_cpu: tensors must be on the CPU");
  const int64_t num_experts = bases.size(0);
  // proj[e, t, i] = (U_eᵀ x_t)_i as one batched product [E,T,d] x [E,d,r]: every expert
  // goes through the same GEMM, so equal bases give bit-equal scores and exact ties (one
  // [T,d] x [d,E*r] product splits the experts over different BLAS tiles, which may not).
  const auto proj = tokens.unsqueeze(0).expand({num_experts, tokens.size(0), tokens.size(1)}).bmm(bases);
  const auto proj_norm = proj.pow(2).sum(-1).clamp_min(1e-30).sqrt().t();  // [T, E]
  const auto token_sq = tokens.pow(2).sum(-1, true);                     // [T, 1]
  // A zero token scores 0 against every expert (as the CUDA kernels do), not 1e-15/1e-15.
  const auto scores =
      torch::where(token_sq > 0, proj_norm / token_sq.clamp_min(1e-30).sqrt(), torch::zeros_like(proj_norm));
  return route_from_scores(scores, options);
}

}  // namespace brainage::model
