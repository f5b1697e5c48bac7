// ERMoE gradients (finite differences, double), orthonormality under training, and the
// softmax-MoE load-balancing loss against a hand computation.
#include "model/moe_layers.h"

#include <gtest/gtest.h>

namespace bm = brainage::model;

TEST(ErmoeLayer, FiniteDifferenceGradientInDouble) {
  torch::manual_seed(42);
  // d = 10, E = 5, r = 3, hidden 6, k = 2; 7 tokens. Double precision throughout.
  bm::ErmoeLayer layer(10, 5, 3, 6, bm::RoutingOptions{2, 0.0});
  layer->to(torch::kFloat64);
  auto tokens = torch::randn({7, 10}, torch::kFloat64).requires_grad_(true);
  const auto probe = torch::randn({7, 10}, torch::kFloat64);
  auto loss_of = [&](const torch::Tensor& x) { return (layer->forward(x).output * probe).sum(); };
  // Routing must not change under the small perturbation; check gaps of the top-k scores.
  const auto ids = layer->forward(tokens).routing.expert_ids.clone();

  auto loss = loss_of(tokens);
  const auto grads = torch::autograd::grad({loss}, {tokens, layer->bases});
  const double eps = 1e-6;
  // w.r.t. tokens
  double worst = 0;
  for (int64_t i = 0; i < tokens.numel(); ++i) {
    torch::NoGradGuard g;
    auto plus = tokens.detach().clone(), minus = tokens.detach().clone();
    plus.view(-1)[i] += eps;
    minus.view(-1)[i] -= eps;
    ASSERT_TRUE(torch::equal(layer->forward(plus).routing.expert_ids, ids)) << "routing flipped at " << i;
    const double numeric = (loss_of(plus).item<double>() - loss_of(minus).item<double>()) / (2 * eps);
    worst = std::max(worst, std::abs(numeric - grads[0].view(-1)[i].item<double>()));
  }
  EXPECT_LT(worst, 1e-6) << "token gradient max abs error";
  // w.r.t. the expert bases (every entry of U)
  worst = 0;
  for (int64_t i = 0; i < layer->bases.numel(); ++i) {
    torch::NoGradGuard g;
    const double original = layer->bases.view(-1)[i].item<double>();
    layer->bases.view(-1)[i] = original + eps;
    const double lp = loss_of(tokens.detach()).item<double>();
    layer->bases.view(-1)[i] = original - eps;
    const double lm = loss_of(tokens.detach()).item<double>();
    layer->bases.view(-1)[i] = original;
    worst = std::max(worst, std::abs((lp - lm) / (2 * eps) - grads[1].view(-1)[i].item<double>()));
  }
  EXPECT_LT(worst, 1e-6) << "basis gradient max abs error";
  EXPECT_GT(grads[1].abs().max().item<double>(), 0.0);
}

TEST(ErmoeLayer, BasesStayOrthonormalThrough100AdamWSteps) {
  torch::manual_seed(3);
  bm::ErmoeLayer layer(32, 8, 8, 16, bm::RoutingOptions{2, 0.0});
  torch::optim::AdamW opt(layer->parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.05));
  const auto target = torch::randn({50, 32});
  for (int step = 0; step < 100; ++step) {
    const auto x = torch::randn({50, 32});
    const auto loss = (layer->forward(x).output - target).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    opt.step();
    layer->retract();
  }
  EXPECT_LT(layer->orthonormality_error(), 1e-4);
}

TEST(ErmoeLayer, ExpertInputProjectionIsItsBasis) {
  // With k = 1 a token's output is expert e's network applied to U_eᵀ x (no other input path).
  torch::manual_seed(5);
  bm::ErmoeLayer layer(12, 3, 4, 8, bm::RoutingOptions{1, 0.0});
  const auto x = torch::randn({5, 12});
  const auto out = layer->forward(x);
  for (int64_t t = 0; t < 5; ++t) {
    const int64_t e = out.routing.expert_ids[t][0].item<int64_t>();
    const auto z = x[t].unsqueeze(0).matmul(layer->bases[e]);
    const auto y = torch::gelu(z.matmul(layer->w1[e]) + layer->b1[e]).matmul(layer->w2[e]) + layer->b2[e];
    EXPECT_LT((y.squeeze(0) - out.output[t]).abs().max().item<double>(), 1e-5);
  }
}

TEST(ErmoeLayer, BalanceLossIsTheSwitchLossOfTheNormalisedScores) {
  torch::manual_seed(6);
  bm::ErmoeLayer layer(12, 4, 3, 8, bm::RoutingOptions{2, 0.0});
  layer->to(torch::kFloat64);
  const auto x = torch::randn({40, 12}, torch::kFloat64);
  const auto out = layer->forward(x);
  const auto probs = out.routing.scores / out.routing.scores.sum(-1, true);
  EXPECT_NEAR(out.aux_loss.item<double>(), bm::load_balancing_loss(probs, out.routing).item<double>(), 1e-12);
  EXPECT_GE(out.aux_loss.item<double>(), 0.5);  // 1 at perfect balance
  out.aux_loss.backward();
  EXPECT_GT(layer->bases.grad().abs().max().item<double>(), 0.0) << "the loss must reach the expert bases";
}

