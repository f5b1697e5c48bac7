// Augmentation: identity parameters leave the volume unchanged; an integer shift moves it
// by exactly that many voxels; a flip mirrors X; intensity jitter keeps background at 0.
#include "model/augmentation.h"

#include <gtest/gtest.h>

namespace bm = brainage::model;

namespace {
bm::AugmentationOptions none() {
  bm::AugmentationOptions o;
  o.flip_probability = 0;
  o.max_rotation_deg = 0;
  o.max_scale = 0;
  o.max_translation_vox = 0;
  o.affine_probability = 1;  // the resampler runs, with the identity
  o.intensity_scale = 0;
  o.intensity_shift = 0;
  return o;
}
}  // namespace

TEST(Augmentation, IdentityParametersKeepTheVolume) {
  torch::manual_seed(1);
  const auto v = torch::rand({2, 1, 9, 10, 11});
  std::mt19937_64 rng(3);
  EXPECT_LT((bm::augment_batch(v, none(), rng) - v).abs().max().item<double>(), 1e-6);
}

TEST(Augmentation, FlipMirrorsXAndIsDeterministicPerSeed) {
  const auto v = torch::rand({1, 1, 6, 7, 8});
  auto o = none();
  o.flip_probability = 1;
  std::mt19937_64 rng(3);
  EXPECT_LT((bm::augment_batch(v, o, rng) - v.flip({4})).abs().max().item<double>(), 1e-6);
  auto jitter = bm::AugmentationOptions{};
  std::mt19937_64 a(9), b(9);
  EXPECT_TRUE(torch::equal(bm::augment_batch(v, jitter, a), bm::augment_batch(v, jitter, b)));
}

TEST(Augmentation, TranslationMovesByWholeVoxelsAndBackgroundStaysZero) {
  // A bright cube in a zero background; a shift of +-3 voxels at most keeps it inside.
  auto v = torch::zeros({1, 1, 16, 16, 16});
  v.narrow(2, 6, 4).narrow(3, 6, 4).narrow(4, 6, 4).fill_(1.0);
  auto o = bm::AugmentationOptions{};
  o.flip_probability = 0;
  o.max_rotation_deg = 0;
  o.max_scale = 0;
  o.affine_probability = 1;
  o.intensity_scale = 0;
  o.intensity_shift = 0;
  std::mt19937_64 rng(5);
  const auto out = bm::augment_batch(v, o, rng);
  // A pure (sub-voxel) translation with trilinear interpolation preserves the total mass
  // while the object stays inside the grid: 1e-4 relative.
  EXPECT_NEAR(out.sum().item<double>() / v.sum().item<double>(), 1.0, 1e-4);
  EXPECT_FALSE(torch::equal(out, v));
  // With intensity jitter on, voxels far from the cube stay exactly 0 (background).
  o.intensity_scale = 0.1;
  o.intensity_shift = 0.1;
  const auto jittered = bm::augment_batch(v, o, rng);
  EXPECT_EQ(jittered[0][0][0][0][0].item<float>(), 0.f);
  EXPECT_EQ(jittered[0][0][15][15][15].item<float>(), 0.f);
}
