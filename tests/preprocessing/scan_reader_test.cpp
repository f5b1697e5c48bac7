// Load + validate: every broken input gets one InvalidInputError naming the file and the rule.
#include "preprocessing/scan_reader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/errors.h"
#include "preprocessing/scan_info.h"
#include "tests/bad_scan_corpus.h"
#include "tests/dicom_fixture.h"
#include "tests/nifti_fixture.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::testing;
using brainage::InvalidInputError;
using brainage::preprocessing::load_scan;

namespace {

/// Expects load_scan(path) to throw InvalidInputError whose message names the file and contains `rule`.
void expect_rejected(const fs::path& path, const std::string& rule,
                     const brainage::preprocessing::ScanValidationOptions& options = {}) {
  try {
    load_scan(path, options);
    ADD_FAILURE() << path << " was accepted; expected an error containing '" << rule << "'";
  } catch (const InvalidInputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(rule), std::string::npos) << "message: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message spans lines: " << msg;
  }
}

}  // namespace

class ScanReaderTest : public ::testing::Test {
 protected:
  fs::path dir_ = scratch_dir("scan-reader");
};

TEST_F(ScanReaderTest, ReadsValidFloatVolumeWithGeometry) {
  NiftiSpec spec;
  spec.dims = {20, 18, 16};
  spec.pixdim = {1.5f, 1.5f, 3.f};
  spec.srow[0][0] = 1.5f; spec.srow[1][1] = 1.5f; spec.srow[2][2] = 3.f;
  spec.srow[0][3] = -10; spec.srow[1][3] = 20; spec.srow[2][3] = 5;
  const auto path = write_nifti(dir_ / "good.nii.gz", spec);
  const auto scan = load_scan(path);
  const auto size = scan.image->GetLargestPossibleRegion().GetSize();
  EXPECT_EQ(size[0], 20u);
  EXPECT_EQ(size[2], 16u);
  EXPECT_DOUBLE_EQ(scan.image->GetSpacing()[2], 3.0);
  // NIfTI RAS (-10, 20, 5) is ITK LPS (10, -20, 5).
  EXPECT_NEAR(scan.image->GetOrigin()[0], 10.0, 1e-5);
  EXPECT_NEAR(scan.image->GetOrigin()[1], -20.0, 1e-5);
  const auto info = brainage::preprocessing::describe_scan(scan);
  EXPECT_EQ(info.orientation, "RAS");
  ASSERT_FALSE(info.warnings.empty());
  EXPECT_NE(info.warnings[0].find("anisotropic"), std::string::npos);
}

TEST_F(ScanReaderTest, MissingFile) { expect_rejected(dir_ / "nope.nii.gz", "does not exist"); }

TEST_F(ScanReaderTest, ZeroByteFile) {
  write_bytes(dir_ / "empty.nii", "", false);
  expect_rejected(dir_ / "empty.nii", "empty");
}

TEST_F(ScanReaderTest, RandomBytesNamedNiftiGz) {
  std::mt19937 rng(7);
  std::string junk(5000, '\0');
  for (auto& c : junk) c = static_cast<char>(rng());
  write_bytes(dir_ / "junk.nii.gz", junk, false);
  // zlib passes non-gzip bytes through transparently, so this is "not a NIfTI".
  expect_rejected(dir_ / "junk.nii.gz", "not a NIfTI");
}

TEST_F(ScanReaderTest, TruncatedGzip) {
  const auto good = write_nifti(dir_ / "full.nii.gz", NiftiSpec{});
  std::string bytes = read_file_bytes(good);
  write_bytes(dir_ / "cut.nii.gz", bytes.substr(0, bytes.size() / 2), false);
  expect_rejected(dir_ / "cut.nii.gz", "gzip");
}

TEST_F(ScanReaderTest, HeaderOnly) {
  write_bytes(dir_ / "hdr.nii", nifti_bytes(NiftiSpec{}, ""), false);
  expect_rejected(dir_ / "hdr.nii", "truncated");
}

TEST_F(ScanReaderTest, AbsurdVoxelCount) {
  NiftiSpec spec;
  spec.dims = {32000, 32000, 32000};
  write_bytes(dir_ / "huge.nii.gz", nifti_bytes(spec, std::string(1000, '\0')), true);
  expect_rejected(dir_ / "huge.nii.gz", "voxels, more than the limit");
}

TEST_F(ScanReaderTest, OverMemoryBudgetIsRefusedUpFront) {
  NiftiSpec spec;
  spec.dims = {64, 64, 64};  // 262144 voxels * 32 B = 8 MiB estimated
  const auto path = write_nifti(dir_ / "big.nii.gz", spec);
  brainage::preprocessing::ScanValidationOptions options;
  options.memory_budget_mib = 4;
  expect_rejected(path, "over the memory budget of 4 MiB", options);
  options.memory_budget_mib = 64;
  EXPECT_NO_THROW(load_scan(path, options));
}

