// Canonical orientation keeps every voxel at its physical position; masks come back to the
// input grid voxel for voxel.
#include "preprocessing/canonical_orientation.h"

#include <gtest/gtest.h>

#include "preprocessing/scan_info.h"

using namespace brainage::preprocessing;

TEST(CanonicalOrientation, PsrScanBecomesRasWithoutMovingVoxels) {
  auto image = ImageType::New();
  image->SetRegions(ImageType::RegionType(ImageType::SizeType{{12, 10, 8}}));
  ImageType::SpacingType sp;
  sp[0] = 1.0;
  sp[1] = 1.5;
  sp[2] = 2.0;
  image->SetSpacing(sp);
  ImageType::DirectionType psr;
  psr.Fill(0);
  psr(1, 0) = 1;
  psr(2, 1) = 1;
  psr(0, 2) = -1;
  image->SetDirection(psr);
  ImageType::PointType origin;
  origin[0] = 10;
  origin[1] = -20;
  origin[2] = 30;
  image->SetOrigin(origin);
  image->Allocate();
  for (std::size_t i = 0; i < 12 * 10 * 8; ++i) image->GetBufferPointer()[i] = static_cast<float>(i);
  ASSERT_EQ(orientation_code(image->GetDirection()), "PSR");
  const auto canonical = to_canonical_orientation(image);
  EXPECT_EQ(orientation_code(canonical->GetDirection()), "RAS");
  // every voxel value sits at the same physical point
  for (std::size_t i = 0; i < 12 * 10 * 8; i += 7) {
    ImageType::IndexType idx{{static_cast<long>(i % 12), static_cast<long>((i / 12) % 10), static_cast<long>(i / 120)}};
    ImageType::PointType p;
    image->TransformIndexToPhysicalPoint(idx, p);
    ImageType::IndexType cidx;
    ASSERT_TRUE(canonical->TransformPhysicalPointToIndex(p, cidx));
    EXPECT_EQ(canonical->GetPixel(cidx), image->GetPixel(idx));
  }
  // a mask on the canonical grid comes back to the input grid exactly
  auto mask = MaskType::New();
  mask->CopyInformation(canonical);
  mask->SetRegions(canonical->GetLargestPossibleRegion());
  mask->Allocate();
  for (std::size_t i = 0; i < 12 * 10 * 8; ++i)
    mask->GetBufferPointer()[i] = static_cast<unsigned char>(static_cast<int>(canonical->GetBufferPointer()[i]) % 3 == 0);
  const auto back = resample_mask_to_grid(mask, image);
  EXPECT_EQ(back->GetLargestPossibleRegion(), image->GetLargestPossibleRegion());
  EXPECT_EQ(back->GetDirection(), image->GetDirection());
  for (std::size_t i = 0; i < 12 * 10 * 8; ++i)
    ASSERT_EQ(back->GetBufferPointer()[i], static_cast<int>(image->GetBufferPointer()[i]) % 3 == 0) << i;
}
