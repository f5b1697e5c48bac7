// The whole pipeline on real images: Colin27 moved by a known random rigid transform (Dice
// vs the moved ch2bet, output geometry, transform file), a skull-stripped input (detected,
// not stripped twice), IXI scans (Dice vs labels > 0; determinism; QC flags), and inputs
// that must fail with a clear message instead of producing a mask.
#include "preprocessing/preprocess_pipeline.h"

#include <gtest/gtest.h>

#include <itkImageRegionConstIteratorWithIndex.h>
#include <itkImageRegionIteratorWithIndex.h>
#include <vnl/algo/vnl_svd.h>
#include <vnl/vnl_matrix.h>
#include <vnl/vnl_vector.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <random>
#include <vector>

#include "common/errors.h"
#include "preprocessing/canonical_orientation.h"
#include "preprocessing/mask_metrics.h"
#include "preprocessing/mask_operations.h"
#include "preprocessing/model_grid.h"
#include "preprocessing/scan_reader.h"
#include "tests/nifti_fixture.h"
#include "tests/preprocessing/synthetic_images.h"
#include "tests/test_data.h"

using namespace brainage::preprocessing;
using namespace brainage::testing;
namespace fs = std::filesystem;

namespace {

/// Colin27 (or its brain) moved by a seeded random rigid transform (≤ 15°, ≤ 20 mm) into a
/// PSR sagittal grid of `spacing` mm (the same 225 × 210 × 180 mm box): the scan, the
/// reference mask on its grid, the truth.
struct MovedColin {
  fs::path scan;
  MaskType::Pointer reference;
  AffineTransformType::Pointer truth;
};

MovedColin make_moved_colin(const fs::path& dir, const std::string& source, unsigned seed, double spacing = 1.5) {
  const auto templates = mricron_templates_dir();
  const auto image = read_image(templates / source);
  const auto brain = mask_above(read_image(templates / "ch2bet.nii.gz"), 0.5f);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> angle(-15, 15), shift(-20, 20);
  ImageType::PointType centre;
  centre.Fill(0);
  MovedColin moved;
  moved.truth = make_affine(itk::Vector<double, 3>(std::array<double, 3>{angle(rng), angle(rng), angle(rng)}.data()),
                            itk::Vector<double, 3>(std::array<double, 3>{shift(rng), shift(rng), shift(rng)}.data()),
                            1.0, centre);
  ImageType::SizeType size;
  for (unsigned d = 0; d < 3; ++d) size[d] = static_cast<itk::SizeValueType>(std::lround(std::array<double, 3>{225, 210, 180}[d] / spacing));
  ImageType::DirectionType psr;
  psr.Fill(0);
  psr(1, 0) = 1;
  psr(2, 1) = 1;
  psr(0, 2) = -1;
  const auto scan = move_image<ImageType>(image, moved.truth, size, spacing, psr);
  moved.reference = move_image<MaskType>(brain, moved.truth, size, spacing, psr, true);
  moved.scan = dir / ("moved_" + source);
  write_image(scan, moved.scan);
  return moved;
}

void expect_rejected(const fs::path& scan, const std::string& rule) {
  try {
    preprocess_scan(scan);
    ADD_FAILURE() << scan << " produced a result; expected InvalidInputError containing '" << rule << "'";
  } catch (const brainage::InvalidInputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(scan.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(rule), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace

class ColinPipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(mricron_templates_dir() / "ch2.nii.gz")) return;
    dir_ = new fs::path(scratch_dir("pipeline-colin"));
    moved_ = new MovedColin(make_moved_colin(*dir_, "ch2.nii.gz", 7));
    result_ = new PreprocessResult(preprocess_scan(moved_->scan));
    write_preprocess_outputs(*result_, *dir_ / "out");
  }
  static void TearDownTestSuite() {
    delete result_;
    delete moved_;
    delete dir_;
  }
  void SetUp() override { BRAINAGE_REQUIRE_PATH(mricron_templates_dir() / "ch2.nii.gz"); }
  static inline fs::path* dir_ = nullptr;
  static inline MovedColin* moved_ = nullptr;
  static inline PreprocessResult* result_ = nullptr;
};

TEST_F(ColinPipeline, SkullStripDiceAgainstMovedCh2bet) {
  const double d = dice(result_->brain_mask_native, moved_->reference);
  std::printf("Colin27 moved by a random rigid transform: Dice vs ch2bet %.4f, seconds %s\n", d,
              result_->report["seconds"].dump().c_str());
  EXPECT_GE(d, 0.95);
  EXPECT_TRUE(result_->qc_passed) << result_->report["qc"].dump();
  EXPECT_FALSE(result_->report["skull_stripped_input"]["value"].get<bool>());
}

TEST(PreprocessPipeline, OneMillimetreScanKeepsTheColinDice) {
  // The most common input: 1 mm isotropic, which reaches the registration's working grid by
  // 2x2x2 block means (the 1.5 mm fixture goes through smoothing + resampling instead).
  BRAINAGE_REQUIRE_PATH(mricron_templates_dir() / "ch2.nii.gz");
  const auto moved = make_moved_colin(scratch_dir("pipeline-colin-1mm"), "ch2.nii.gz", 11, 1.0);
  const auto result = preprocess_scan(moved.scan);
  const double d = dice(result.brain_mask_native, moved.reference);
  std::printf("Colin27 moved, 1 mm grid: Dice vs ch2bet %.4f, seconds %s\n", d, result.report["seconds"].dump().c_str());
  EXPECT_GE(d, 0.95);
  EXPECT_TRUE(result.qc_passed) << result.report["qc"].dump();
  EXPECT_LE(mean_displacement_mm(result.mni_to_native, moved.truth, mask_above(read_image(mricron_templates_dir() / "ch2bet.nii.gz"), 0.5f)), 1.0);
}

TEST_F(ColinPipeline, RegistrationRecoversTheKnownTransform) {
  const auto brain = mask_above(read_image(mricron_templates_dir() / "ch2bet.nii.gz"), 0.5f);
  EXPECT_LE(mean_displacement_mm(result_->mni_to_native, moved_->truth, brain), 1.0);
}

TEST_F(ColinPipeline, OutputsReopenWithExpectedGeometry) {
  const fs::path out = *dir_ / "out";
  for (const char* name : {"brain_mask_native.nii.gz", "t1_mni2mm.nii.gz", "brain_mask_mni2mm.nii.gz",
                           "tissue_mni2mm.nii.gz", "native_to_mni.tfm", "qc.png", "preprocess.json"})
    EXPECT_TRUE(fs::exists(out / name)) << name;
  // the native mask has exactly the input's grid
  const auto input = load_scan(moved_->scan).image;
  const auto mask = read_mask(out / "brain_mask_native.nii.gz");
  EXPECT_EQ(mask->GetLargestPossibleRegion(), input->GetLargestPossibleRegion());
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_NEAR(mask->GetSpacing()[i], input->GetSpacing()[i], 1e-5);
    EXPECT_NEAR(mask->GetOrigin()[i], input->GetOrigin()[i], 1e-3);
    for (unsigned j = 0; j < 3; ++j) EXPECT_NEAR(mask->GetDirection()(i, j), input->GetDirection()(i, j), 1e-5);
  }
  EXPECT_DOUBLE_EQ(dice(mask, result_->brain_mask_native), 1.0);
  // model-grid files are on the model grid
  for (const char* name : {"t1_mni2mm.nii.gz", "brain_mask_mni2mm.nii.gz", "tissue_mni2mm.nii.gz"})
    EXPECT_TRUE(is_model_grid(read_image(out / name))) << name;
  // tissue labels are 0..3 and only inside the brain; t1 is 0 outside the brain
  const auto tissue = read_mask(out / "tissue_mni2mm.nii.gz");
  const auto brain = read_mask(out / "brain_mask_mni2mm.nii.gz");
  const auto t1 = read_image(out / "t1_mni2mm.nii.gz");
  std::array<std::size_t, 4> counts{};
  for (std::size_t i = 0; i < tissue->GetLargestPossibleRegion().GetNumberOfPixels(); ++i) {
    const auto label = tissue->GetBufferPointer()[i];
    ASSERT_LE(label, 3);
    ASSERT_EQ(label > 0, brain->GetBufferPointer()[i] > 0) << i;
    if (!brain->GetBufferPointer()[i]) ASSERT_EQ(t1->GetBufferPointer()[i], 0.f);
    ++counts[label];
  }
  EXPECT_GT(counts[1], 0u);
  EXPECT_GT(counts[2], counts[1]);  // an adult brain: more GM and WM than CSF
  EXPECT_GT(counts[3], counts[1]);
  // the transform file reads back as the same affine
  const auto tfm = read_mni_to_native_transform(out / "native_to_mni.tfm");
  EXPECT_LE(mean_displacement_mm(tfm, result_->mni_to_native, brain), 1e-6);
  // the report
  std::ifstream json_file(out / "preprocess.json");
  const auto report = nlohmann::json::parse(json_file);
  for (const char* key : {"parameters", "seconds", "versions", "brain_volume_ml", "registration", "qc"})
    EXPECT_TRUE(report.contains(key)) << key;
  EXPECT_TRUE(report["registration"].contains("final_metric"));
}