TEST_F(ScanReaderTest, ZeroDimension) {
  NiftiSpec spec;
  spec.dims = {16, 0, 16};
  write_bytes(dir_ / "zero.nii", nifti_bytes(spec, ""), false);
  expect_rejected(dir_ / "zero.nii", "has size 0");
}

TEST_F(ScanReaderTest, TwoDimensional) {
  NiftiSpec spec;
  spec.dims = {64, 64};
  write_nifti(dir_ / "slice.nii", spec);
  expect_rejected(dir_ / "slice.nii", "2D");
}

TEST_F(ScanReaderTest, FourAndFiveDimensional) {
  NiftiSpec spec;
  spec.dims = {16, 16, 16, 3};
  write_nifti(dir_ / "four.nii.gz", spec);
  expect_rejected(dir_ / "four.nii.gz", "4D with 3 volumes");
  spec.dims = {16, 16, 16, 1, 2};
  write_nifti(dir_ / "five.nii.gz", spec);
  expect_rejected(dir_ / "five.nii.gz", "5D");
}

TEST_F(ScanReaderTest, FourDimensionalAllowedForInfoWithWarning) {
  NiftiSpec spec;
  spec.dims = {16, 16, 16, 3};
  const auto path = write_nifti(dir_ / "four.nii.gz", spec);
  brainage::preprocessing::ScanValidationOptions options;
  options.allow_multivolume = true;
  const auto scan = load_scan(path, options);
  EXPECT_EQ(scan.volumes, 3);
  ASSERT_EQ(scan.warnings.size(), 1u);
  EXPECT_EQ(scan.image->GetLargestPossibleRegion().GetSize()[2], 16u);
}

TEST_F(ScanReaderTest, BadSpacing) {
  for (float bad : {0.f, -1.f, std::nanf("")}) {
    NiftiSpec spec;
    spec.pixdim = {1.f, bad, 1.f};
    const auto path = write_nifti(dir_ / "spacing.nii", spec);
    expect_rejected(path, "spacing along axis 1");
  }
}

TEST_F(ScanReaderTest, NonFiniteVoxels) {
  NiftiSpec spec;
  write_bytes(dir_ / "nan.nii", nifti_bytes(spec, float_voxels(spec, 100)), false);
  expect_rejected(dir_ / "nan.nii", "NaN or Inf");
}

TEST_F(ScanReaderTest, NotANiftiName) {
  write_nifti(dir_ / "scan.nii", NiftiSpec{});
  fs::copy_file(dir_ / "scan.nii", dir_ / "scan.txt");
  expect_rejected(dir_ / "scan.txt", "not a NIfTI file name");
}

TEST_F(ScanReaderTest, EmptyFolderIsNotADicomSeries) {
  fs::create_directories(dir_ / "dicom");
  expect_rejected(dir_ / "dicom", "no DICOM series");
}

// A DICOM series with one file cut short (an interrupted copy): GDCM pads it without an
// error, so the reader compares each file's size with its parsed content and refuses the
// series naming the file; the complete series reads as the NIfTI it was written from.
TEST_F(ScanReaderTest, ADicomSeriesWithATruncatedFileIsRefused) {
  auto spec = psr_2mm_spec({24, 28, 20}, {90, 126, -72});
  const fs::path nifti = dir_ / "series.nii";
  write_bytes(nifti, nifti_bytes(spec, float_voxels(spec)), false);
  const fs::path series = write_dicom_series(nifti, dir_ / "series", "1.2.826.0.1.3680043.2.1125.19");
  const auto whole = load_scan(series);
  EXPECT_EQ(whole.image->GetLargestPossibleRegion().GetSize()[2] * whole.image->GetLargestPossibleRegion().GetSize()[1] *
                whole.image->GetLargestPossibleRegion().GetSize()[0],
            24u * 28u * 20u);
  const fs::path cut = series / "IM0010.dcm";
  ASSERT_TRUE(fs::exists(cut));
  fs::resize_file(cut, fs::file_size(cut) - 400);
  try {
    load_scan(series);
    ADD_FAILURE() << "a series with a truncated file was accepted";
  } catch (const InvalidInputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(series.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("IM0010.dcm is truncated: 400 bytes"), std::string::npos) << msg;
  }
}

// The whole bad-scan corpus (tests/bad_scan_corpus.h): each kind the reader owns is refused
// with one line naming the file and its rule (the plausibility kinds: scan_plausibility_test).
TEST_F(ScanReaderTest, EveryBadKindOfTheCorpusIsRejected) {
  const auto corpus = write_bad_scan_corpus(dir_);
  for (const auto& bad : corpus) {
    SCOPED_TRACE(bad.kind);
    if (bad.plausibility)
      EXPECT_NO_THROW(load_scan(bad.path)) << "a readable image; refused later by check_scan_plausible";
    else
      expect_rejected(bad.path, bad.rule);
  }
}

