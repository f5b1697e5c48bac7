// Mask operations: dilation and erosion by a physical distance with exact voxel counts.
#include "preprocessing/mask_operations.h"

#include <gtest/gtest.h>

#include <itkImageRegionConstIteratorWithIndex.h>

using namespace brainage::preprocessing;

namespace {

MaskType::Pointer empty_mask(unsigned n, double spacing) {
  auto mask = MaskType::New();
  MaskType::SizeType size;
  size.Fill(n);
  mask->SetRegions(MaskType::RegionType(size));
  MaskType::SpacingType sp;
  sp.Fill(spacing);
  mask->SetSpacing(sp);
  mask->Allocate();
  mask->FillBuffer(0);
  return mask;
}

std::size_t count(const MaskType* mask) {
  std::size_t n = 0;
  itk::ImageRegionConstIteratorWithIndex<MaskType> it(mask, mask->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) n += it.Get() ? 1 : 0;
  return n;
}

}  // namespace

TEST(MaskOperations, DilatingOneVoxelGivesTheLatticeBallOfThatRadius) {
  // 2 mm voxels, radius 5 mm: every voxel centre within 5 mm of the set one.
  auto mask = empty_mask(15, 2.0);
  mask->SetPixel({{7, 7, 7}}, 1);
  const auto dilated = dilate_mask(mask, 5.0);
  std::size_t expected = 0;
  for (int x = -3; x <= 3; ++x)
    for (int y = -3; y <= 3; ++y)
      for (int z = -3; z <= 3; ++z) expected += 4.0 * (x * x + y * y + z * z) <= 25.0 ? 1 : 0;
  EXPECT_EQ(count(dilated), expected);
  EXPECT_EQ(dilated->GetSpacing(), mask->GetSpacing());
}

TEST(MaskOperations, ErodingACubeBy2mmRemovesTwoLayersAndDilatingItBackIsNotLarger) {
  auto mask = empty_mask(21, 1.0);
  for (int x = 6; x <= 14; ++x)
    for (int y = 6; y <= 14; ++y)
      for (int z = 6; z <= 14; ++z) mask->SetPixel({{x, y, z}}, 1);
  const auto eroded = erode_mask(mask, 2.0);
  EXPECT_EQ(count(eroded), 5u * 5u * 5u);
  EXPECT_EQ(eroded->GetPixel({{8, 8, 8}}), 1);
  EXPECT_EQ(eroded->GetPixel({{7, 10, 10}}), 0);
  EXPECT_LE(count(dilate_mask(eroded, 2.0)), count(mask));
}

TEST(MaskOperations, ZeroDistanceAndEmptyMasksComeBackUnchanged) {
  auto mask = empty_mask(9, 1.0);
  EXPECT_EQ(count(dilate_mask(mask, 3.0)), 0u);
  EXPECT_EQ(count(erode_mask(mask, 3.0)), 0u);
  mask->SetPixel({{4, 4, 4}}, 1);
  EXPECT_EQ(dilate_mask(mask, 0.0).GetPointer(), mask.GetPointer());
  EXPECT_EQ(erode_mask(mask, -1.0).GetPointer(), mask.GetPointer());
  EXPECT_TRUE(any_set(mask));
}

TEST(MaskOperations, ClosingNeverRemovesAVoxel) {
  // erode(dilate(m)) contains m: the brain extraction's closing only fills, at any spacing.
  for (double spacing : {1.0, 2.0}) {
    auto mask = empty_mask(24, spacing);
    for (int x = 4; x < 20; ++x)
      for (int y = 4; y < 20; ++y)
        for (int z = 4; z < 20; ++z)
          if ((x * 7 + y * 3 + z * 5) % 11 < 8 && (x - 12) * (x - 12) + (y - 12) * (y - 12) < 50) mask->SetPixel({{x, y, z}}, 1);
    const auto closed = erode_mask(dilate_mask(mask, 2.0 * spacing), 2.0 * spacing);
    std::size_t lost = 0;
    itk::ImageRegionConstIteratorWithIndex<MaskType> it(mask, mask->GetLargestPossibleRegion());
    for (; !it.IsAtEnd(); ++it) lost += it.Get() && !closed->GetPixel(it.GetIndex()) ? 1 : 0;
    EXPECT_EQ(lost, 0u) << "spacing " << spacing;
    EXPECT_GT(count(closed), count(mask)) << "the gaps between voxels are filled";
  }
}
