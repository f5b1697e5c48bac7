#pragma once
// The feed-forward sub-layers of a transformer block:
//   FeedForward      dense baseline: Linear(d,h) -> GELU -> Linear(h,d)
//   ErmoeLayer       ERMoE: E experts with orthonormal bases U_e (d x r). Eigenbasis Score
//                    routing (model/routing.h), expert e computes
//                      y = W2_e GELU(W1_e (U_eᵀ x) + b1_e) + b2_e   (U_eᵀ: its input projection)
//                    outputs combined with the gate weights; aux_loss = the load-balancing
//                    loss below on the scores normalised over the experts (used only
//                    when ModelOptions::ermoe_balance_weight > 0).
//   SoftmaxMoeLayer  baseline: router logits W_r x, softmax, top-k; FFN experts d->h->d;
//                    Switch/GShard load-balancing loss  E * Σ_e f_e P_e  with
//                    f_e = counts_e / (T*k) (fraction of slots) and P_e = mean_t p_t,e.
#include <torch/torch.h>

#include "model/routing.h"

namespace brainage::model {

class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);  // [..., d] -> [..., d]

 private:
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(FeedForward);

struct MoeOutput {
  torch::Tensor output;   // [T, d]
  RoutingResult routing;  // as returned by the router (scores carry autograd)
  torch::Tensor aux_loss; // scalar, unweighted load-balancing loss (1 at perfect balance)
};

class ErmoeLayerImpl : public torch::nn::Module {
 public:
  ErmoeLayerImpl(int64_t dim, int64_t num_experts, int64_t rank, int64_t hidden, RoutingOptions routing);
  /// tokens [T, d] (flatten the batch first); `balance_groups` G: the tokens are G equal
  /// consecutive groups (scans) and aux_loss is the groups' mean (load_balancing_loss).
  MoeOutput forward(const torch::Tensor& tokens, int64_t balance_groups = 1);

  /// QR retraction of every U_e to orthonormal columns (signs fixed so diag(R) > 0), in
  /// place and outside autograd. Call after each optimiser step.
  void retract();
  /// max_e ||U_eᵀU_e − I||_max.
  double orthonormality_error() const;

  torch::Tensor bases;  // [E, d, r] parameter
  torch::Tensor w1, b1; // [E, r, h], [E, h]
  torch::Tensor w2, b2; // [E, h, d], [E, d]
  const RoutingOptions& routing_options() const { return routing_; }

 private:
  RoutingOptions routing_;
};
TORCH_MODULE(ErmoeLayer);

class SoftmaxMoeLayerImpl : public torch::nn::Module {
 public:
  SoftmaxMoeLayerImpl(int64_t dim, int64_t num_experts, int64_t hidden, RoutingOptions routing);
  /// tokens [T, d]; `balance_groups` as in ErmoeLayer::forward.
  MoeOutput forward(const torch::Tensor& tokens, int64_t balance_groups = 1);

  torch::nn::Linear router{nullptr};  // d -> E
  torch::Tensor w1, b1;  // [E, d, h], [E, h]
  torch::Tensor w2, b2;  // [E, h, d], [E, d]

 private:
  RoutingOptions routing_;
};
TORCH_MODULE(SoftmaxMoeLayer);

/// The Switch/GShard load-balancing loss  E * Σ_e (counts_e / (T*k)) * mean_t probs[t,e]
/// (Fedus et al. 2022, eq. 4) for router probabilities `probs` [T, E] and the routing
/// built from them. Equals 1 at perfect balance. Differentiable w.r.t. probs. With
/// `groups` G > 1 the T tokens are G equal consecutive groups (the scans of a batch,
/// [B, t] flattened): the loss is computed in each group and averaged, so each group must
/// be balanced on its own. Throws c10::Error when G < 1 or G does not divide T.
torch::Tensor load_balancing_loss(const torch::Tensor& probs, const RoutingResult& routing, int64_t groups = 1);

}  // namespace brainage::model
