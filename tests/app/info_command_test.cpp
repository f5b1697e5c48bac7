// The `brainage` executable end to end: help, version, info, and exit codes on bad input.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
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
