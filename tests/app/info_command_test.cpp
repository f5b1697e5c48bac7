// The `brainage` executable end to end: help, version, info, and exit codes on bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/nifti_fixture.h"
#include "tests/cli_runner.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::testing;

TEST(Cli, HelpListsSubcommands) {
  const auto r = run_brainage("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("info"), std::string::npos);
  const auto sub = run_brainage("info --help");
  EXPECT_EQ(sub.code, 0);
  EXPECT_NE(sub.out.find("--json"), std::string::npos);
}

TEST(Cli, VersionShowsOpenBlasAndThreads) {
  const auto r = run_brainage("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("ITK"), std::string::npos);
  EXPECT_NE(r.out.find("VTK"), std::string::npos);
  EXPECT_NE(r.out.find("LibTorch"), std::string::npos);
  EXPECT_NE(r.out.find("OpenBLAS"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("threads   1 "), std::string::npos) << "LibTorch left at one thread:\n" << r.out;
}

TEST(Cli, UnknownSubcommandIsUsageError) {
  const auto r = run_brainage("frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown subcommand"), std::string::npos);
}

TEST(Cli, InfoJsonOnColin27) {
  const auto path = mricron_templates_dir() / "ch2.nii.gz";
  BRAINAGE_REQUIRE_PATH(path);
  const auto r = run_brainage("info --json " + path.string());
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["size"], nlohmann::json::array({181, 217, 181}));
  EXPECT_EQ(j["orientation"], "RAS");
}

TEST(Cli, InfoOnBrokenFileExitsWithInvalidInput) {
  const auto dir = scratch_dir("cli-info");
  write_bytes(dir / "bad file ü.nii.gz", "not a nifti at all, just text that is long enough to be read" + std::string(400, 'x'), false);
  const auto r = run_brainage("info \"" + (dir / "bad file ü.nii.gz").string() + "\"");
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("bad file ü.nii.gz"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not a NIfTI"), std::string::npos) << r.out;
  // One line, no ITK stack dump.
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

// Field case 09b: a 2-volume 4D file stored PSR. `info` describes it (orientation PSR, the
// first volume's geometry); preprocess refuses it with exit 3 and one line.
TEST(Cli, InfoOnFourDimensionalFieldCasePrintsItsStoredOrientation) {
  const auto path = shared_data_dir() / "fieldcases" / "09b_ixi012_4d_two_volumes.nii.gz";
  BRAINAGE_REQUIRE_PATH(path);
  const auto text = run_brainage("info " + path.string());
  ASSERT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find("orientation  PSR\n"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("volumes      2\n"), std::string::npos) << text.out;
  const auto json = run_brainage("info --json " + path.string());
  ASSERT_EQ(json.code, 0) << json.out;
  EXPECT_EQ(nlohmann::json::parse(json.out)["orientation"], "PSR");

  const auto out = scratch_dir("cli-info-09b");
  const auto refused = run_brainage("preprocess " + path.string() + " -o " + (out / "pre").string());
  EXPECT_EQ(refused.code, 3) << refused.out;
  const auto at = refused.out.find("InvalidInputError: " + path.string() + ": ");
  ASSERT_NE(at, std::string::npos) << refused.out;
  EXPECT_NE(refused.out.find("4D with 2 volumes", at), std::string::npos) << refused.out;
  EXPECT_EQ(std::count(refused.out.begin() + static_cast<std::ptrdiff_t>(at), refused.out.end(), '\n'), 1)
      << refused.out;
}

// Field case 05b: qform (code 1) and sform (code 2, 40 mm anterior). `info` records both
// transforms, names the one followed, and warns.
TEST(Cli, InfoShowsBothTransformsWhenTheyDisagree) {
  const auto path = shared_data_dir() / "fieldcases" / "05b_ixi012_qs_disagree_shift.nii.gz";
  BRAINAGE_REQUIRE_PATH(path);
  const auto r = run_brainage("info --json " + path.string());
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["nifti_xforms"]["used"], "sform");
  EXPECT_EQ(j["nifti_xforms"]["qform"]["code"], 1);
  EXPECT_EQ(j["nifti_xforms"]["sform"]["code"], 2);
  EXPECT_NEAR(j["nifti_xforms"]["sform"]["matrix"][1][3].get<double>() -
                  j["nifti_xforms"]["qform"]["matrix"][1][3].get<double>(),
              40.0, 1e-3);
  ASSERT_EQ(j["warnings"].size(), 1u);
  EXPECT_NE(j["warnings"][0].get<std::string>().find("following the sform"), std::string::npos);
  const auto text = run_brainage("info " + path.string());
  EXPECT_NE(text.out.find("transforms   qform code 1, sform code 2; placed by the sform"), std::string::npos)
      << text.out;
}

// `info` says beforehand what `preprocess`/`predict` will refuse on voxel size (the same
// rule, preprocessing::voxel_size_refusal): 2x2x3 mm (12 mm³ > 9 mm³) is flagged, 2 mm
// isotropic is not.
TEST(Cli, InfoWarnsWhenTheVoxelSizeWillBeRefused) {
  const auto dir = scratch_dir("cli-info-voxels");
  auto info_warnings = [&](const std::string& name, float z_mm) {
    NiftiSpec spec;
    spec.pixdim = {2.f, 2.f, z_mm};
    const float srow[3][4] = {{2, 0, 0, 0}, {0, 2, 0, 0}, {0, 0, z_mm, 0}};
    std::memcpy(spec.srow, srow, sizeof srow);
    const auto r = run_brainage("info --json " + write_nifti(dir / name, spec).string());
    EXPECT_EQ(r.code, 0) << r.out;
    return nlohmann::json::parse(r.out)["warnings"].dump();
  };
  const auto thick = info_warnings("thick.nii", 3.f);
  EXPECT_NE(thick.find("preprocess and predict will refuse this scan: voxels of 2.00 x 2.00 x 3.00 mm (12.0 mm3)"),
            std::string::npos) << thick;
  const auto iso = info_warnings("iso.nii", 2.f);
  EXPECT_EQ(iso.find("will refuse"), std::string::npos) << iso;
}
