// Native outputs carry the input's qform and sform unchanged, on exactly its voxel grid,
// so FSL and nibabel overlay them on the scan whichever transform they read.
#include "preprocessing/native_header.h"

#include <gtest/gtest.h>

#include <itkImageRegionConstIteratorWithIndex.h>
#include <zlib.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "preprocessing/mask_metrics.h"
#include "preprocessing/model_grid.h"
#include "preprocessing/preprocess_pipeline.h"
#include "preprocessing/scan_reader.h"
#include "tests/nifti_fixture.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::testing;
using namespace brainage::preprocessing;

namespace {

/// The first `n` decompressed bytes of a .nii / .nii.gz file.
std::string head_bytes(const fs::path& path, std::size_t n = 352) {
  gzFile f = gzopen(path.c_str(), "rb");
  std::string bytes(n, '\0');
  bytes.resize(static_cast<std::size_t>(std::max(gzread(f, bytes.data(), static_cast<unsigned>(n)), 0)));
  gzclose(f);
  return bytes;
}

/// The NIfTI-1 bytes that place the voxels: pixdim[0..3] (76..91) and qform_code through
/// srow_z (252..327).
std::string xform_bytes(const std::string& header) { return header.substr(76, 16) + header.substr(252, 76); }

/// IXI-like PSR storage whose sform (code 2) is 40 mm anterior of its qform (code 1).
NiftiSpec disagreeing_spec() {
  NiftiSpec spec = psr_2mm_spec({14, 12, 10}, {-8.5f, 11.25f, -13.75f});
  spec.sform_code = 2;
  spec.srow[1][3] += 40;
  return spec;
}

MaskType::Pointer mask_on(const ImageType* image) {
  auto mask = MaskType::New();
  mask->CopyInformation(image);
  mask->SetRegions(image->GetLargestPossibleRegion());
  mask->Allocate();
  const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) mask->GetBufferPointer()[i] = static_cast<unsigned char>(i % 5 == 0);
  return mask;
}

std::size_t files_in(const fs::path& dir) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

/// Physical centre of mass (LPS mm) of a mask's foreground (mask_centroid, mask_metrics.h).
std::array<double, 3> centroid(const MaskType* mask) {
  const auto c = brainage::preprocessing::mask_centroid(mask);
  return {c[0], c[1], c[2]};
}

}  // namespace

class NativeHeaderTest : public ::testing::Test {
 protected:
  fs::path dir_ = scratch_dir("native-header");
};

TEST_F(NativeHeaderTest, MaskAndFloatOutputsCarryTheInputsQformAndSform) {
  const auto input = write_nifti(dir_ / "in.nii.gz", disagreeing_spec());
  const auto scan = load_scan(input);
  ASSERT_EQ(scan.warnings.size(), 1u);  // the disagreement

  fs::create_directories(dir_ / "out");
  write_like_input(mask_on(scan.image), dir_ / "out" / "mask.nii.gz", scan.image);
  write_like_input(scan.image.GetPointer(), dir_ / "out" / "image.nii.gz", scan.image);
  EXPECT_EQ(files_in(dir_ / "out"), 2u) << "a temporary was left behind";

  const std::string want = xform_bytes(head_bytes(input));
  for (const char* name : {"mask.nii.gz", "image.nii.gz"}) {
    const auto out = dir_ / "out" / name;
    EXPECT_EQ(xform_bytes(head_bytes(out)), want) << name << ": qform/sform differ from the input's";
    // Read back by the same rule, the output lies exactly where the input does.
    const auto back = load_scan(out);
    EXPECT_EQ(back.warnings, scan.warnings);
    EXPECT_EQ(back.image->GetLargestPossibleRegion(), scan.image->GetLargestPossibleRegion());
    for (unsigned i = 0; i < 3; ++i) EXPECT_NEAR(back.image->GetOrigin()[i], scan.image->GetOrigin()[i], 1e-5);
  }
  const auto voxels = read_mask(dir_ / "out" / "mask.nii.gz");
  const std::size_t n = voxels->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(voxels->GetBufferPointer()[i], i % 5 == 0 ? 1 : 0) << i;
}

TEST_F(NativeHeaderTest, AnImageOffTheInputGridIsRefusedAndNothingIsWritten) {
  const auto scan = load_scan(write_nifti(dir_ / "in.nii.gz", disagreeing_spec()));
  auto mask = mask_on(scan.image);
  auto origin = mask->GetOrigin();
  origin[0] += 1.0;
  mask->SetOrigin(origin);
  fs::create_directories(dir_ / "out");
  EXPECT_THROW(write_like_input(mask, dir_ / "out" / "mask.nii.gz", scan.image), brainage::ProcessingError);
  EXPECT_EQ(files_in(dir_ / "out"), 0u);
}

