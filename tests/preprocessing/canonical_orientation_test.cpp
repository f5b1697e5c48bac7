// Canonical orientation keeps every voxel at its physical position; masks come back to the
// input grid voxel for voxel.
#include "preprocessing/canonical_orientation.h"

#include <gtest/gtest.h>

#include <itkOrientImageFilter.h>

#include <cmath>
#include <cstring>

#include "preprocessing/scan_info.h"
#include "preprocessing/scan_reader.h"
#include "tests/test_data.h"

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

namespace {

/// Rotation by `deg` degrees about world axis `axis` (0, 1, 2 = LPS x, y, z).
ImageType::DirectionType rotation(unsigned axis, double deg) {
  const double a = deg * M_PI / 180.0, c = std::cos(a), s = std::sin(a);
  ImageType::DirectionType r;
  r.SetIdentity();
  const unsigned u = (axis + 1) % 3, v = (axis + 2) % 3;
  r(u, u) = c;
  r(u, v) = -s;
  r(v, u) = s;
  r(v, v) = c;
  return r;
}

/// A 7x6x5 image with distinct voxel values, anisotropic spacing and the given direction.
ImageType::Pointer numbered_image(const ImageType::DirectionType& direction) {
  auto image = ImageType::New();
  image->SetRegions(ImageType::RegionType(ImageType::SizeType{{7, 6, 5}}));
  ImageType::SpacingType sp;
  sp[0] = 1.0;
  sp[1] = 1.5;
  sp[2] = 2.5;
  image->SetSpacing(sp);
  image->SetDirection(direction);
  ImageType::PointType origin;
  origin[0] = -12.5;
  origin[1] = 30.25;
  origin[2] = 7.0;
  image->SetOrigin(origin);
  image->Allocate();
  for (std::size_t i = 0; i < 7 * 6 * 5; ++i) image->GetBufferPointer()[i] = static_cast<float>(i);
  return image;
}

/// Every input voxel sits, with its value, exactly on a voxel of `canonical` at the same
/// physical point; the two have the same number of voxels.
void expect_voxels_in_place(const ImageType* input, const ImageType* canonical, const std::string& what) {
  ASSERT_EQ(input->GetLargestPossibleRegion().GetNumberOfPixels(),
            canonical->GetLargestPossibleRegion().GetNumberOfPixels()) << what;
  const auto size = input->GetLargestPossibleRegion().GetSize();
  for (long k = 0; k < static_cast<long>(size[2]); ++k)
    for (long j = 0; j < static_cast<long>(size[1]); ++j)
      for (long i = 0; i < static_cast<long>(size[0]); ++i) {
        const ImageType::IndexType idx{{i, j, k}};
        ImageType::PointType p;
        input->TransformIndexToPhysicalPoint(idx, p);
        const auto c = canonical->TransformPhysicalPointToContinuousIndex<double>(p);
        ImageType::IndexType cidx;
        for (unsigned d = 0; d < 3; ++d) {
          cidx[d] = std::lround(c[d]);
          ASSERT_NEAR(c[d], static_cast<double>(cidx[d]), 1e-9) << what << ": voxel " << idx << " moved";
        }
        ASSERT_TRUE(canonical->GetLargestPossibleRegion().IsInside(cidx)) << what;
        ASSERT_EQ(canonical->GetPixel(cidx), input->GetPixel(idx)) << what << ": voxel " << idx;
      }
}

}  // namespace

TEST(CanonicalOrientation, HeaderRotationsFrom0To90DegreesAndExactly45KeepEveryVoxelInPlace) {
  ImageType::DirectionType psr;
  psr.Fill(0);
  psr(1, 0) = 1;
  psr(2, 1) = 1;
  psr(0, 2) = -1;
  ImageType::DirectionType identity;
  identity.SetIdentity();
  for (const auto& [base_name, base] : {std::pair{"LPS", identity}, std::pair{"PSR", psr}})
    for (unsigned axis = 0; axis < 3; ++axis)
      for (double deg : {0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0, -45.0, 135.0}) {
        const std::string what = std::string(base_name) + " rotated " + std::to_string(deg) + " deg about axis " +
                                 std::to_string(axis);
        const auto input = numbered_image(rotation(axis, deg) * base);
        ImageType::Pointer canonical;
        ASSERT_NO_THROW(canonical = to_canonical_orientation(input)) << what;
        expect_voxels_in_place(input, canonical, what);
        // Each output axis points towards R, A, S as closely as any re-indexing allows.
        const auto& d = canonical->GetDirection();
        EXPECT_GE(-d[0][0], -1e-12) << what;
        EXPECT_GE(-d[1][1], -1e-12) << what;
        EXPECT_GE(d[2][2], -1e-12) << what;
        EXPECT_GE(std::abs(d[0][0]) + std::abs(d[1][1]) + std::abs(d[2][2]), 2.0 * std::cos(M_PI / 4) + 1 - 1e-9)
            << what;
      }
}

