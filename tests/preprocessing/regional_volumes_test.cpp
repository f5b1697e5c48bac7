// Regional volumes: the AAL atlas lands on the model grid the right way round (left
// regions at RAS x < 0), each region's volume is exactly the sum of the maps over its
// voxels, and the CSV holds one line per region; broken names files are refused.
#include "preprocessing/regional_volumes.h"

#include <gtest/gtest.h>

#include <itkImageRegionConstIteratorWithIndex.h>
#include <itkImageRegionIteratorWithIndex.h>

#include <fstream>
#include <map>

#include "common/errors.h"
#include "preprocessing/model_grid.h"
#include "tests/test_data.h"

using namespace brainage::preprocessing;
using brainage::testing::mricron_templates_dir;
using brainage::testing::scratch_dir;

TEST(RegionalVolumes, AalRegionsSumTheMapsOnTheRightSide) {
  BRAINAGE_REQUIRE_PATH(mricron_templates_dir() / "aal.nii.gz");
  const auto& atlas = load_aal_atlas(mricron_templates_dir());
  ASSERT_EQ(atlas.regions.size(), 116u);
  EXPECT_EQ(atlas.regions[0].name, "Precentral_L");
  // GM map: 0.008 mL everywhere; WM: the voxel's RAS x in mL (signed); CSF: 0.
  std::array<ImageType::Pointer, 3> maps{make_model_grid_image(0.f), make_model_grid_image(0.008f),
                                         make_model_grid_image(0.f)};
  itk::ImageRegionIteratorWithIndex<ImageType> w(maps[2], maps[2]->GetLargestPossibleRegion());
  for (; !w.IsAtEnd(); ++w) w.Set(static_cast<float>(kModelGridOriginRAS[0] + 2.0 * w.GetIndex()[0]));
  const auto volumes = regional_volumes(maps, atlas);
  ASSERT_EQ(volumes.size(), 116u);
  std::map<std::string, const RegionVolume*> by_name;
  for (const auto& v : volumes) {
    by_name[v.name] = &v;
    EXPECT_GT(v.voxels, 0u) << v.name;
    EXPECT_NEAR(v.ml[1], 0.008 * static_cast<double>(v.voxels), 1e-6 * static_cast<double>(v.voxels)) << v.name;
    EXPECT_EQ(v.ml[0], 0.0);
  }
  // Σ x over a left region is negative, over its right twin positive; twins are alike in size.
  for (const std::string base : {"Precentral", "Hippocampus", "Occipital_Sup", "Cerebelum_Crus1"}) {
    const auto* left = by_name.at(base + "_L");
    const auto* right = by_name.at(base + "_R");
    EXPECT_LT(left->ml[2], 0.0) << base;
    EXPECT_GT(right->ml[2], 0.0) << base;
    EXPECT_NEAR(static_cast<double>(left->voxels) / static_cast<double>(right->voxels), 1.0, 0.35) << base;
  }
  // Hippocampus: a few mL at 2 mm (AAL's is about 7-8 mL per side).
  EXPECT_GT(by_name.at("Hippocampus_L")->ml[1], 4.0);
  EXPECT_LT(by_name.at("Hippocampus_L")->ml[1], 12.0);

  const auto dir = scratch_dir("regional-volumes");
  write_regional_volumes_csv(volumes, dir / "regional_volumes.csv");
  std::ifstream in(dir / "regional_volumes.csv");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "label,region,csf_ml,gm_ml,wm_ml,voxels");
  int rows = 0;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("1,Precentral_L,0.0000,", 0), 0u) << line;
  for (++rows; std::getline(in, line);) ++rows;
  EXPECT_EQ(rows, 116);
  std::filesystem::remove_all(dir);
}

TEST(RegionalVolumes, BrokenInputsAreRefusedNamingTheFile) {
  BRAINAGE_REQUIRE_PATH(mricron_templates_dir() / "aal.nii.gz");
  const auto dir = scratch_dir("regional-volumes-bad");
  {
    std::ofstream bad(dir / "names.txt");
    bad << "1 Precentral_L 2001\nnot-a-number Frontal\n";
  }
  try {
    load_model_grid_atlas(mricron_templates_dir() / "aal.nii.gz", dir / "names.txt");
    FAIL() << "a malformed names line was accepted";
  } catch (const brainage::InvalidInputError& e) {
    EXPECT_NE(std::string(e.what()).find("names.txt: line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_model_grid_atlas(dir / "missing.nii.gz", mricron_templates_dir() / "aal.nii.txt"),
               brainage::InvalidInputError);
  EXPECT_THROW(load_model_grid_atlas(mricron_templates_dir() / "aal.nii.gz", dir / "missing.txt"),
               brainage::InvalidInputError);
  const auto& atlas = load_aal_atlas(mricron_templates_dir());
  std::array<ImageType::Pointer, 3> off_grid{ImageType::New(), ImageType::New(), ImageType::New()};
  EXPECT_THROW(regional_volumes(off_grid, atlas), brainage::ProcessingError);
  std::filesystem::remove_all(dir);
}