TEST_F(NativeHeaderTest, WithoutAnInputHeaderItkWritesItsOwn) {
  auto image = ImageType::New();
  image->SetRegions(ImageType::RegionType(ImageType::SizeType{{9, 9, 9}}));
  image->Allocate();
  image->FillBuffer(1.f);
  EXPECT_FALSE(attached_nifti_header(image));
  write_like_input(image.GetPointer(), dir_ / "plain.nii.gz", image);
  const auto h = parse_nifti_bytes("plain", head_bytes(dir_ / "plain.nii.gz", 348 + 9 * 9 * 9 * 4 + 4));
  EXPECT_GT(h.sform_code, 0);
  EXPECT_NEAR(h.srow[0][0], -1.0, 1e-6);  // LPS identity is RAS diag(-1, -1, 1)
}

// ITK 5.2 has no NIfTI-2 reader: such a file is refused with one line saying so (exit 3),
// after the header itself was read right (pixdim, both transforms).
TEST_F(NativeHeaderTest, Nifti2IsParsedAndThenRefusedWithAClearLine) {
  const NiftiSpec spec = disagreeing_spec();
  const std::string bytes = nifti2_bytes(spec, float_voxels(spec));
  const auto h2 = parse_nifti_bytes("in2.nii", bytes);
  const auto h1 = parse_nifti_bytes("in1.nii", nifti_bytes(spec, float_voxels(spec)));
  EXPECT_EQ(h2.version, 2);
  EXPECT_EQ(h2.pixdim, h1.pixdim);
  EXPECT_EQ(h2.qfac, h1.qfac);
  EXPECT_EQ(h2.qform_code, 1);
  EXPECT_EQ(h2.sform_code, 2);
  EXPECT_EQ(h2.qform_matrix(), h1.qform_matrix());
  EXPECT_EQ(h2.sform_matrix(), h1.sform_matrix());
  write_bytes(dir_ / "in2.nii", bytes, false);
  try {
    load_scan(dir_ / "in2.nii");
    ADD_FAILURE() << "NIfTI-2 accepted";
  } catch (const brainage::InvalidInputError& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "in2.nii").string() + ": NIfTI-2 files cannot be read"),
              std::string::npos)
        << e.what();
  }
}

// Field case 05b: qform (code 1) true, sform (code 2) 40 mm anterior. The pipeline follows
// the sform, says so in preprocess.json, and brain_mask_native.nii.gz carries both.
TEST(NativeHeaderFieldCase, DisagreeingTransformsFollowTheSformAndReachTheOutputs) {
  const auto dir = shared_data_dir() / "fieldcases";
  const auto shifted = dir / "05b_ixi012_qs_disagree_shift.nii.gz", orig = dir / "00_ixi012_orig.nii.gz";
  BRAINAGE_REQUIRE_PATH(shifted);
  BRAINAGE_REQUIRE_PATH(orig);
  BRAINAGE_REQUIRE_PATH(mricron_templates_dir() / "ch2.nii.gz");
  PreprocessOptions options;
  options.render_qc = false;
  const auto a = preprocess_scan(orig, options), b = preprocess_scan(shifted, options);
  const auto out = scratch_dir("native-header-05b");
  write_preprocess_outputs(b, out);

  const std::string want = xform_bytes(head_bytes(shifted));
  EXPECT_EQ(xform_bytes(head_bytes(out / "brain_mask_native.nii.gz")), want);
  std::ifstream json(out / "preprocess.json");
  const auto report = nlohmann::json::parse(json);
  ASSERT_TRUE(report.contains("warnings")) << report.dump(2);
  EXPECT_NE(report["warnings"][0].get<std::string>().find("following the sform"), std::string::npos);

  // The same voxels are brain, placed 40 mm anterior (LPS y -40) of the qform reading.
  EXPECT_GT(dice(a.brain_mask_native, b.brain_mask_native), 0.97);
  const auto ca = centroid(a.brain_mask_native), cb = centroid(b.brain_mask_native);
  EXPECT_NEAR(cb[0], ca[0], 1.0);
  EXPECT_NEAR(cb[1], ca[1] - 40.0, 1.0);
  EXPECT_NEAR(cb[2], ca[2], 1.0);
  const auto written = load_scan(out / "brain_mask_native.nii.gz");
  for (unsigned i = 0; i < 3; ++i) EXPECT_NEAR(written.image->GetOrigin()[i], b.native_image->GetOrigin()[i], 1e-4);
}