TEST(PreprocessPipeline, SkullStrippedInputIsDetectedAndNotStrippedAgain) {
  BRAINAGE_REQUIRE_PATH(mricron_templates_dir() / "ch2bet.nii.gz");
  const auto dir = scratch_dir("pipeline-stripped");
  const auto moved = make_moved_colin(dir, "ch2bet.nii.gz", 11);
  const auto result = preprocess_scan(moved.scan);
  EXPECT_TRUE(result.report["skull_stripped_input"]["value"].get<bool>()) << result.report["skull_stripped_input"].dump();
  const double d = dice(result.brain_mask_native, moved.reference);
  std::printf("skull-stripped Colin27: Dice vs its own foreground %.4f\n", d);
  EXPECT_GE(d, 0.97);
}

TEST(PreprocessPipeline, IxiScansDiceDeterminismAndQcFlags) {
  const fs::path dir = shared_data_dir() / "ixi-hh-2mm";
  BRAINAGE_REQUIRE_PATH(dir / "t1" / "IXI012-HH-1211_T1.nii.gz");
  for (const std::string id : {"IXI012-HH-1211", "IXI014-HH-1236"}) {
    const auto result = preprocess_scan(dir / "t1" / (id + "_T1.nii.gz"));
    const auto reference = mask_above(read_image(dir / "labels" / (id + "_labels.nii.gz")), 0.5f);
    const double d = dice(result.brain_mask_native, reference);
    std::printf("%s: Dice vs labels > 0 %.4f, seconds %s\n", id.c_str(), d, result.report["seconds"].dump().c_str());
    EXPECT_GE(d, 0.90) << id;
    EXPECT_TRUE(result.qc_passed) << result.report["qc"].dump();
    if (id == "IXI012-HH-1211") {
      // same input, same output (to the last digits with several threads, see
      // RegistrationOptions::threads); an impossible volume range is flagged, not thrown
      PreprocessOptions strict;
      strict.max_brain_volume_ml = 500;
      const auto again = preprocess_scan(dir / "t1" / (id + "_T1.nii.gz"), strict);
      // With several threads a voxel on the mask's edge may flip in or out (0 vs ~0.5), so
      // intensities are compared where both masks hold brain, and the masks by Dice.
      const auto a = image_to_buffer(again.t1_model), b = image_to_buffer(result.t1_model);
      const auto* ma = again.brain_mask_model->GetBufferPointer();
      const auto* mb = result.brain_mask_model->GetBufferPointer();
      double max_diff = 0;
      for (std::size_t i = 0; i < a.size(); ++i)
        if (ma[i] && mb[i]) max_diff = std::max(max_diff, double(std::abs(a[i] - b[i])));
      EXPECT_LE(max_diff, 0.02);  // normalised intensities (WM ~ 1)
      EXPECT_GE(dice(again.brain_mask_native, result.brain_mask_native), 0.999);
      EXPECT_GE(dice(again.brain_mask_model, result.brain_mask_model), 0.999);
      EXPECT_FALSE(again.qc_passed);
      ASSERT_FALSE(again.qc_flags.empty());
      EXPECT_NE(again.qc_flags.front().find("brain volume"), std::string::npos) << again.qc_flags.front();
    }
  }
}

