// The model grid: geometry (MNI-aligned, 2 mm, 80x96x80, documented origin), buffer order and
// atomic NIfTI round trips that keep the geometry.
#include "preprocessing/model_grid.h"

#include <gtest/gtest.h>

#include "common/errors.h"
#include "tests/test_data.h"

using namespace brainage::preprocessing;
namespace fs = std::filesystem;

TEST(ModelGrid, GeometryIsTheDocumentedMniBox) {
  const auto image = make_model_grid_image(0.5f);
  const auto size = image->GetLargestPossibleRegion().GetSize();
  EXPECT_EQ(size[0], 80u);
  EXPECT_EQ(size[1], 96u);
  EXPECT_EQ(size[2], 80u);
  for (unsigned d = 0; d < 3; ++d) EXPECT_DOUBLE_EQ(image->GetSpacing()[d], 2.0);
  // voxel (0,0,0) at RAS (-79, -112, -70) = LPS (79, 112, -70); voxel (79,95,79) at RAS (79, 78, 88)
  ImageType::PointType p;
  image->TransformIndexToPhysicalPoint({{0, 0, 0}}, p);
  EXPECT_NEAR(p[0], 79, 1e-9);
  EXPECT_NEAR(p[1], 112, 1e-9);
  EXPECT_NEAR(p[2], -70, 1e-9);
  image->TransformIndexToPhysicalPoint({{79, 95, 79}}, p);
  EXPECT_NEAR(p[0], -79, 1e-9);
  EXPECT_NEAR(p[1], -78, 1e-9);
  EXPECT_NEAR(p[2], 88, 1e-9);
  // MNI origin (anterior commissure) inside the grid
  ImageType::IndexType idx;
  p.Fill(0);
  ASSERT_TRUE(image->TransformPhysicalPointToIndex(p, idx));
  EXPECT_TRUE(is_model_grid(image));
  EXPECT_EQ(image->GetPixel(idx), 0.5f);
}

TEST(ModelGrid, BufferIsXFastestAndRoundTrips) {
  auto image = make_model_grid_image();
  image->SetPixel({{3, 5, 7}}, 42.f);
  const auto buffer = image_to_buffer(image);
  ASSERT_EQ(buffer.size(), 80u * 96u * 80u);
  EXPECT_EQ(buffer[(7 * 96 + 5) * 80 + 3], 42.f);  // [z][y][x]
  const auto back = buffer_to_model_grid(buffer);
  EXPECT_TRUE(is_model_grid(back));
  EXPECT_EQ(back->GetPixel({{3, 5, 7}}), 42.f);
  EXPECT_THROW(buffer_to_model_grid(std::vector<float>(10)), brainage::ProcessingError);
  auto other = ImageType::New();
  other->SetRegions(ImageType::RegionType(ImageType::SizeType{{80, 96, 81}}));
  other->Allocate();
  EXPECT_THROW(image_to_buffer(other), brainage::ProcessingError);
}

TEST(ModelGrid, NiftiRoundTripKeepsGeometry) {
  const auto dir = brainage::testing::scratch_dir("model-grid");
  auto image = make_model_grid_image(1.25f);
  write_image(image, dir / "t1.nii.gz");
  auto mask = make_model_grid_mask(1);
  write_mask(mask, dir / "mask.nii.gz");
  const auto back = read_image(dir / "t1.nii.gz");
  EXPECT_TRUE(is_model_grid(back));
  EXPECT_EQ(back->GetPixel({{10, 20, 30}}), 1.25f);
  const auto mask_back = read_mask(dir / "mask.nii.gz");
  EXPECT_TRUE(is_model_grid(mask_back));
  for (const auto& entry : fs::directory_iterator(dir))  // no temporaries left behind
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
  EXPECT_THROW(read_image(dir / "missing.nii.gz"), brainage::InvalidInputError);
}
