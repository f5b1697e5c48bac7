// The input checks that keep the pipeline from answering what it cannot handle: the
// background offset (intensity offset invariance), brain coverage by the field of view,
// and the skull-strip detector's field-of-view rule. Synthetic images with exact answers.
#include <gtest/gtest.h>

#include <itkImageRegionIteratorWithIndex.h>

#include <cmath>

#include "preprocessing/background_offset.h"
#include "preprocessing/brain_coverage.h"
#include "preprocessing/skull_strip_detection.h"
#include "preprocessing/template_registration.h"

using namespace brainage::preprocessing;

namespace {

/// `n`³ voxels of 2 mm centred on the origin; a ball of radius `radius_mm` at value `inside`,
/// `outside` elsewhere.
ImageType::Pointer make_ball(unsigned n, double radius_mm, float inside, float outside, double centre_z_mm = 0) {
  auto image = ImageType::New();
  ImageType::SizeType size;
  size.Fill(n);
  image->SetRegions(size);
  ImageType::SpacingType spacing;
  spacing.Fill(2.0);
  image->SetSpacing(spacing);
  ImageType::PointType origin;
  origin.Fill(-(static_cast<double>(n) - 1.0));
  image->SetOrigin(origin);
  image->Allocate();
  itk::ImageRegionIteratorWithIndex<ImageType> it(image, image->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) {
    ImageType::PointType p;
    image->TransformIndexToPhysicalPoint(it.GetIndex(), p);
    const double r = std::sqrt(p[0] * p[0] + p[1] * p[1] + (p[2] - centre_z_mm) * (p[2] - centre_z_mm));
    it.Set(r <= radius_mm ? inside : outside);
  }
  return image;
}

MaskType::Pointer to_mask(const ImageType* image) {
  auto mask = MaskType::New();
  mask->CopyInformation(image);
  mask->SetRegions(image->GetLargestPossibleRegion());
  mask->Allocate();
  const auto n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) mask->GetBufferPointer()[i] = image->GetBufferPointer()[i] > 0;
  return mask;
}

}  // namespace

TEST(BackgroundOffset, AnOffsetOrAZScoreComesBackToTheOriginalScale) {
  const auto original = make_ball(40, 20.0, 1000.f, 0.f);
  const auto reference = remove_background_offset(original);
  EXPECT_EQ(reference.background_level, 0.0);
  // x - 500 and (x - mean) / sd: the same image (up to the scale) after the offset goes.
  auto shifted = make_ball(40, 20.0, 500.f, -500.f);
  const auto back = remove_background_offset(shifted);
  EXPECT_DOUBLE_EQ(back.background_level, -500.0);
  auto zscored = make_ball(40, 20.0, 2.3f, -0.45f);
  const auto z = remove_background_offset(zscored);
  const auto n = original->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_FLOAT_EQ(back.image->GetBufferPointer()[i], reference.image->GetBufferPointer()[i]);
    ASSERT_NEAR(z.image->GetBufferPointer()[i] * (1000.f / 2.75f), reference.image->GetBufferPointer()[i], 1e-2);
  }
}

TEST(BackgroundOffset, ValuesBelowTheBackgroundBecomeZeroNotNegative) {
  auto image = make_ball(20, 10.0, 100.f, 10.f);
  image->GetBufferPointer()[0] = -50.f;  // one voxel below the background level
  const auto out = remove_background_offset(image);
  EXPECT_DOUBLE_EQ(out.background_level, 10.0);
  EXPECT_EQ(out.image->GetBufferPointer()[0], 0.f);
  EXPECT_EQ(out.image->GetBufferPointer()[1], 0.f);
}

TEST(BrainCoverage, AWholeBrainIsCoveredAndACutOneIsMeasuredWithItsSide) {
  // Template brain: a 60 mm ball on the template grid; the scan: the same box (identity).
  const auto brain = to_mask(make_ball(64, 60.0, 1.f, 0.f));
  const auto identity = AffineTransformType::New();
  const auto whole_scan = make_ball(64, 60.0, 1.f, 0.f);
  const auto full = brain_coverage(brain, identity, whole_scan);
  EXPECT_EQ(full.outside_fraction, 0.0);
  EXPECT_EQ(full.side, "");
  // A scan whose field of view stops at z = 0: the upper half of the ball is outside.
  auto cut = ImageType::New();
  ImageType::SizeType size;
  size[0] = 64;
  size[1] = 64;
  size[2] = 32;
  cut->SetRegions(size);
  cut->SetSpacing(whole_scan->GetSpacing());
  cut->SetOrigin(whole_scan->GetOrigin());
  cut->Allocate(true);
  const auto half = brain_coverage(brain, identity, cut);
  EXPECT_NEAR(half.outside_fraction, 0.5, 0.03);
  EXPECT_EQ(half.side, "superior");  // +z in LPS template space
  // The transform moves the brain 40 mm up (MNI points map 40 mm higher in the scan):
  // the top of the ball leaves the full field of view.
  auto up = AffineTransformType::New();
  AffineTransformType::OutputVectorType t;
  t[0] = 0;
  t[1] = 0;
  t[2] = 40;
  up->SetTranslation(t);
  const auto moved = brain_coverage(brain, up, whole_scan);
  EXPECT_GT(moved.outside_fraction, 0.0);
  EXPECT_EQ(moved.side, "superior");
}

TEST(SkullStripDetection, AStrippedBrainIsDetectedButACutFieldOfViewIsNot) {
  // A 1.1 L "brain" with zeros around it, well inside its field of view: stripped.
  const auto stripped = make_ball(80, 64.0, 1000.f, 0.f);
  const auto inside = detect_skull_stripped(stripped);
  EXPECT_TRUE(inside.skull_stripped) << inside.reason;
  EXPECT_NEAR(inside.foreground_ml, 4.0 / 3.0 * M_PI * 64 * 64 * 64 / 1000, 30);
  EXPECT_EQ(inside.max_face_foreground_fraction, 0.0);
  // The same small foreground cut by the field of view (the ball's centre on the bottom
  // face, as a scan holding only the top of a head): not stripped.
  const auto cut = make_ball(80, 64.0, 1000.f, 0.f, -79.0);
  const auto evidence = detect_skull_stripped(cut);
  EXPECT_FALSE(evidence.skull_stripped) << evidence.reason;
  EXPECT_GT(evidence.max_face_foreground_fraction, 0.3);
}