namespace {


/// Where MNI points land in the scan, as continuous voxel indices (the header's rotation
/// drops out: a rotated header holds the same voxels).
std::vector<itk::ContinuousIndex<double, 3>> mni_probes_in_voxels(const PreprocessResult& r) {
  std::vector<itk::ContinuousIndex<double, 3>> out;
  const double probes_lps[4][3] = {{0, 0, 0}, {60, 0, 0}, {0, 80, 0}, {0, 0, 60}};
  for (const auto& p : probes_lps) {
    AffineTransformType::InputPointType mni;
    for (unsigned d = 0; d < 3; ++d) mni[d] = p[d];
    itk::ContinuousIndex<double, 3> index;
    r.native_image->TransformPhysicalPointToContinuousIndex(r.mni_to_native->TransformPoint(mni), index);
    out.push_back(index);
  }
  return out;
}

/// The largest difference, in voxels along any axis, between two probe sets.
double worst_probe_shift(const std::vector<itk::ContinuousIndex<double, 3>>& a,
                         const std::vector<itk::ContinuousIndex<double, 3>>& b) {
  double worst = 0;
  for (std::size_t k = 0; k < a.size(); ++k)
    for (unsigned d = 0; d < 3; ++d) worst = std::max(worst, std::abs(a[k][d] - b[k][d]));
  return worst;
}

}  // namespace

