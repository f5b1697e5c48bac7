// prediction::contrast_domain_failure and its inputs (app/prediction/contrast_domain_check.h):
// the training scans' CSF/WM contrast a checkpoint records, the rule, the shipped default's
// record, and predict_scan refusing a real scan whose CSF was made brighter (another
// scanner's contrast: the default read such copies 14-24 y younger with QC passed).
#include "app/prediction/contrast_domain_check.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "app/prediction/scan_prediction.h"
#include "common/errors.h"
#include "model/checkpoint.h"
#include "preprocessing/model_grid.h"
#include "preprocessing/tissue_classification.h"
#include "tests/preprocessing/synthetic_images.h"
#include "tests/test_data.h"

namespace bp = brainage::prediction;
namespace fs = std::filesystem;

namespace {

fs::path default_checkpoint() { return fs::path(BRAINAGE_SOURCE_DIR) / "data" / "model" / "brainage-default.json"; }

bool has_flag_containing(const std::vector<std::string>& flags, const std::string& text) {
  return std::any_of(flags.begin(), flags.end(), [&](const std::string& f) { return f.find(text) != std::string::npos; });
}

}  // namespace

TEST(ContrastDomainCheck, TheSummaryRoundTripsAMissingRecordChecksNothingAMalformedOneIsAnError) {
  const auto summary = bp::tissue_contrast_summary({0.30, 0.35, 0.40});
  const auto range = bp::training_contrast_range(nlohmann::json{{"data", {{"tissue_contrast", summary}}}});
  ASSERT_TRUE(range.has_value());
  EXPECT_DOUBLE_EQ(range->min, 0.30);
  EXPECT_DOUBLE_EQ(range->max, 0.40);
  EXPECT_NEAR(range->mean, 0.35, 1e-12);
  EXPECT_NEAR(range->sd, 0.05, 1e-12);  // n - 1
  EXPECT_EQ(range->subjects, 3);
  EXPECT_THROW(bp::tissue_contrast_summary({}), std::invalid_argument);
  // No record (older checkpoints): nothing to check.
  for (const char* text : {R"({})", R"({"data": {}})", R"([])"})
    EXPECT_FALSE(bp::training_contrast_range(nlohmann::json::parse(text)).has_value()) << text;
  // A record that is there but malformed must not switch the check off silently.
  for (const char* text : {R"({"data": {"tissue_contrast": {}}})",
                           R"({"data": {"tissue_contrast": {"csf_wm_ratio": {"min": 0.3, "max": "0.4", "mean": 0.35, "sd": 0.01}}}})",
                           R"({"data": {"tissue_contrast": {"csf_wm_ratio": {"min": 0.5, "max": 0.4, "mean": 0.45, "sd": 0.01}}}})"})
    EXPECT_THROW(bp::training_contrast_range(nlohmann::json::parse(text)), brainage::ModelError) << text;
}

TEST(ContrastDomainCheck, OnlyACsfBrighterThanTheTrainingScansBeyondTheMarginFails) {
  const bp::TrainingContrastRange range{0.319, 0.405, 0.349, 0.0175, 147};  // the default's 147 IXI-HH scans
  EXPECT_FALSE(bp::contrast_domain_failure(0.35, range).has_value());
  EXPECT_FALSE(bp::contrast_domain_failure(0.44, range).has_value());   // within max + 2 sd = 0.440
  EXPECT_FALSE(bp::contrast_domain_failure(0.258, range).has_value());  // Colin27: darker CSF is answered
  const auto rule = bp::contrast_domain_failure(0.459, range);          // IXI012 with CSF +0.15 of WM
  ASSERT_TRUE(rule.has_value());
  EXPECT_NE(rule->find("CSF/WM contrast 0.459"), std::string::npos) << *rule;
  EXPECT_NE(rule->find("limit 0.440"), std::string::npos) << *rule;
  EXPECT_NE(rule->find("--include-qc-failed"), std::string::npos) << *rule;  // how to get the age anyway
  bp::ContrastDomainOptions strict;
  strict.margin_sds = 0;
  strict.min_margin = 0;
  EXPECT_TRUE(bp::contrast_domain_failure(0.41, range, strict).has_value());
  // A model trained on a few near-identical scans (sd 0: two tests trained such models and
  // then refused IXI012): the margin is at least min_margin, and below min_training_scans
  // nothing is checked.
  const bp::TrainingContrastRange narrow{0.278, 0.278, 0.278, 0.0, 12};
  ASSERT_TRUE(bp::contrast_limit(narrow).has_value());
  EXPECT_NEAR(*bp::contrast_limit(narrow), 0.313, 1e-9);
  const bp::TrainingContrastRange few{0.278, 0.278, 0.278, 0.0, 4};
  EXPECT_FALSE(bp::contrast_limit(few).has_value());
  EXPECT_FALSE(bp::contrast_domain_failure(0.9, few).has_value());
}

