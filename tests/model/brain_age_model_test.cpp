// The whole model: shapes at odd grid sizes for the three kinds, routing records and
// their statistics, retraction.
#include "model/brain_age_model.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/errors.h"
#include "model/checkpoint.h"
#include "model/runtime.h"
#include "model/routing_stats.h"
#include "tests/test_data.h"

namespace bm = brainage::model;

namespace {
bm::ModelOptions small_options(bm::FfnKind kind) {
  bm::ModelOptions o;
  o.grid = {12, 20, 28};  // odd token grid: 3 x 5 x 7 = 105 tokens at p = 4
  o.patch_size = 4;
  o.dim = 24;
  o.depth = 3;
  o.heads = 3;
  o.ffn = kind;
  o.num_experts = 5;
  o.top_k = 2;
  o.expert_rank = 6;
  o.expert_hidden = 16;
  o.ffn_hidden = 32;
  return o;
}
}  // namespace

class ModelShapes : public ::testing::TestWithParam<bm::FfnKind> {};

TEST_P(ModelShapes, ForwardShapesAndRecords) {
  torch::manual_seed(0);
  const auto options = small_options(GetParam());
  bm::BrainAgeModel model(options);
  model->eval();
  const auto volumes = torch::randn({3, 1, 12, 20, 28});
  const auto out = model->forward(volumes, /*with_routing=*/true);
  ASSERT_EQ(out.age.sizes(), (std::vector<int64_t>{3}));
  EXPECT_TRUE(torch::isfinite(out.age).all().item<bool>());
  ASSERT_EQ(out.layers.size(), 3u);
  for (const auto& layer : out.layers) {
    if (GetParam() == bm::FfnKind::kDense) {
      EXPECT_FALSE(layer.is_moe);
      continue;
    }
    ASSERT_TRUE(layer.is_moe);
    EXPECT_EQ(layer.expert_ids.sizes(), (std::vector<int64_t>{3, 105, 2}));
    EXPECT_EQ(layer.scores.sizes(), (std::vector<int64_t>{3, 105, 5}));
    EXPECT_EQ(bm::expert_load(layer).sum().item<int64_t>(), 3 * 105 * 2);
    const double cv = bm::load_coefficient_of_variation(layer);
    const double entropy = bm::routing_entropy(layer);
    EXPECT_GE(cv, 0.0);
    EXPECT_LE(cv, std::sqrt(4.0) + 1e-9);
    EXPECT_GE(entropy, 0.0);
    EXPECT_LE(entropy, std::log(5.0) + 1e-9);
  }
  if (GetParam() == bm::FfnKind::kSoftmaxMoe)
    EXPECT_GT(out.aux_loss.item<double>(), 0.0);
  else
    EXPECT_EQ(out.aux_loss.item<double>(), 0.0);
  // A batch of one gives the same age as inside the batch (no cross-sample leakage).
  const auto single = model->forward(volumes.narrow(0, 1, 1)).age;
  EXPECT_NEAR(single.item<double>(), out.age[1].item<double>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Kinds, ModelShapes,
                         ::testing::Values(bm::FfnKind::kErmoe, bm::FfnKind::kSoftmaxMoe, bm::FfnKind::kDense));

TEST(BrainAgeModel, DefaultOptionsGive150TokensOnTheModelGrid) {
  bm::ModelOptions o;
  EXPECT_EQ(o.num_tokens(), 150);
  bm::BrainAgeModel model(o);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto out = model->forward(torch::zeros({1, 1, 80, 96, 80}), true);
  EXPECT_EQ(out.layers.front().expert_ids.sizes(), (std::vector<int64_t>{1, 150, 2}));
}

TEST(BrainAgeModel, RejectsWrongGridAndBadOptions) {
  bm::BrainAgeModel model(small_options(bm::FfnKind::kErmoe));
  EXPECT_THROW(model->forward(torch::zeros({1, 1, 12, 20, 24})), c10::Error);
  auto bad = small_options(bm::FfnKind::kErmoe);
  bad.patch_size = 5;
  EXPECT_THROW(bm::BrainAgeModel{bad}, brainage::ModelError);
}

TEST(BrainAgeModel, PatchEmbeddingEqualsConv3d) {
  torch::manual_seed(2);
  bm::PatchEmbedding embed(4, 8);
  const auto v = torch::randn({2, 1, 8, 12, 16});
  const auto reference = embed->conv(v).flatten(2).transpose(1, 2);  // [B, T, d], t = (z*PY + y)*PX + x
  EXPECT_LT((embed(v) - reference).abs().max().item<double>(), 1e-4);
}

TEST(BrainAgeModel, PooledPatchEmbeddingEqualsConv3dOnTheAveragedVolume) {
  torch::manual_seed(3);
  bm::PatchEmbedding embed(4, 8, /*pool=*/2);
  EXPECT_EQ(embed->conv->weight.size(2), 2);  // kernel = patch / pool
  const auto v = torch::randn({2, 1, 8, 12, 16});
  const auto reference = embed->conv(torch::avg_pool3d(v, 2)).flatten(2).transpose(1, 2);
  const auto got = embed(v);
  EXPECT_EQ(got.size(1), 2 * 3 * 4);  // the token grid does not change with pooling
  EXPECT_LT((got - reference).abs().max().item<double>(), 1e-4);
  EXPECT_THROW(bm::PatchEmbedding(4, 8, 3), c10::Error);
}

TEST(BrainAgeModel, PoolingOptionsRoundTripAndOldJsonGetsDefaults) {
  auto o = small_options(bm::FfnKind::kErmoe);
  o.patch_pool = 2;
  o.norm_after_pool = true;
  const auto j = bm::to_json(o);
  const auto back = bm::model_options_from_json(j);
  EXPECT_EQ(back.patch_pool, 2);
  EXPECT_TRUE(back.norm_after_pool);
  auto old = j;
  old.erase("patch_pool");
  old.erase("norm_after_pool");
  const auto legacy = bm::model_options_from_json(old);
  EXPECT_EQ(legacy.patch_pool, 1);
  EXPECT_FALSE(legacy.norm_after_pool);
  auto bad = j;
  bad["patch_pool"] = 3;  // does not divide patch_size 4
  EXPECT_THROW(bm::model_options_from_json(bad), brainage::ModelError);
  // Both pooling orders run and give finite ages.
  bm::BrainAgeModel model(o);
  model->eval();
  EXPECT_TRUE(torch::isfinite(model->forward(torch::randn({2, 1, 12, 20, 28})).age).all().item<bool>());
}

TEST(BrainAgeModel, ErmoeBalanceWeightIsOffByDefaultAndRoundTrips) {
  auto o = small_options(bm::FfnKind::kErmoe);
  torch::manual_seed(4);
  const auto volumes = torch::randn({2, 1, 12, 20, 28});
  {
    bm::BrainAgeModel model(o);
    EXPECT_EQ(model->forward(volumes).aux_loss.item<double>(), 0.0) << "ERMoE as published: no auxiliary loss";
  }
  o.ermoe_balance_weight = 0.1;
  bm::BrainAgeModel model(o);
  const double aux = model->forward(volumes).aux_loss.item<double>();
  EXPECT_GT(aux, 0.1 * 0.5);  // 0.1 x (the MoE layers' unweighted losses, each ~1 or more)
  const auto j = bm::to_json(o);
  EXPECT_EQ(bm::model_options_from_json(j).ermoe_balance_weight, 0.1);
  auto old = j;
  old.erase("ermoe_balance_weight");  // checkpoints written before the option
  EXPECT_EQ(bm::model_options_from_json(old).ermoe_balance_weight, 0.0);
  auto bad = j;
  bad["ermoe_balance_weight"] = -1.0;
  EXPECT_THROW(bm::model_options_from_json(bad), brainage::ModelError);
}

TEST(BrainAgeModel, PerScanBalanceSeesEachScanAndRoundTrips) {
  auto o = small_options(bm::FfnKind::kErmoe);
  o.ermoe_balance_weight = 1.0;
  torch::manual_seed(5);
  const auto volumes = torch::randn({3, 1, 12, 20, 28});
  torch::manual_seed(6);
  bm::BrainAgeModel batch(o);
  o.balance_per_scan = true;
  torch::manual_seed(6);
  bm::BrainAgeModel per_scan(o);  // same initialisation, only the loss's scope differs
  batch->eval();
  per_scan->eval();
  const auto a = batch->forward(volumes), b = per_scan->forward(volumes);
  EXPECT_TRUE(torch::allclose(a.age, b.age)) << "the option changes the loss, not the prediction";
  EXPECT_GT(std::abs(a.aux_loss.item<double>() - b.aux_loss.item<double>()), 1e-6);
  // A batch of one scan: both scopes are the same loss.
  const auto one = volumes.slice(0, 0, 1);
  EXPECT_NEAR(batch->forward(one).aux_loss.item<double>(), per_scan->forward(one).aux_loss.item<double>(), 1e-6);
  const auto j = bm::to_json(o);
  EXPECT_TRUE(bm::model_options_from_json(j).balance_per_scan);
  auto old = j;
  old.erase("balance_per_scan");  // checkpoints written before the option: the batch-wide loss
  EXPECT_FALSE(bm::model_options_from_json(old).balance_per_scan);
}

TEST(BrainAgeModel, GradientsReachBasesAndRetractionRestoresOrthonormality) {
  // One thread: tiny tensors, and a loaded 2-core CI box makes 2 spinning threads ~10x slower.
  brainage::model::configure_threads(1);
  torch::manual_seed(9);
  bm::BrainAgeModel model(small_options(bm::FfnKind::kErmoe));
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(5e-3));
  for (int step = 0; step < 100; ++step) {
    const auto out = model->forward(torch::randn({2, 1, 12, 20, 28}));
    const auto loss = (out.age - torch::tensor({30.0f, 60.0f})).abs().mean();
    opt.zero_grad();
    loss.backward();
    opt.step();
    model->retract_bases();
  }
  EXPECT_LT(model->max_basis_orthonormality_error(), 1e-4);
}