// Field failure (seventh session): IXI015 with its header rolled 30° converged ~11 mm off
// from the one unrotated start pose, with a QC-passing metric (MI -0.277 vs -0.395) and an
// age 7.5 y off; IXI204 yawed -30° the same way. With the default start poses a rotated
// header registers like the unrotated scan: the template's centre, left, front and top land
// on the same voxels within one voxel.
// Field failure (fourteenth session): a header rotated by more than 45° is re-indexed with its
// axes permuted and flipped, and N4 (fitted on every f-th voxel counted from one end) then
// fitted other voxels: the brain's 99th percentile, which scales the model's T1 input, moved
// 1.07 % for IXI015 rolled 75° and the age 1.3 y. N4 now samples whole voxels symmetric about
// the image centre, so the same voxels give the same intensity scale whatever the axis order.
TEST(PreprocessPipeline, HeaderRotatedHeadsRegisterLikeTheUnrotatedScan) {
  const fs::path scan = shared_data_dir() / "ixi-hh-2mm" / "t1" / "IXI015-HH-1258_T1.nii.gz";
  BRAINAGE_REQUIRE_PATH(scan);
  const auto dir = scratch_dir("pipeline-header-rotation");
  const auto reference = preprocess_scan(scan);
  ASSERT_TRUE(reference.qc_passed);
  const auto reference_probes = mni_probes_in_voxels(reference);
  const auto image = read_image(scan);
  for (const auto& [axis, degrees] : {std::pair{1u, 30.0}, std::pair{2u, -30.0}, std::pair{1u, 75.0}}) {
    const fs::path rotated = dir / ("rotated_" + std::to_string(axis) + ".nii.gz");
    write_image(header_rotated(image, axis, degrees), rotated);
    const auto result = preprocess_scan(rotated);
    const std::string what = "header rotated " + std::to_string(degrees) + " deg about LPS axis " + std::to_string(axis);
    EXPECT_TRUE(result.qc_passed) << what;
    const double worst = worst_probe_shift(mni_probes_in_voxels(result), reference_probes);
    // A header rotation keeps the voxels: the native masks compare voxel by voxel.
    const double overlap = dice(result.brain_mask_native, reference.brain_mask_native);
    std::printf("%s: first MI %.3f (unrotated %.3f), worst probe shift %.2f voxels, brain %.0f mL (unrotated %.0f), "
                "mask Dice %.4f\n",
                what.c_str(), result.registration.first.final_metric, reference.registration.first.final_metric, worst,
                result.brain_volume_ml, reference.brain_volume_ml, overlap);
    EXPECT_LE(worst, 1.0) << what;
    const double scale_change = std::abs(result.normalization_reference / reference.normalization_reference - 1.0);
    std::printf("%s: brain 99th percentile %.2f vs %.2f (%.3f %%)\n", what.c_str(), result.normalization_reference,
                reference.normalization_reference, 100 * scale_change);
    EXPECT_LT(scale_change, 0.0025) << what;  // 75° roll: 1.07 % with the one-ended N4 sampling
    // The skull-strip bound. IXI015's mask has two nearby solutions (1484 and 1540 mL,
    // both Dice 0.965 against its labels of 1517 mL; docs/ROBUSTNESS.md "Contrast"): a brain
    // volume bound of 3 % tests which one a copy lands on, not the registration.
    EXPECT_GE(overlap, 0.97) << what;
  }
  fs::remove_all(dir);
}

