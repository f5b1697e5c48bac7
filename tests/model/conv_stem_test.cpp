// The convolutional stem (model/conv_stem.h) and the multi-channel patch embedding: token
// shapes on the model grid at patch 8 and 16 with 4 input channels, the token order
// t = (pz * PY + py) * PX + px, and the whole model with C = 4 and the conv stem.
#include "model/conv_stem.h"

#include <gtest/gtest.h>

#include "model/brain_age_model.h"
#include "model/patch_embedding.h"
#include "model/routing_stats.h"

namespace bm = brainage::model;

namespace {

bm::ModelOptions v2_options(int64_t patch) {
  bm::ModelOptions o;  // the model grid 80 x 96 x 80
  o.channels = {"t1", "gm", "wm", "csf"};
  o.stem = bm::StemKind::kConv;
  o.patch_size = patch;
  o.dim = 16;
  o.depth = 1;
  o.heads = 2;
  o.num_experts = 4;
  o.expert_rank = 4;
  o.expert_hidden = 8;
  o.ffn_hidden = 16;
  return o;
}

}  // namespace

TEST(ConvStem, TokensOnTheModelGridAtPatch8And16) {
  torch::manual_seed(0);
  const auto volumes = torch::rand({2, 4, 80, 96, 80});
  bm::ConvStem p8(4, 8, 24);  // pool 2, then 2 layers: 16, 32 channels
  EXPECT_EQ(p8->layers(), 2);
  EXPECT_EQ(p8->forward(volumes).sizes(), (std::vector<int64_t>{2, 10 * 12 * 10, 24}));
  bm::ConvStem p16(4, 16, 24);  // pool 2, then 3 layers: 16, 32, 64 channels
  EXPECT_EQ(p16->layers(), 3);
  EXPECT_EQ(p16->forward(volumes).sizes(), (std::vector<int64_t>{2, 5 * 6 * 5, 24}));
  EXPECT_THROW(bm::ConvStem(4, 12, 24), c10::Error);          // 12 / 2 = 6 is not a power of two
  EXPECT_THROW(bm::ConvStem(4, 8, 24, 12), c10::Error);       // width not a multiple of 8
  EXPECT_THROW(p8->forward(torch::rand({1, 3, 80, 96, 80})), c10::Error);  // 3 channels for 4
}

// One bright block filling token (pz, py, px) = (1, 0, 2) of a 2 x 3 x 4 token grid: the
// token that changes most against an empty volume is t = (pz * PY + py) * PX + px = 14
// (an x-first order would put it at (px * PY + py) * PZ + pz = 13; receptive fields not
// centred on their patches, as without the stem's shift, at the neighbour 18).
TEST(ConvStem, TokenOrderIsZThenYThenX) {
  torch::manual_seed(1);
  bm::ConvStem stem(1, 8, 8);
  stem->eval();
  const auto empty = torch::zeros({1, 1, 16, 24, 32});
  auto volume = empty.clone();
  volume.slice(2, 8, 16).slice(3, 0, 8).slice(4, 16, 24).fill_(1.0);
  torch::NoGradGuard no_grad;
  const auto tokens = stem->forward(volume)[0];  // [24, 8]
  ASSERT_EQ(tokens.sizes(), (std::vector<int64_t>{24, 8}));
  const auto change = (tokens - stem->forward(empty)[0]).abs().sum(1);  // [24]
  EXPECT_EQ(change.argmax().item<int64_t>(), (1 * 3 + 0) * 4 + 2) << change;
}

// The multi-channel patch embedding is the Conv3d it stands for (kernel = stride = p).
TEST(PatchEmbedding, FourChannelsMatchTheConv3dReference) {
  torch::manual_seed(2);
  bm::PatchEmbedding embed(4, 12, /*pool=*/1, /*in_channels=*/4);
  const auto volumes = torch::randn({2, 4, 8, 12, 16});
  torch::NoGradGuard no_grad;
  const auto reference = embed->conv->forward(volumes).flatten(2).transpose(1, 2);  // [2, 24, 12]
  const auto tokens = embed->forward(volumes);
  ASSERT_EQ(tokens.sizes(), reference.sizes());
  EXPECT_LT((tokens - reference).abs().max().item<double>(), 1e-4);
}

class ConvStemModel : public ::testing::TestWithParam<int64_t> {};

TEST_P(ConvStemModel, FourChannelForwardWithRoutingOnTheTokenGrid) {
  torch::manual_seed(3);
  const int64_t p = GetParam();
  bm::BrainAgeModel model(v2_options(p));
  model->eval();
  torch::NoGradGuard no_grad;
  const auto out = model->forward(torch::rand({2, 4, 80, 96, 80}), /*with_routing=*/true);
  const int64_t tokens = (80 / p) * (96 / p) * (80 / p);
  ASSERT_EQ(out.age.sizes(), (std::vector<int64_t>{2}));
  EXPECT_TRUE(torch::isfinite(out.age).all().item<bool>());
  ASSERT_EQ(out.layers.size(), 1u);
  EXPECT_EQ(out.layers[0].expert_ids.sizes(), (std::vector<int64_t>{2, tokens, 2}));
  const auto summary = bm::routing_summary(out, model->options(), 0);
  EXPECT_EQ(summary.at("patch_size"), p);
  EXPECT_EQ(summary.at("token_grid"), (nlohmann::json{80 / p, 96 / p, 80 / p}));
  EXPECT_EQ(summary.at("layers")[0].at("expert").size(), static_cast<size_t>(tokens));
  EXPECT_THROW(model->forward(torch::rand({1, 1, 80, 96, 80})), c10::Error);  // one channel for four
}

INSTANTIATE_TEST_SUITE_P(Patch, ConvStemModel, ::testing::Values(8, 16));
