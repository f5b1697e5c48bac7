#include "model/moe_layers.h"

#include <cmath>
#include <vector>

namespace brainage::model {
namespace {

torch::Tensor uniform(std::vector<int64_t> shape, double bound) {
  return torch::empty(shape).uniform_(-bound, bound);
}

/// Runs `expert(e, rows)` on each expert's contiguous block of the dispatched tokens and
/// concatenates the outputs in the same (expert-grouped) order.
template <typename Fn>
torch::Tensor run_experts(const torch::Tensor& dispatched, const RoutingResult& routing, Fn&& expert) {
  const auto offsets = routing.offsets.cpu();
  const int64_t* o = offsets.data_ptr<int64_t>();
  const int64_t num_experts = offsets.size(0) - 1;
  std::vector<torch::Tensor> outputs;
  outputs.reserve(num_experts);
  for (int64_t e = 0; e < num_experts; ++e) {
    const int64_t count = o[e + 1] - o[e];
    if (count == 0) continue;
    outputs.push_back(expert(e, dispatched.narrow(0, o[e], count)));
  }
  return torch::cat(outputs, 0);
}

}  // namespace

FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t hidden) {
  fc1_ = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2_ = register_module("fc2", torch::nn::Linear(hidden, dim));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) { return fc2_(torch::gelu(fc1_(x))); }

ErmoeLayerImpl::ErmoeLayerImpl(int64_t dim, int64_t num_experts, int64_t rank, int64_t hidden,
                               RoutingOptions routing)
    : routing_(routing) {
  TORCH_CHECK(rank >= 1 && rank <= dim, "ErmoeLayer: expert rank must be in [1, d = ", dim, "], got ", rank);
  TORCH_CHECK(routing.top_k >= 1 && routing.top_k <= num_experts, "ErmoeLayer: top_k must be in [1, ", num_experts,
              "], got ", routing.top_k);
  bases = register_parameter("bases", torch::randn({num_experts, dim, rank}));
  w1 = register_parameter("w1", uniform({num_experts, rank, hidden}, 1.0 / std::sqrt(double(rank))));
  b1 = register_parameter("b1", torch::zeros({num_experts, hidden}));
  w2 = register_parameter("w2", uniform({num_experts, hidden, dim}, 1.0 / std::sqrt(double(hidden))));
  b2 = register_parameter("b2", torch::zeros({num_experts, dim}));
  retract();
}

MoeOutput ErmoeLayerImpl::forward(const torch::Tensor& tokens, int64_t balance_groups) {
  MoeOutput out;
  out.routing = route(tokens, bases, routing_);
  const auto dispatched = dispatch_tokens(tokens, out.routing);
  const auto expert_out = run_experts(dispatched, out.routing, [&](int64_t e, const torch::Tensor& rows) {
    const auto z = rows.matmul(bases[e]);  // the expert's input projection U_eᵀ x: [n, r]
    const auto h = torch::gelu(torch::addmm(b1[e], z, w1[e]));
    return torch::addmm(b2[e], h, w2[e]);
  });
  out.output = combine(expert_out, out.routing);
  // The balancing loss on the scores normalised over the experts; the model weights it
  // by ermoe_balance_weight (0 by default: ERMoE as published, the loss has no effect).
  const auto probs = out.routing.scores / out.routing.scores.sum(-1, true).clamp_min(1e-12);
  out.aux_loss = load_balancing_loss(probs, out.routing, balance_groups);
  return out;
}

void ErmoeLayerImpl::retract() {
  torch::NoGradGuard no_grad;
  auto [q, r] = torch::linalg_qr(bases.detach(), "reduced");
  // Fix the signs so the retraction is continuous (diag(R) > 0): Q * sign(diag R).
  auto sign = torch::sign(torch::diagonal(r, 0, -2, -1));
  sign = torch::where(sign == 0, torch::ones_like(sign), sign);
  bases.copy_(q * sign.unsqueeze(-2));
}

double ErmoeLayerImpl::orthonormality_error() const {
  torch::NoGradGuard no_grad;
  const auto u = bases.detach().to(torch::kFloat64);
  const auto gram = u.transpose(1, 2).matmul(u);
  const auto eye = torch::eye(u.size(2), u.options()).expand_as(gram);
  return (gram - eye).abs().max().item<double>();
}

SoftmaxMoeLayerImpl::SoftmaxMoeLayerImpl(int64_t dim, int64_t num_experts, int64_t hidden, RoutingOptions routing)
    : routing_(routing) {
  TORCH_CHECK(routing.top_k >= 1 && routing.top_k <= num_experts, "SoftmaxMoeLayer: top_k must be in [1, ",
              num_experts, "], got ", routing.top_k);
  router = register_module("router", torch::nn::Linear(dim, num_experts));
  w1 = register_parameter("w1", uniform({num_experts, dim, hidden}, 1.0 / std::sqrt(double(dim))));
  b1 = register_parameter("b1", torch::zeros({num_experts, hidden}));
  w2 = register_parameter("w2", uniform({num_experts, hidden, dim}, 1.0 / std::sqrt(double(hidden))));
  b2 = register_parameter("b2", torch::zeros({num_experts, dim}));
}

MoeOutput SoftmaxMoeLayerImpl::forward(const torch::Tensor& tokens, int64_t balance_groups) {
  MoeOutput out;
  const auto probs = torch::softmax(router(tokens), -1);
  out.routing = tokens.is_cuda() ? route_from_scores(probs.cpu(), routing_) : route_from_scores(probs, routing_);
  if (tokens.is_cuda()) {
    auto& r = out.routing;
    r.scores = probs;
    r.weights = r.weights.to(tokens.device());
    r.expert_ids = r.expert_ids.to(tokens.device());
    r.permutation = r.permutation.to(tokens.device());
  }
  const auto dispatched = dispatch_tokens(tokens, out.routing);
  const auto expert_out = run_experts(dispatched, out.routing, [&](int64_t e, const torch::Tensor& rows) {
    const auto h = torch::gelu(torch::addmm(b1[e], rows, w1[e]));
    return torch::addmm(b2[e], h, w2[e]);
  });
  out.output = combine(expert_out, out.routing);
  out.aux_loss = load_balancing_loss(probs, out.routing, balance_groups);
  return out;
}

torch::Tensor load_balancing_loss(const torch::Tensor& probs, const RoutingResult& routing, int64_t groups) {
  const int64_t num_experts = probs.size(1), tokens = probs.size(0);
  TORCH_CHECK(groups >= 1 && tokens % groups == 0, "load_balancing_loss: ", groups, " groups do not divide ", tokens,
              " tokens");
  const auto ids = routing.expert_ids.to(probs.device());  // [T, k]
  const auto slots = torch::one_hot(ids, num_experts).sum(1).to(probs.scalar_type());  // [T, E] slots per token
  const auto fraction = slots.view({groups, tokens / groups, num_experts}).mean(1) / ids.size(1);  // f_g,e
  const auto mean_prob = probs.view({groups, tokens / groups, num_experts}).mean(1);                // P_g,e
  return static_cast<double>(num_experts) * (fraction * mean_prob).sum(-1).mean();
}

}  // namespace brainage::model