// Field failure (twenty-first session, invariance suite): IXI146 with its header pitched 90°
// (A-P and S-I swapped) diverged from every retry start (brain 2372 mL, exit 5); the retry
// starts had pitch only up to ±40° (roll and yaw ±90°). Pitch ±45° and ±90° starts register it.
TEST(PreprocessPipeline, AHeaderPitchedNinetyDegreesRegistersFromTheRetryStarts) {
  const fs::path scan = shared_data_dir() / "ixi-hh-2mm" / "t1" / "IXI146-HH-1389_T1.nii.gz";
  BRAINAGE_REQUIRE_PATH(scan);
  const auto dir = scratch_dir("pipeline-pitch-90");
  const auto reference = preprocess_scan(scan);
  ASSERT_TRUE(reference.qc_passed);
  const fs::path rotated = dir / "pitch90.nii.gz";
  write_image(header_rotated(read_image(scan), 0u, 90.0), rotated);
  const auto result = preprocess_scan(rotated);
  EXPECT_TRUE(result.qc_passed) << (result.qc_flags.empty() ? std::string() : result.qc_flags.front());
  EXPECT_LE(worst_probe_shift(mni_probes_in_voxels(result), mni_probes_in_voxels(reference)), 1.0);
  EXPECT_GE(dice(result.brain_mask_native, reference.brain_mask_native), 0.97);
  fs::remove_all(dir);
}

// IXI508, a small brain (1235 mL by its labels) in a large head with a thick scalp: the
// head's fit left the template brain ~9 % too large per axis, every pass stayed there, and
// QC refused it (brain 2232 mL, Dice 0.71). The focused pass restarted from the template
// scaled down finds the brain (twenty-second session).
TEST(PreprocessPipeline, ASmallBrainInALargeHeadRegistersFromAScaledDownTemplate) {
  const fs::path ixi = shared_data_dir() / "ixi-hh-2mm";
  BRAINAGE_REQUIRE_PATH(ixi / "t1" / "IXI508-HH-2268_T1.nii.gz");
  const auto result = preprocess_scan(ixi / "t1" / "IXI508-HH-2268_T1.nii.gz");
  EXPECT_TRUE(result.qc_passed) << (result.qc_flags.empty() ? std::string() : result.qc_flags.front());
  EXPECT_GT(result.registration.focused.rescue_scale_applied, 0.0);
  const auto labels = read_image(ixi / "labels" / "IXI508-HH-2268_labels.nii.gz");
  EXPECT_GE(dice(result.brain_mask_native, mask_above(labels, 0.5f)), 0.93);
}

