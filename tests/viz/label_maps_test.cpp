// A routing record with known experts lands in exactly the right voxels, on the model
// grid and in native space through the transform; native maps keep the input geometry.
#include <gtest/gtest.h>

#include <itkImageRegionConstIteratorWithIndex.h>

#include <cmath>

#include "common/errors.h"
#include "tests/viz/viz_fixture.h"
#include "viz/label_painter.h"
#include "viz/native_space.h"

using namespace brainage::viz;
using namespace brainage::testing;

class LabelMaps : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(mricron_templates_dir() / "ch2bet.nii.gz")) return;
    prediction_ = new SyntheticPrediction(write_synthetic_prediction(process_scratch_dir("label-maps"), 8, 16));
  }
  static void TearDownTestSuite() {
    if (prediction_) std::filesystem::remove_all(prediction_->dir);
    delete prediction_;
    prediction_ = nullptr;
  }
  void SetUp() override { BRAINAGE_REQUIRE_PATH(mricron_templates_dir() / "ch2bet.nii.gz"); }
  static SyntheticPrediction* prediction_;
};
SyntheticPrediction* LabelMaps::prediction_ = nullptr;

TEST_F(LabelMaps, EveryBrainVoxelCarriesItsTokensExpert) {
  const auto& r = prediction_->routing;
  const auto mask = read_label_volume(prediction_->dir / "brain_mask_mni2mm.nii.gz");
  const auto painted = paint_layer(r, r.layers[2], mask);
  std::size_t brain = 0;
  for (itk::ImageRegionConstIteratorWithIndex<LabelImageType> it(mask, mask->GetLargestPossibleRegion()); !it.IsAtEnd();
       ++it) {
    const auto idx = it.GetIndex();
    const int p = r.patch_size;
    const std::size_t t = r.token_index(static_cast<int>(idx[0]) / p, static_cast<int>(idx[1]) / p,
                                        static_cast<int>(idx[2]) / p);
    if (it.Get() == 0) {
      ASSERT_EQ(painted.labels->GetPixel(idx), 0) << "outside the brain must be 0";
      ASSERT_EQ(painted.scores->GetPixel(idx), 0.0f);
    } else {
      ++brain;
      ASSERT_EQ(painted.labels->GetPixel(idx), r.layers[2].expert[t] + 1) << "voxel " << idx;
      ASSERT_EQ(painted.scores->GetPixel(idx), r.layers[2].score[t]);
    }
  }
  EXPECT_GT(brain, 100000u);  // ch2bet at 2 mm: ~180k voxels
  // Brain tokens per expert: all 8 octants touch the brain.
  const auto tokens = brain_tokens_per_expert(r, r.layers[0], mask);
  for (auto n : tokens) EXPECT_GT(n, 0u);
}

TEST_F(LabelMaps, NativeMapMatchesTheTransformVoxelForVoxel) {
  const auto& r = prediction_->routing;
  const auto mask = read_label_volume(prediction_->dir / "brain_mask_mni2mm.nii.gz");
  const auto painted = paint_layer(r, r.layers[0], mask);
  const auto t = read_mni_to_native_transform(prediction_->dir / "native_to_mni.tfm");
  const auto scan = read_float_volume(prediction_->scan);
  const auto native = labels_to_native(painted.labels, t, scan);
  std::size_t labelled = 0;
  for (itk::ImageRegionConstIteratorWithIndex<LabelImageType> it(native, native->GetLargestPossibleRegion());
       !it.IsAtEnd(); ++it) {
    LabelImageType::PointType p;
    native->TransformIndexToPhysicalPoint(it.GetIndex(), p);
    for (unsigned a = 0; a < 3; ++a) p[a] -= prediction_->shift_lps[a];  // native -> MNI
    itk::ContinuousIndex<double, 3> ci;
    painted.labels->TransformPhysicalPointToContinuousIndex(p, ci);
    itk::Index<3> idx;
    bool inside = true;
    for (unsigned a = 0; a < 3; ++a) {
      ASSERT_NEAR(ci[a], std::round(ci[a]), 1e-6) << "fixture grids must share a lattice";
      idx[a] = std::lround(ci[a]);
      inside = inside && idx[a] >= 0 && idx[a] < static_cast<long>(mask->GetLargestPossibleRegion().GetSize()[a]);
    }
    const int expected = inside ? painted.labels->GetPixel(idx) : 0;
    ASSERT_EQ(it.Get(), expected) << "native voxel " << it.GetIndex();
    labelled += it.Get() != 0;
  }
  EXPECT_GT(labelled, 100000u);
}

TEST_F(LabelMaps, NativeMapReopensWithTheInputGeometry) {
  // An oblique, anisotropic native grid (as scanners write them).
  auto native = ImageType::New();
  ImageType::SizeType size = {{97, 113, 61}};
  native->SetRegions(size);
  ImageType::SpacingType spacing;
  spacing[0] = 1.2, spacing[1] = 1.05, spacing[2] = 2.5;
  native->SetSpacing(spacing);
  ImageType::PointType origin;
  origin[0] = -61.3, origin[1] = -70.7, origin[2] = -40.1;
  native->SetOrigin(origin);
  const double a = 0.2;  // ~11 degrees about z, then a flip of y
  ImageType::DirectionType d;
  d.SetIdentity();
  d(0, 0) = std::cos(a), d(0, 1) = std::sin(a), d(1, 0) = std::sin(a), d(1, 1) = -std::cos(a);
  native->SetDirection(d);
  native->Allocate(true);
  const auto dir = process_scratch_dir("label-maps-geometry");
  write_volume(native, dir / "native.nii.gz");
  const auto reopened_input = read_float_volume(dir / "native.nii.gz");

  const auto& r = prediction_->routing;
  const auto mask = read_label_volume(prediction_->dir / "brain_mask_mni2mm.nii.gz");
  const auto painted = paint_layer(r, r.layers[0], mask);
  const auto t = read_mni_to_native_transform(prediction_->dir / "native_to_mni.tfm");
  write_volume(labels_to_native(painted.labels, t, reopened_input), dir / "experts_native.nii.gz");
  const auto out = read_label_volume(dir / "experts_native.nii.gz");
  EXPECT_EQ(out->GetLargestPossibleRegion(), reopened_input->GetLargestPossibleRegion());
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_NEAR(out->GetSpacing()[i], reopened_input->GetSpacing()[i], 1e-6);
    EXPECT_NEAR(out->GetOrigin()[i], reopened_input->GetOrigin()[i], 1e-4);
    for (unsigned j = 0; j < 3; ++j) EXPECT_NEAR(out->GetDirection()(i, j), reopened_input->GetDirection()(i, j), 1e-6);
  }
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

TEST(LabelPainter, RejectsAMaskThatIsNotTheTokenGrid) {
  RoutingSummary r;
  r.num_experts = 2;
  r.patch_size = 4;
  r.token_grid = {2, 2, 2};
  r.layers.push_back({1, std::vector<int>(8, 0), std::vector<float>(8, 0.5f)});
  auto mask = LabelImageType::New();
  LabelImageType::SizeType size = {{8, 8, 12}};
  mask->SetRegions(size);
  mask->Allocate(true);
  EXPECT_THROW(paint_layer(r, r.layers[0], mask), brainage::InvalidInputError);
}