TEST(BrainAgeModel, RoutingSummaryMatchesTheRecords) {
  torch::manual_seed(4);
  const auto options = small_options(bm::FfnKind::kErmoe);
  bm::BrainAgeModel model(options);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto out = model->forward(torch::randn({2, 1, 12, 20, 28}), true);
  const auto summary = bm::routing_summary(out, options, 1);
  EXPECT_EQ(summary["token_grid"], nlohmann::json({7, 5, 3}));  // PX, PY, PZ
  ASSERT_EQ(summary["layers"].size(), 3u);
  const auto& layer = summary["layers"][0];
  ASSERT_EQ(layer["expert"].size(), 105u);
  for (int64_t t : {0, 50, 104}) {
    const int64_t e = out.layers[0].expert_ids[1][t][0].item<int64_t>();
    EXPECT_EQ(layer["expert"][t].get<int64_t>(), e);
    EXPECT_NEAR(layer["score"][t].get<double>(), out.layers[0].scores[1][t][e].item<double>(), 1e-5);
    // top-1 has the highest score of the token
    EXPECT_NEAR(out.layers[0].scores[1][t].max().item<double>(), out.layers[0].scores[1][t][e].item<double>(), 1e-7);
  }
}

// Test-time flip (ModelOptions::test_time_flip): in eval mode the age of a volume and of
// its left-right mirror image (X flipped) are the same, and their mean; training mode and
// the routing records are the unflipped pass's; the option round-trips, is off in old
// JSON, and gives the same weights another model id.
TEST(BrainAgeModel, TestTimeFlipMakesTheAgeMirrorInvariant) {
  auto o = small_options(bm::FfnKind::kErmoe);
  o.dropout = 0.0;  // training-mode passes comparable
  torch::manual_seed(11);
  bm::BrainAgeModel plain(o);
  plain->eval();
  o.test_time_flip = true;
  bm::BrainAgeModel flipped(o);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < plain->parameters().size(); ++i) flipped->parameters()[i].copy_(plain->parameters()[i]);
  flipped->eval();
  const auto x = torch::randn({2, 1, o.grid[0], o.grid[1], o.grid[2]});
  const auto mirrored = x.flip({4});
  const auto age = flipped->forward(x, /*with_routing=*/true).age;
  EXPECT_LT((age - flipped->forward(mirrored).age).abs().max().item<double>(), 1e-4);
  const auto expected = 0.5 * (plain->forward(x).age + plain->forward(mirrored).age);
  EXPECT_LT((age - expected).abs().max().item<double>(), 1e-5);
  EXPECT_GT((plain->forward(x).age - plain->forward(mirrored).age).abs().max().item<double>(), 1e-4)
      << "a random model is not mirror-symmetric by itself";
  flipped->train();
  plain->train();
  EXPECT_TRUE(torch::equal(flipped->forward(x).age, plain->forward(x).age)) << "training sees one pass";
  plain->eval();

  const auto back = bm::model_options_from_json(bm::to_json(o));
  EXPECT_TRUE(back.test_time_flip);
  auto old = bm::to_json(o);
  old.erase("test_time_flip");
  EXPECT_FALSE(bm::model_options_from_json(old).test_time_flip);

  const auto dir = brainage::testing::scratch_dir("test-time-flip");
  flipped->eval();
  const auto id_plain = bm::save_checkpoint(dir / "plain", plain, {});
  const auto id_flipped = bm::save_checkpoint(dir / "flipped", flipped, {});
  EXPECT_NE(id_plain, id_flipped);
  EXPECT_TRUE(bm::load_checkpoint(dir / "flipped.json").info.model.test_time_flip);
}