TEST_F(ScanReaderTest, NonOrthonormalDirectionMatrix) {
  NiftiSpec spec;
  spec.srow[0][1] = 0.5f;  // the sform shears x into y, and there is no qform
  const auto path = write_nifti(dir_ / "sheared.nii", spec);
  expect_rejected(path, "orthonormal");
}

TEST_F(ScanReaderTest, HugeDynamicRangeIsReadExactly) {
  // The reader keeps what is stored; check_scan_plausible judges the range.
  NiftiSpec spec;
  auto voxels = smooth_blob_voxels(spec);
  voxels[100] = 1e30f;
  voxels[200] = -3e38f;
  write_bytes(dir_ / "range.nii", nifti_bytes(spec, float_bytes(voxels)), false);
  const auto scan = load_scan(dir_ / "range.nii");
  const float* p = scan.image->GetBufferPointer();
  EXPECT_EQ(p[100], 1e30f);
  EXPECT_EQ(p[200], -3e38f);
  EXPECT_EQ(p[0], voxels[0]);
}

TEST_F(ScanReaderTest, PathWithSpacesAndNonAsciiCharacters) {
  const fs::path folder = dir_ / "my scans/Zoë Łukasz 東京";
  fs::create_directories(folder);
  const double mean = write_good_scan(folder / "T1 wëighted (1).nii.gz", 5.f);
  const auto scan = load_scan(folder / "T1 wëighted (1).nii.gz");
  const auto* image = scan.image.GetPointer();
  double sum = 0;
  for (std::size_t i = 0; i < image->GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
    sum += image->GetBufferPointer()[i];
  EXPECT_NEAR(sum / static_cast<double>(image->GetLargestPossibleRegion().GetNumberOfPixels()), mean, 1e-3);
  write_bytes(folder / "brökèn scan.nii", nifti_bytes(NiftiSpec{}, ""), false);
  expect_rejected(folder / "brökèn scan.nii", "truncated");
}

TEST_F(ScanReaderTest, UnreadableFile) {
  if (!permissions_apply()) GTEST_SKIP() << "running as root, which reads a mode-000 file anyway";
  const auto path = write_nifti(dir_ / "locked.nii.gz", NiftiSpec{});
  fs::permissions(path, fs::perms::none);
  expect_rejected(path, "cannot be opened for reading");
}

TEST(ScanReaderReal, Colin27IsRas1mm) {
  const auto path = mricron_templates_dir() / "ch2.nii.gz";
  BRAINAGE_REQUIRE_PATH(path);
  const auto info = brainage::preprocessing::describe_scan(load_scan(path));
  EXPECT_EQ(info.size, (std::array<std::size_t, 3>{181, 217, 181}));
  EXPECT_EQ(info.orientation, "RAS");
  for (double s : info.spacing) EXPECT_NEAR(s, 1.0, 1e-6);
}

TEST(ScanReaderReal, IxiScanIsPsr2mm) {
  const auto dir = shared_data_dir() / "ixi-hh-2mm" / "t1";
  BRAINAGE_REQUIRE_PATH(dir);
  fs::path first;
  for (const auto& e : fs::directory_iterator(dir))
    if (first.empty() || e.path() < first) first = e.path();
  const auto info = brainage::preprocessing::describe_scan(load_scan(first));
  EXPECT_EQ(info.size, (std::array<std::size_t, 3>{120, 120, 90}));
  EXPECT_EQ(info.orientation, "PSR");
  for (double s : info.spacing) EXPECT_NEAR(s, 2.0, 1e-3);
}

// Field case 09b: IXI012 twice in one 4D file, stored PSR. For `info` the first volume is
// placed exactly like the 3D original; processing refuses it.
TEST(ScanReaderReal, FieldCase09bFourDimensionalKeepsItsOrientation) {
  const auto dir = shared_data_dir() / "fieldcases";
  const auto four = dir / "09b_ixi012_4d_two_volumes.nii.gz", orig = dir / "00_ixi012_orig.nii.gz";
  BRAINAGE_REQUIRE_PATH(four);
  BRAINAGE_REQUIRE_PATH(orig);
  brainage::preprocessing::ScanValidationOptions options;
  options.allow_multivolume = true;
  const auto scan = load_scan(four, options);
  const auto reference = load_scan(orig);
  EXPECT_EQ(scan.volumes, 2);
  EXPECT_EQ(brainage::preprocessing::describe_scan(scan).orientation, "PSR");
  for (unsigned r = 0; r < 3; ++r) {
    EXPECT_NEAR(scan.image->GetOrigin()[r], reference.image->GetOrigin()[r], 1e-3);
    EXPECT_NEAR(scan.image->GetSpacing()[r], reference.image->GetSpacing()[r], 1e-6);
    for (unsigned c = 0; c < 3; ++c)
      EXPECT_NEAR(scan.image->GetDirection()[r][c], reference.image->GetDirection()[r][c], 1e-6);
  }
  expect_rejected(four, "4D with 2 volumes");
}
