// `brainage visualize`: a synthetic prediction folder end to end through the executable,
// and the exit codes for a scan (usage) and a missing folder (invalid input).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "tests/cli_runner.h"
#include "tests/test_data.h"
#include "tests/viz/viz_fixture.h"

namespace fs = std::filesystem;
using namespace brainage::testing;

TEST(VisualizeCommand, WritesTheMapsOfAPredictionFolder) {
  BRAINAGE_REQUIRE_PATH(mricron_templates_dir() / "aal.nii.gz");
  const auto in = process_scratch_dir("visualize-in");
  write_synthetic_prediction(in, 6, 16);
  const auto out = process_scratch_dir("visualize-out");
  const auto r = run_brainage("visualize " + in.string() + " -o " + out.string() + " --no-3d");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* f : {"experts_mni2mm.nii.gz", "experts_native.nii.gz", "experts.lut", "experts_itksnap.txt",
                        "experts_slicer.ctbl", "expert_regions.csv", "specialisation.csv", "experts_ortho.png",
                        "experts_mosaic.png", "maps.json"})
    EXPECT_TRUE(fs::exists(out / f)) << f << "\n" << r.out;
  EXPECT_FALSE(fs::exists(out / "experts_3d.png"));
  EXPECT_NE(r.out.find("AAL region"), std::string::npos) << r.out;
  if (!HasFailure()) {
    fs::remove_all(in);
    fs::remove_all(out);
  }
}

TEST(VisualizeCommand, RefusesAScanAndAMissingFolderWithClearCodes) {
  const auto dir = process_scratch_dir("visualize-bad");
  std::ofstream(dir / "scan.nii.gz") << "not really";
  const auto scan = run_brainage("visualize " + (dir / "scan.nii.gz").string());
  EXPECT_EQ(scan.code, 2) << scan.out;
  EXPECT_NE(scan.out.find("predict"), std::string::npos) << scan.out;
  const auto missing = run_brainage("visualize " + (dir / "nowhere").string());
  EXPECT_EQ(missing.code, 3) << missing.out;
  fs::remove_all(dir);
}