// The same rescue must not turn an implausible brain into an answer: IXI012 with its voxel
// sizes scaled by 0.8 (a wrong header; a brain of half the volume) was refused as
// "registration diverged"; the rescue registers it to ~810 mL, which fails the plausible
// volume (900 mL, below every one of the 149 IXI-HH masks: 1073-1859 mL).
TEST(PreprocessPipeline, AHeadScaledToHalfItsVolumeFailsQcAfterTheRescue) {
  const fs::path scan = shared_data_dir() / "ixi-hh-2mm" / "t1" / "IXI012-HH-1211_T1.nii.gz";
  BRAINAGE_REQUIRE_PATH(scan);
  auto image = read_image(scan);
  auto spacing = image->GetSpacing();
  for (unsigned d = 0; d < 3; ++d) spacing[d] *= 0.8;
  auto origin = image->GetOrigin();
  for (unsigned d = 0; d < 3; ++d) origin[d] *= 0.8;
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  const auto dir = scratch_dir("pipeline-scaled-head");
  write_image(image, dir / "scaled.nii.gz");
  const auto result = preprocess_scan(dir / "scaled.nii.gz");
  EXPECT_FALSE(result.qc_passed) << "brain " << result.brain_volume_ml << " mL";
  EXPECT_LT(result.brain_volume_ml, 900.0);
  fs::remove_all(dir);
}

/// The least-squares slope (log intensity per 100 mm, per model-grid axis) of
/// log(biased / reference) over the model-grid voxels inside the reference's brain mask
/// where both T1 inputs are above 5 % of their scale: the bias field left after preprocessing.
std::array<double, 3> residual_field_slopes(const PreprocessResult& reference, const PreprocessResult& biased) {
  // Normal equations of r = c0 + c . x (x in mm), accumulated in double, solved by vnl's SVD.
  vnl_matrix<double> ata(4, 4, 0.0);
  vnl_vector<double> atb(4, 0.0);
  itk::ImageRegionConstIteratorWithIndex<MaskType> m(reference.brain_mask_model,
                                                     reference.brain_mask_model->GetLargestPossibleRegion());
  for (; !m.IsAtEnd(); ++m) {
    const double a = reference.t1_model->GetPixel(m.GetIndex()), b = biased.t1_model->GetPixel(m.GetIndex());
    if (!m.Get() || a < 0.05 || b < 0.05) continue;
    vnl_vector<double> x(4);
    x[0] = 1.0;
    for (unsigned d = 0; d < 3; ++d) x[d + 1] = 2.0 * m.GetIndex()[d];  // 2 mm voxels
    ata += outer_product(x, x);
    atb += std::log(b / a) * x;
  }
  const vnl_vector<double> c = vnl_svd<double>(ata).solve(atb);
  return {100 * c[1], 100 * c[2], 100 * c[3]};
}

// Coil shading (sixteenth session, docs/ROBUSTNESS.md "Bias field"): a 1.5x log-linear
// field across IXI012's head along its voxel axis 1 (about 0.22 log units per 100 mm) leaves
// 0.046 per 100 mm in the model-grid T1 with the default three-level brain-only N4 (a final
// lattice of 7 control points per axis; the age moved 1.4 y) and 0.009 with four levels,
// the `--brain-bias-iterations 50 50 50 50` option (not the default: it widened the gap
// between a skull-stripped copy and its scan). This test holds that option to its measure.
TEST(PreprocessPipeline, AFourLevelBrainN4RemovesABiasFieldAcrossTheHeadFromTheModelInput) {
  const fs::path scan = shared_data_dir() / "ixi-hh-2mm" / "t1" / "IXI012-HH-1211_T1.nii.gz";
  BRAINAGE_REQUIRE_PATH(scan);
  const auto dir = scratch_dir("pipeline-bias-field");
  PreprocessOptions options;
  options.brain_bias.iterations = {50, 50, 50, 50};
  const auto reference = preprocess_scan(scan, options);
  ASSERT_TRUE(reference.qc_passed);
  const fs::path biased_scan = dir / "bias_y_1.5.nii.gz";
  write_image(times_bias_field(read_image(scan), 1, 1.5), biased_scan);
  const auto biased = preprocess_scan(biased_scan, options);
  EXPECT_TRUE(biased.qc_passed);
  const auto slopes = residual_field_slopes(reference, biased);
  const double total = std::hypot(slopes[0], slopes[1], slopes[2]);
  std::printf("residual field per 100 mm: %.4f %.4f %.4f (total %.4f); brain %.0f vs %.0f mL; mask Dice %.4f\n",
              slopes[0], slopes[1], slopes[2], total, biased.brain_volume_ml, reference.brain_volume_ml,
              dice(biased.brain_mask_native, reference.brain_mask_native));
  EXPECT_LT(total, 0.02);  // 0.046 with the default three-level brain N4
  EXPECT_GE(dice(biased.brain_mask_native, reference.brain_mask_native), 0.97);
  fs::remove_all(dir);
}