TEST(ContrastDomainCheck, TheShippedDefaultRecordsItsTrainingScansContrast) {
  BRAINAGE_REQUIRE_PATH(default_checkpoint());
  const auto info = brainage::model::load_checkpoint(default_checkpoint(), /*accept_vbm=*/true).info;
  const auto range = bp::training_contrast_range(info.training);
  ASSERT_TRUE(range.has_value()) << "the default must record training.data.tissue_contrast.csf_wm_ratio";
  EXPECT_EQ(range->subjects, 147);
  EXPECT_GT(range->min, 0.2);
  EXPECT_LT(range->max, 0.5);
  EXPECT_GT(range->sd, 0.0);
}

// A real IXI scan and its copy with the CSF level raised by 0.15 of the WM level (knots at the
// scan's own 3-means CSF, GM, WM levels inside its brain mask, GM and WM kept): the original
// is answered and reports the model's limit, the copy is refused naming the rule, and with
// failed QC accepted (evaluate --include-qc-failed) it is answered but flagged.
TEST(ContrastDomainCheck, TheDefaultRefusesARealScanWhoseCsfWasMadeBrighter) {
  const auto scan = brainage::testing::shared_data_dir() / "ixi-hh-2mm" / "t1" / "IXI012-HH-1211_T1.nii.gz";
  BRAINAGE_REQUIRE_PATH(scan);
  BRAINAGE_REQUIRE_PATH(default_checkpoint());
  bp::Predictor predictor(default_checkpoint());
  bp::ScanPredictionOptions options;
  options.with_routing = false;
  bp::PreprocessedScan preprocessed;
  const auto original = bp::predict_scan(predictor, scan, options, &preprocessed);
  const double limit = original.tissue_contrast.at("limit").get<double>();
  EXPECT_NEAR(limit, 0.44, 0.01);
  EXPECT_LT(original.tissue_contrast.at("csf_wm_ratio").get<double>(), limit);
  EXPECT_FALSE(has_flag_containing(original.qc_flags, "CSF/WM"));

  const auto* native = preprocessed.result.native_image.GetPointer();
  const auto levels = brainage::preprocessing::classify_tissue(native, preprocessed.result.brain_mask_native).class_means;
  const double c = levels[0], g = levels[1], w = levels[2];
  const auto bright = brainage::testing::piecewise_linear_contrast(native, {{0, 0}, {c, c + 0.15 * w}, {g, g}});
  const auto dir = brainage::testing::scratch_dir("contrast-domain");
  const fs::path copy = dir / "IXI012_bright_csf.nii.gz";
  brainage::preprocessing::write_image(bright, copy);
  try {
    bp::predict_scan(predictor, copy, options);
    FAIL() << "a scan with CSF brighter than every training scan's was answered";
  } catch (const brainage::ProcessingError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(copy.string()), std::string::npos) << what;
    EXPECT_NE(what.find("CSF/WM contrast"), std::string::npos) << what;
  }
  options.preprocess.accept_failed_qc = true;
  const auto flagged = bp::predict_scan(predictor, copy, options);
  EXPECT_TRUE(has_flag_containing(flagged.qc_flags, "QC failed: CSF/WM contrast")) << flagged.qc_flags.size();
  EXPECT_GT(flagged.tissue_contrast.at("csf_wm_ratio").get<double>(), limit);
  fs::remove_all(dir);
}
