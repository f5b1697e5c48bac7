// N4 on a shrunk copy applied at full resolution: an unbiased image gets a flat field, and a
// known smooth multiplicative field is removed.
#include "preprocessing/bias_correction.h"

#include <gtest/gtest.h>

#include <itkImageRegionIteratorWithIndex.h>

#include <algorithm>
#include <cmath>

#include "tests/preprocessing/synthetic_images.h"

using namespace brainage::preprocessing;

namespace {
double coefficient_of_variation(const ImageType* image, const ImageType* region) {
  double s = 0, ss = 0;
  std::size_t n = 0;
  const auto count = image->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < count; ++i)
    if (region->GetBufferPointer()[i] > 90.f && region->GetBufferPointer()[i] < 110.f) {  // the flat blob body
      const double v = image->GetBufferPointer()[i];
      s += v;
      ss += v * v;
      ++n;
    }
  const double mean = s / n;
  return std::sqrt(std::max(0.0, ss / n - mean * mean)) / mean;
}
}  // namespace

MaskType::Pointer blob_mask(const ImageType* image) {  // the head-like foreground N4 is fitted on
  auto mask = MaskType::New();
  mask->CopyInformation(image);
  mask->SetRegions(image->GetLargestPossibleRegion());
  mask->Allocate();
  for (std::size_t i = 0; i < image->GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
    mask->GetBufferPointer()[i] = image->GetBufferPointer()[i] > 10.f;
  return mask;
}

TEST(BiasCorrection, UnbiasedImageGetsAFlatField) {
  const auto clean = brainage::testing::make_blob_image(64, 2.0);
  const auto mask = blob_mask(clean);
  BiasCorrectionOptions options;
  options.shrink_to_mm = 4.0;
  const auto result = correct_bias_field(clean, mask, options);
  float lo = 10, hi = 0;
  for (std::size_t i = 0; i < clean->GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
    if (mask->GetBufferPointer()[i]) {
      lo = std::min(lo, result.field->GetBufferPointer()[i]);
      hi = std::max(hi, result.field->GetBufferPointer()[i]);
    }
  std::printf("field on an unbiased blob: %.4f .. %.4f\n", lo, hi);
  EXPECT_GT(lo, 0.95f);  // within 5% of flat where it was fitted
  EXPECT_LT(hi, 1.05f);
}

TEST(BiasCorrection, RemovesKnownSmoothField) {
  const auto clean = brainage::testing::make_blob_image(64, 2.0);
  auto biased = ImageType::New();
  biased->CopyInformation(clean);
  biased->SetRegions(clean->GetLargestPossibleRegion());
  biased->Allocate();
  itk::ImageRegionIteratorWithIndex<ImageType> it(biased, biased->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) {
    ImageType::PointType p;
    biased->TransformIndexToPhysicalPoint(it.GetIndex(), p);
    const double field = std::exp(0.25 * p[0] / 30.0 + 0.15 * p[2] / 30.0);  // ±~30% across the blob
    it.Set(static_cast<float>(clean->GetPixel(it.GetIndex()) * field));
  }
  const double before = coefficient_of_variation(biased, clean);
  BiasCorrectionOptions options;
  options.shrink_to_mm = 4.0;
  const auto result = correct_bias_field(biased, blob_mask(biased), options);
  const double after = coefficient_of_variation(result.corrected, clean);
  std::printf("blob body CV: %.4f biased -> %.4f corrected\n", before, after);
  EXPECT_LT(after, 0.6 * before);  // the blob's own bright core limits what a smooth field can flatten
  EXPECT_EQ(result.corrected->GetLargestPossibleRegion(), biased->GetLargestPossibleRegion());
}

TEST(BiasCorrection, SameInputSameField) {
  const auto image = brainage::testing::make_blob_image(48, 2.0);
  const auto mask = blob_mask(image);
  const auto a = correct_bias_field(image, mask);
  const auto b = correct_bias_field(image, mask);
  const auto n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  EXPECT_TRUE(std::equal(a.field->GetBufferPointer(), a.field->GetBufferPointer() + n, b.field->GetBufferPointer()));
}