// Another scanner's contrast curve (eleventh session, docs/ROBUSTNESS.md "Contrast"): with
// Mattes MI on raw intensities and brain-extraction bounds at fixed fractions of the brain
// median, IXI scans raised to the power 0.7 gained 5-8 % of brain volume (fat and dura
// crossed the upper bound; the affine followed) and up to 11.6 y. The registration now
// compares intensity ranks and the bounds scale with the brain's own contrast, so a
// monotone contrast change leaves the template's landmarks, the mask and its volume.
TEST(PreprocessPipeline, ContrastCurveLeavesTheRegistrationAndBrainMask) {
  const fs::path scan = shared_data_dir() / "ixi-hh-2mm" / "t1" / "IXI012-HH-1211_T1.nii.gz";
  BRAINAGE_REQUIRE_PATH(scan);
  const auto dir = scratch_dir("pipeline-contrast-curve");
  PreprocessOptions options;  // the two contrast options, off by default (see their docstrings)
  options.registration.rank_intensities = true;
  options.brain.reference_contrast = 0.245;
  const auto reference = preprocess_scan(scan, options);
  ASSERT_TRUE(reference.qc_passed);
  const auto reference_probes = mni_probes_in_voxels(reference);
  const auto image = read_image(scan);
  for (const double gamma : {0.7, 1.4}) {
    const fs::path changed = dir / ("gamma_" + std::to_string(gamma) + ".nii.gz");
    write_image(gamma_contrast(image, gamma), changed);
    const auto result = preprocess_scan(changed, options);
    const std::string what = "intensities to the power " + std::to_string(gamma);
    EXPECT_TRUE(result.qc_passed) << what;
    const double worst = worst_probe_shift(mni_probes_in_voxels(result), reference_probes);
    const double overlap = dice(result.brain_mask_native, reference.brain_mask_native);
    std::printf("%s: worst probe shift %.2f voxels, brain %.0f mL (original %.0f), mask Dice %.4f\n", what.c_str(),
                worst, result.brain_volume_ml, reference.brain_volume_ml, overlap);
    // Measured (2026-12-01): brain volume -0.0 / -0.8 %; before the change +4.6 / -4.0 %.
    EXPECT_LE(worst, 1.0) << what;
    EXPECT_NEAR(result.brain_volume_ml, reference.brain_volume_ml, 0.02 * reference.brain_volume_ml) << what;
    EXPECT_GE(overlap, 0.97) << what;
  }
  fs::remove_all(dir);
}

TEST(PreprocessPipeline, BadInputsFailWithAClearMessage) {
  const auto dir = scratch_dir("pipeline-bad");
  NiftiSpec spec;
  spec.dims = {48, 48, 40};
  spec.pixdim = {2.f, 2.f, 2.f};
  for (int i = 0; i < 3; ++i) spec.srow[i][i] = 2.f;
  const std::size_t n = 48 * 48 * 40;
  std::vector<float> zeros(n, 0.f), noise(n);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(0.f, 1000.f);
  for (auto& v : noise) v = uniform(rng);
  auto bytes = [](const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  };
  write_bytes(dir / "zeros.nii.gz", nifti_bytes(spec, bytes(zeros)), true);
  write_bytes(dir / "noise.nii.gz", nifti_bytes(spec, bytes(noise)), true);
  NiftiSpec flat;
  flat.dims = {64, 64};
  write_nifti(dir / "slice2d.nii.gz", flat);
  expect_rejected(dir / "zeros.nii.gz", "constant");
  expect_rejected(dir / "noise.nii.gz", "noise");
  expect_rejected(dir / "slice2d.nii.gz", "2D");
  expect_rejected(dir / "missing.nii.gz", "does not exist");
}

