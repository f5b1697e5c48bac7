// check_scan_plausible: images that read fine but cannot be a head scan are refused with one
// line naming the file and the rule; a huge but consistent range and bright voxels are not.
#include "preprocessing/scan_plausibility.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "common/errors.h"
#include "preprocessing/scan_reader.h"
#include "tests/bad_scan_corpus.h"
#include "tests/preprocessing/synthetic_images.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::testing;
using brainage::InvalidInputError;
using brainage::preprocessing::check_scan_plausible;
using brainage::preprocessing::load_scan;

namespace {

/// The message of the InvalidInputError check_scan_plausible throws, "" when it accepts.
std::string rejection(const brainage::preprocessing::ImageType* image, const fs::path& path) {
  try {
    check_scan_plausible(image, path);
  } catch (const InvalidInputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ScanPlausibility, CorpusKindsAreRefusedWithTheirRule) {
  const auto dir = scratch_dir("plausibility-corpus");
  int checked = 0;
  for (const auto& bad : write_bad_scan_corpus(dir)) {
    if (!bad.plausibility) continue;
    SCOPED_TRACE(bad.kind);
    const std::string msg = rejection(load_scan(bad.path).image, bad.path);
    EXPECT_EQ(msg.rfind(bad.path.string() + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(bad.rule), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

TEST(ScanPlausibility, OneCorruptVoxelIsNamedAsSuchNotAsNoise) {
  auto image = make_blob_image(32, 2.0);
  image->GetBufferPointer()[1000] = 1e30f;
  const std::string msg = rejection(image, "hot.nii");
  EXPECT_NE(msg.find("intensity range is implausible: 1 voxel(s)"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("noise"), std::string::npos) << msg;
  image->GetBufferPointer()[1000] = -1e30f;  // magnitude counts
  EXPECT_NE(rejection(image, "cold.nii").find("intensity range"), std::string::npos);
}

TEST(ScanPlausibility, HugeButConsistentRangeAndBrightVoxelsAreAccepted) {
  auto image = make_blob_image(32, 2.0);
  const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  float* p = image->GetBufferPointer();
  for (std::size_t i = 0; i < n; ++i) p[i] = p[i] * 1e30f + 1e29f;  // a scanner scale of 1e30
  EXPECT_EQ(rejection(image, "scaled.nii"), "");
  auto vessel = make_blob_image(32, 2.0);
  vessel->GetBufferPointer()[n / 2] = 1800.f;  // 10x the blob's brightest voxel
  EXPECT_EQ(rejection(vessel, "vessel.nii"), "");
}

TEST(ScanPlausibility, Colin27WithOneCorruptVoxel) {
  const auto ch2 = mricron_templates_dir() / "ch2.nii.gz";
  BRAINAGE_REQUIRE_PATH(ch2);
  auto image = load_scan(ch2).image;
  EXPECT_EQ(rejection(image, ch2), "");
  const auto size = image->GetLargestPossibleRegion().GetSize();
  image->GetBufferPointer()[(size[2] / 2 * size[1] + size[1] / 2) * size[0] + size[0] / 2] = 1e30f;
  EXPECT_NE(rejection(image, ch2).find("intensity range is implausible"), std::string::npos);
}

// A real scan quantised to 5 or 32 grey levels (what uint8 voxels with a scl_inter of 1e9
// or 1e8 become in float32: they read 20 and 2.4 y off, QC passed) is refused with the rule;
// the scan itself, and the same scan at 128 levels, pass.
TEST(ScanPlausibility, AScanWithOnlyAFewGreyLevelsIsRefused) {
  const auto scan = shared_data_dir() / "ixi-hh-2mm" / "t1" / "IXI012-HH-1211_T1.nii.gz";
  BRAINAGE_REQUIRE_PATH(scan);
  for (const int levels : {5, 32, 128}) {
    auto image = load_scan(scan).image;
    const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
    float* p = image->GetBufferPointer();
    const float hi = *std::max_element(p, p + n);
    for (std::size_t i = 0; i < n; ++i) p[i] = std::round(p[i] / hi * (levels - 1)) * 64.f + 1e9f;  // 1e9 + 64 k: exact in float32
    const std::string msg = rejection(image, scan);
    if (levels < 100) {
      EXPECT_NE(msg.find("only " + std::to_string(levels) + " distinct intensities"), std::string::npos) << msg;
      EXPECT_EQ(msg.rfind(scan.string() + ": ", 0), 0u) << msg;
    } else {
      EXPECT_EQ(msg, "") << levels << " levels";
    }
  }
  EXPECT_EQ(rejection(load_scan(scan).image, scan), "");
}