TEST(ErmoeLayer, BalanceLossSpreadsACollapsedRouting) {
  // Tokens that all lie in expert 0's subspace (plus a little noise) all go to expert 0
  // (top-1). Minimising the balancing loss alone, with the bases retracted after each step,
  // must hand a fair part of them to the other experts.
  torch::manual_seed(8);
  bm::ErmoeLayer layer(16, 4, 4, 8, bm::RoutingOptions{1, 0.0});
  torch::NoGradGuard no_grad_setup;
  const auto x = torch::randn({200, 4}).matmul(layer->bases[0].t()) + 0.3 * torch::randn({200, 16});
  auto share_of_busiest = [&] {
    const auto counts = layer->forward(x).routing.counts.to(torch::kFloat64);
    return (counts.max() / counts.sum()).item<double>();
  };
  const double before = share_of_busiest();
  ASSERT_GT(before, 0.9) << "the setup must start collapsed";
  torch::optim::Adam opt({layer->bases}, torch::optim::AdamOptions(1e-2));
  for (int step = 0; step < 200; ++step) {
    torch::AutoGradMode grad(true);
    const auto loss = layer->forward(x).aux_loss;
    opt.zero_grad();
    loss.backward();
    opt.step();
    layer->retract();
  }
  EXPECT_LT(share_of_busiest(), 0.5) << "was " << before;
}

TEST(SoftmaxMoe, AuxLossEqualsHandComputation) {
  // 4 tokens, 3 experts, k = 1. probs rows, top-1: e0, e0, e1, e2 -> f = (2/4, 1/4, 1/4).
  const auto probs = torch::tensor({{0.7, 0.2, 0.1}, {0.5, 0.3, 0.2}, {0.1, 0.8, 0.1}, {0.2, 0.2, 0.6}},
                                   torch::kFloat64);
  const auto routing = bm::route_from_scores(probs, {1, 0.0});
  // P = column means = (1.5/4, 1.5/4, 1.0/4); loss = 3 * (0.5*0.375 + 0.25*0.375 + 0.25*0.25) = 1.03125
  EXPECT_NEAR(bm::load_balancing_loss(probs, routing).item<double>(), 1.03125, 1e-12);
  // k = 2: slots e0,e1 | e0,e1 | e1,e0(tie 0.1/0.1 -> e0) | e2,e0 (tie 0.2/0.2 -> e0)
  // counts (4, 3, 1) over 8 slots; loss = 3 * (0.5*0.375 + 0.375*0.375 + 0.125*0.25) = 1.078125
  const auto routing2 = bm::route_from_scores(probs, {2, 0.0});
  EXPECT_NEAR(bm::load_balancing_loss(probs, routing2).item<double>(), 1.078125, 1e-12);
}

TEST(LoadBalancingLoss, PerScanGroupsSeeAScanThatSendsEveryTokenToOneExpert) {
  // Two scans of two tokens, two experts, k = 1: scan A routes both tokens to e0, scan B
  // both to e1. Over the batch that is perfectly balanced (f = (1/2, 1/2),
  // P = (0.525, 0.475): loss 2 * (0.2625 + 0.2375) = 1); scan by scan it is not:
  // A: f = (1, 0), P = (0.85, 0.15): 1.7; B: f = (0, 1), P = (0.2, 0.8): 1.6; mean 1.65.
  const auto probs = torch::tensor({{0.9, 0.1}, {0.8, 0.2}, {0.1, 0.9}, {0.3, 0.7}}, torch::kFloat64);
  const auto routing = bm::route_from_scores(probs, {1, 0.0});
  EXPECT_NEAR(bm::load_balancing_loss(probs, routing).item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(bm::load_balancing_loss(probs, routing, 1).item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(bm::load_balancing_loss(probs, routing, 2).item<double>(), 1.65, 1e-12);
  // Four groups of one token: each token's own f_e = 1 for its expert.
  EXPECT_NEAR(bm::load_balancing_loss(probs, routing, 4).item<double>(), 2 * (0.9 + 0.8 + 0.9 + 0.7) / 4, 1e-12);
  EXPECT_THROW(bm::load_balancing_loss(probs, routing, 3), c10::Error);
}

TEST(ErmoeLayer, PerScanBalanceLossIsTheMeanOfEachScansOwnLoss) {
  torch::manual_seed(21);
  bm::ErmoeLayer layer(12, 4, 3, 8, bm::RoutingOptions{2, 0.0});
  layer->to(torch::kFloat64);
  const auto x = torch::randn({3 * 20, 12}, torch::kFloat64);
  const auto out = layer->forward(x, 3);
  const auto probs = (out.routing.scores / out.routing.scores.sum(-1, true)).detach();
  double expected = 0;
  for (int64_t g = 0; g < 3; ++g) {
    const auto p = probs.slice(0, 20 * g, 20 * (g + 1));
    expected += bm::load_balancing_loss(p, bm::route_from_scores(p, {2, 0.0})).item<double>() / 3;
  }
  EXPECT_NEAR(out.aux_loss.item<double>(), expected, 1e-9);
  out.aux_loss.backward();
  EXPECT_GT(layer->bases.grad().abs().max().item<double>(), 0.0) << "the loss must reach the expert bases";
}

TEST(SoftmaxMoe, LayerReturnsBalancedLossNearOneAndGradients) {
  torch::manual_seed(11);
  bm::SoftmaxMoeLayer layer(16, 4, 32, bm::RoutingOptions{2, 0.0});
  const auto x = torch::randn({64, 16});
  const auto out = layer->forward(x);
  EXPECT_EQ(out.output.sizes(), x.sizes());
  EXPECT_GT(out.aux_loss.item<double>(), 0.5);
  (out.output.sum() + out.aux_loss).backward();
  EXPECT_GT(layer->router->weight.grad().abs().sum().item<double>(), 0.0);
}