// A real scan whose header lost its orientation (qform_code = sform_code = 0): its voxel
// axes are read as nibabel and FSL read them (L, A, S) with a warning. Stored in that
// order (IXI012 re-indexed to LAS) it preprocesses like the original; stored as IXI's P, S,
// R it cannot register, and the QC flag names the missing orientation as the likely cause
// (the eighteenth session's new-user pass got only "registration diverged").
TEST(PreprocessPipeline, AHeaderWithoutOrientationIsReadAsNibabelDoesAndNamedWhenRegistrationFails) {
  const fs::path t1 = shared_data_dir() / "ixi-hh-2mm" / "t1" / "IXI012-HH-1211_T1.nii.gz";
  BRAINAGE_REQUIRE_PATH(t1);
  const fs::path dir = scratch_dir("pipeline-no-orientation");
  // `image`'s voxels as stored (x fastest), with a header holding no orientation.
  auto write_without_orientation = [&](const ImageType* image, const fs::path& path) {
    const auto size = image->GetLargestPossibleRegion().GetSize();
    NiftiSpec spec;
    spec.dims = {static_cast<std::int16_t>(size[0]), static_cast<std::int16_t>(size[1]),
                 static_cast<std::int16_t>(size[2])};
    spec.pixdim = {static_cast<float>(image->GetSpacing()[0]), static_cast<float>(image->GetSpacing()[1]),
                   static_cast<float>(image->GetSpacing()[2])};
    spec.qform_code = 0;
    spec.sform_code = 0;
    const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
    write_bytes(path, nifti_bytes(spec, std::string(reinterpret_cast<const char*>(image->GetBufferPointer()), n * sizeof(float))),
                true);
    return path;
  };
  const auto original = read_image(t1);
  const auto reference = preprocess_scan(t1);

  // LAS storage: the canonical RAS copy with its first axis reversed.
  const auto ras = to_canonical_orientation(original);
  auto las = ImageType::New();
  las->CopyInformation(ras);
  las->SetRegions(ras->GetLargestPossibleRegion());
  las->Allocate();
  const auto size = ras->GetLargestPossibleRegion().GetSize();
  for (itk::ImageRegionIteratorWithIndex<ImageType> it(las, las->GetLargestPossibleRegion()); !it.IsAtEnd(); ++it) {
    auto from = it.GetIndex();
    from[0] = static_cast<ImageType::IndexValueType>(size[0]) - 1 - from[0];
    it.Set(ras->GetPixel(from));
  }
  const auto las_path = write_without_orientation(las, dir / "las_no_orientation.nii.gz");
  const auto loaded = load_scan(las_path);
  EXPECT_FALSE(loaded.orientation_known);
  ASSERT_EQ(loaded.warnings.size(), 1u);
  EXPECT_NE(loaded.warnings[0].find("no orientation"), std::string::npos) << loaded.warnings[0];
  const auto las_result = preprocess_scan(las_path);
  EXPECT_TRUE(las_result.qc_passed) << las_result.report["qc"].dump();
  EXPECT_NEAR(las_result.brain_volume_ml, reference.brain_volume_ml, 0.01 * reference.brain_volume_ml);

  const auto psr_result = preprocess_scan(write_without_orientation(original, dir / "psr_no_orientation.nii.gz"));
  ASSERT_FALSE(psr_result.qc_passed) << "IXI's P, S, R axes read as L, A, S registered: keep the warning, drop this";
  const auto named = std::find_if(psr_result.qc_flags.begin(), psr_result.qc_flags.end(), [](const std::string& f) {
    return f.find("registration diverged") != std::string::npos && f.find("no orientation") != std::string::npos;
  });
  EXPECT_NE(named, psr_result.qc_flags.end()) << psr_result.report["qc"].dump();
}