TEST(CanonicalOrientation, Exact45DegreeTiesGoToTheIdentityPermutation) {
  for (unsigned axis = 0; axis < 3; ++axis) {
    const auto re = canonical_axis_reindexing(rotation(axis, 45.0));
    EXPECT_EQ(re.source_axis, (std::array<unsigned, 3>{0, 1, 2})) << "axis " << axis;
    // ... whichever side of 45 degrees rounding puts the two cosines.
    EXPECT_EQ(canonical_axis_reindexing(rotation(axis, 45.0 + 1e-9)).source_axis, re.source_axis);
    EXPECT_EQ(canonical_axis_reindexing(rotation(axis, 45.0 - 1e-9)).source_axis, re.source_axis);
  }
  // Clear of a tie, the closer axis wins.
  EXPECT_EQ(canonical_axis_reindexing(rotation(0, 50.0)).source_axis, (std::array<unsigned, 3>{0, 2, 1}));
}

namespace {
/// The canonical image itk::OrientImageFilter (what the pipeline used before) makes.
ImageType::Pointer orient_image_filter(const ImageType* input) {
  auto orient = itk::OrientImageFilter<ImageType, ImageType>::New();
  orient->SetInput(input);
  orient->UseImageDirectionOn();
  orient->SetDesiredCoordinateOrientation(itk::SpatialOrientation::ITK_COORDINATE_ORIENTATION_LPI);
  orient->Update();
  return orient->GetOutput();
}
}  // namespace

// On real scans the re-indexing gives what the pipeline got before, bit for bit, so
// preprocessing outputs do not change where the old filter worked.
TEST(CanonicalOrientation, RealScansBitForBitAsWithOrientImageFilter) {
  for (const auto& path : {brainage::testing::shared_data_dir() / "fieldcases" / "00_ixi012_orig.nii.gz",
                           brainage::testing::mricron_templates_dir() / "ch2.nii.gz"}) {
    if (!std::filesystem::exists(path)) continue;
    const auto scan = load_scan(path);
    const auto ours = to_canonical_orientation(scan.image), theirs = orient_image_filter(scan.image);
    EXPECT_EQ(ours->GetLargestPossibleRegion(), theirs->GetLargestPossibleRegion()) << path;
    EXPECT_EQ(ours->GetSpacing(), theirs->GetSpacing()) << path;
    EXPECT_EQ(ours->GetOrigin(), theirs->GetOrigin()) << path;
    EXPECT_EQ(ours->GetDirection(), theirs->GetDirection()) << path;
    const std::size_t n = ours->GetLargestPossibleRegion().GetNumberOfPixels();
    EXPECT_EQ(std::memcmp(ours->GetBufferPointer(), theirs->GetBufferPointer(), n * sizeof(float)), 0) << path;
  }
}

TEST(CanonicalOrientation, SameResultAsItkOrientImageFilterWhereThatFilterWorks) {
  for (double deg : {0.0, 15.0, 30.0, 60.0, 75.0, 90.0}) {
    const auto input = numbered_image(rotation(1, deg) * rotation(2, 90.0));
    const auto theirs = orient_image_filter(input);
    const auto ours = to_canonical_orientation(input);
    EXPECT_EQ(ours->GetLargestPossibleRegion(), theirs->GetLargestPossibleRegion()) << deg;
    EXPECT_EQ(ours->GetSpacing(), theirs->GetSpacing()) << deg;
    for (unsigned r = 0; r < 3; ++r) {
      EXPECT_NEAR(ours->GetOrigin()[r], theirs->GetOrigin()[r], 1e-9) << deg;
      for (unsigned c = 0; c < 3; ++c) EXPECT_NEAR(ours->GetDirection()[r][c], theirs->GetDirection()[r][c], 1e-12);
    }
    const std::size_t n = ours->GetLargestPossibleRegion().GetNumberOfPixels();
    ASSERT_EQ(std::memcmp(ours->GetBufferPointer(), theirs->GetBufferPointer(), n * sizeof(float)), 0) << deg;
  }
}

// Field case 11d: IXI012 with its header rotated 45 degrees pitch + 15 degrees yaw.
TEST(CanonicalOrientation, FieldCase11dObliquePitch45) {
  const auto path = brainage::testing::shared_data_dir() / "fieldcases" / "11d_ixi012_oblique_pitch45.nii.gz";
  BRAINAGE_REQUIRE_PATH(path);
  const auto scan = load_scan(path);
  ImageType::Pointer canonical;
  ASSERT_NO_THROW(canonical = to_canonical_orientation(scan.image));
  expect_voxels_in_place(scan.image, canonical, "11d");
}

TEST(CanonicalOrientation, OrientationCodesNameEachWorldAxisOnce) {
  for (unsigned axis = 0; axis < 3; ++axis)
    for (double deg : {0.0, 15.0, 45.0, 60.0, 90.0}) {
      const std::string code = orientation_code(rotation(axis, deg) * rotation((axis + 1) % 3, 45.0));
      const auto has = [&](char a, char b) { return code.find(a) != std::string::npos || code.find(b) != std::string::npos; };
      EXPECT_TRUE(has('R', 'L') && has('A', 'P') && has('S', 'I')) << code << " for " << deg << " deg about " << axis;
    }
  EXPECT_EQ(orientation_code(rotation(0, 45.0)), "LPS");  // the tie goes to the identity axis order
}
