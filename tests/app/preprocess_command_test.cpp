// `brainage preprocess` and `brainage predict` with an output folder that cannot be
// written: exit 4 with one line naming the folder, checked before the minutes of
// preprocessing, and nothing created.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>

#include "tests/bad_scan_corpus.h"
#include "tests/cli_runner.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::testing;

namespace {

/// Runs `brainage <command> <scan> -o <out>`; expects exit 4 naming `out` with `rule`, in
/// one line, quickly (no preprocessing ran) and with nothing created at `out`.
void expect_output_error(const std::string& command, const fs::path& scan, const fs::path& out,
                         const std::string& rule) {
  SCOPED_TRACE(command + " -o " + out.string());
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_brainage(command + " \"" + scan.string() + "\" -o \"" + out.string() + "\"");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.code, 4) << r.out;
  const auto at = r.out.find("brainage: OutputError: " + out.string() + ": ");
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_NE(r.out.find(rule, at), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin() + static_cast<std::ptrdiff_t>(at), r.out.end(), '\n'), 1) << r.out;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_LT(seconds, 60.0) << "the output folder is checked before preprocessing";
}

}  // namespace

TEST(PreprocessCommand, OutputBelowARegularFileIsAnOutputError) {
  const auto dir = scratch_dir("preprocess-unwritable");
  write_good_scan(dir / "scan.nii.gz", 0.f);
  std::ofstream(dir / "plain-file") << "x";
  expect_output_error("preprocess", dir / "scan.nii.gz", dir / "plain-file" / "prep", "is not a directory");
  expect_output_error("predict", dir / "scan.nii.gz", dir / "plain-file" / "pred", "is not a directory");
}

TEST(PreprocessCommand, ReadOnlyOutputFolderIsAnOutputError) {
  if (!permissions_apply()) GTEST_SKIP() << "running as root, which writes into a read-only folder anyway";
  const auto dir = scratch_dir("preprocess-read-only");
  write_good_scan(dir / "scan.nii.gz", 0.f);
  fs::create_directories(dir / "locked");
  fs::permissions(dir / "locked", fs::perms::owner_read | fs::perms::owner_exec);
  expect_output_error("preprocess", dir / "scan.nii.gz", dir / "locked" / "prep", "not writable");
  expect_output_error("predict", dir / "scan.nii.gz", dir / "locked" / "pred", "not writable");
  fs::permissions(dir / "locked", fs::perms::owner_all);
}

TEST(PreprocessCommand, BadPipelineOptionsAreUsageErrorsBeforeAnyWork) {
  const auto dir = scratch_dir("preprocess-bad-options");
  write_good_scan(dir / "scan.nii.gz", 0.f);
  for (const std::string bad : {"--brain-pass sometimes", "--focused-pass never", "--bias-shrink-mm 0",
                                "--bias-iterations 50 0", "--brain-bias-iterations 0"}) {
    const auto r = run_brainage("preprocess \"" + (dir / "scan.nii.gz").string() + "\" -o \"" + (dir / "out").string() +
                                "\" " + bad);
    EXPECT_EQ(r.code, 2) << bad << ": " << r.out;
    EXPECT_NE(r.out.find("brainage: UsageError: --"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(dir / "out")) << bad << ": nothing may be written";
  }
}

// ITK and GDCM print their own warnings and errors (an Analyze header read by ITK's NIfTI
// reader, a folder whose one .dcm is not DICOM); brainage's own line must be the only one
// (preprocessing/library_messages.h), and BRAINAGE_LIBRARY_MESSAGES=1 brings theirs back.
TEST(PreprocessCommand, UnreadableInputsGetOneLineWithoutTheLibrariesMessages) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("brainage_library_messages_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "not_dicom");
  std::ofstream(dir / "not_dicom" / "IM0001.dcm") << "this is not a DICOM file\n";
  const auto r = run_brainage("predict \"" + (dir / "not_dicom").string() + "\" -o \"" + (dir / "out").string() + "\"");
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_EQ(r.out.rfind("brainage: InvalidInputError: " + (dir / "not_dicom").string() + ": folder holds no DICOM series", 0),
            0u)
      << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  const auto debug = run_brainage_env("BRAINAGE_LIBRARY_MESSAGES=1",
                                      "info \"" + (dir / "not_dicom").string() + "\"");
  EXPECT_EQ(debug.code, 3) << debug.out;
  EXPECT_GT(std::count(debug.out.begin(), debug.out.end(), '\n'), 1) << debug.out;
  fs::remove_all(dir);
}
