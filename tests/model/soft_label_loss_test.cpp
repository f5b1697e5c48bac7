// Soft-label age classification (model/soft_label_loss.h, SFCN): the Gaussian labels, the
// KL loss, the expectation, and a tiny synthetic problem the whole model learns with it.
#include "model/soft_label_loss.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/errors.h"
#include "model/brain_age_model.h"

namespace bm = brainage::model;

TEST(SoftLabels, GaussianRowsSumToOneAndCentreOnTheAge) {
  bm::ModelOptions o;
  o.age_bin_start = 15;
  o.age_bins = 71;  // centres 15..85
  const auto centres = bm::age_bin_centres(o);
  ASSERT_EQ(centres.size(0), 71);
  EXPECT_EQ(centres[0].item<float>(), 15.f);
  EXPECT_EQ(centres[70].item<float>(), 85.f);
  const auto ages = torch::tensor({20.3f, 47.5f, 84.0f, 120.0f});
  const auto labels = bm::gaussian_soft_labels(ages, centres, 1.0);  // [4, 71]
  ASSERT_EQ(labels.sizes(), (std::vector<int64_t>{4, 71}));
  EXPECT_LT((labels.sum(1) - 1).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(labels[0].argmax().item<int64_t>(), 5);  // 20 is the nearest centre to 20.3
  // Inside the range the label's mean is the age (the Gaussian is symmetric); 1e-3 y.
  EXPECT_NEAR((labels[1] * centres).sum().item<double>(), 47.5, 1e-3);
  // Outside the range the mass sits on the last bin (finite, normalised).
  EXPECT_GT(labels[3][70].item<double>(), 0.99);
  EXPECT_THROW(bm::gaussian_soft_labels(ages, centres, 0.0), brainage::ModelError);
  EXPECT_THROW(bm::age_bin_centres(bm::ModelOptions{}), brainage::ModelError);  // L1 options have no bins
}

TEST(SoftLabels, KlIsZeroAtTheTargetAndTheExpectationIsItsMean) {
  const auto centres = torch::arange(30, torch::kFloat32) + 30;  // 30..59: both ages > 8 sigma from the ends
  const auto targets = bm::gaussian_soft_labels(torch::tensor({43.2f, 46.0f}), centres, 1.5);
  const auto exact = targets.log();  // softmax(log t) = t
  EXPECT_LT(std::abs(bm::soft_label_kl_loss(exact, targets).item<double>()), 1e-6);
  EXPECT_GT(bm::soft_label_kl_loss(torch::zeros({2, 30}), targets).item<double>(), 0.5);
  const auto age = bm::expected_age(exact, centres);
  EXPECT_NEAR(age[0].item<double>(), 43.2, 1e-3);
  EXPECT_NEAR(age[1].item<double>(), 46.0, 1e-3);
}

// 16 synthetic "scans" whose mean intensity is a linear function of age (20..80 y): the
// model with the KL loss (bins 15..85, sigma 1) must cut its loss at least in half in 150
// full-batch Adam steps and its expected ages must land within 3 y of the truth on average
// (the uniform start predicts 50 y: MAE 16 y).
TEST(SoftLabels, TheModelLearnsATinyProblemWithTheKlLoss) {
  torch::manual_seed(5);
  bm::ModelOptions o;
  o.grid = {8, 8, 8};
  o.patch_size = 4;
  o.dim = 16;
  o.depth = 1;
  o.heads = 2;
  o.ffn = bm::FfnKind::kDense;
  o.ffn_hidden = 32;
  o.dropout = 0.0;
  o.norm_after_pool = true;
  o.loss = bm::LossKind::kKl;
  o.age_bin_start = 15;
  o.age_bins = 71;
  bm::BrainAgeModel model(o);
  const auto ages = torch::linspace(20, 80, 16);  // [16]
  const auto volumes = ((ages - 50) / 30).view({16, 1, 1, 1, 1}) + 0.05 * torch::randn({16, 1, 8, 8, 8});
  const auto targets = bm::gaussian_soft_labels(ages, bm::age_bin_centres(o), o.label_sigma);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(3e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    const auto out = model->forward(volumes);
    ASSERT_EQ(out.logits.sizes(), (std::vector<int64_t>{16, 71}));
    const auto loss = bm::soft_label_kl_loss(out.logits, targets);
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  EXPECT_LT(last, 0.5 * first) << "first " << first << ", last " << last;
  model->eval();
  torch::NoGradGuard no_grad;
  const double mae = (model->forward(volumes).age - ages).abs().mean().item<double>();
  EXPECT_LT(mae, 3.0) << "loss " << first << " -> " << last;
}
