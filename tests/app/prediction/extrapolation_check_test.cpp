// prediction::training_age_range and extrapolation_flag (app/prediction/extrapolation_check.h):
// the training ages a checkpoint records, and the qc_flags line for an age outside them;
// and the shipped default's record of them.
#include "app/prediction/extrapolation_check.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "app/prediction/scan_prediction.h"
#include "model/checkpoint.h"
#include "tests/test_data.h"

namespace bp = brainage::prediction;

TEST(ExtrapolationCheck, ReadsTheTrainingAgesAndIgnoresCheckpointsWithoutThem) {
  const auto range = bp::training_age_range(nlohmann::json::parse(R"({"data": {"age_min": 20.17, "age_max": 79.41}})"));
  ASSERT_TRUE(range.has_value());
  EXPECT_DOUBLE_EQ(range->min_years, 20.17);
  EXPECT_DOUBLE_EQ(range->max_years, 79.41);
  for (const char* text : {R"({})", R"({"data": {}})", R"({"data": {"age_min": "20", "age_max": 79}})",
                           R"({"data": {"age_min": 80, "age_max": 20}})", R"([])"})
    EXPECT_FALSE(bp::training_age_range(nlohmann::json::parse(text)).has_value()) << text;
}

TEST(ExtrapolationCheck, FlagsARawOrCorrectedAgeOutsideTheRange) {
  const bp::TrainingAgeRange range{20.17, 79.41};
  EXPECT_FALSE(bp::extrapolation_flag(45.0, 44.0, range).has_value());
  EXPECT_FALSE(bp::extrapolation_flag(20.17, 79.41, range).has_value());  // the bounds are inside
  // Colin27 with the thirteenth-session default: raw 20.4 y, bias-corrected ~11 y.
  const auto low = bp::extrapolation_flag(20.4, 11.3, range);
  ASSERT_TRUE(low.has_value());
  EXPECT_EQ(*low, "age outside the training range 20.2-79.4 y (raw 20.4 y, bias-corrected 11.3 y): the model extrapolates");
  EXPECT_TRUE(bp::extrapolation_flag(83.0, 86.0, range).has_value());
  EXPECT_TRUE(bp::extrapolation_flag(19.0, 21.0, range).has_value());
  // Without a bias correction (corrected = raw) the line names one age, not a "bias-corrected" one.
  const auto uncorrected = bp::extrapolation_flag(19.0, 19.0, range);
  ASSERT_TRUE(uncorrected.has_value());
  EXPECT_EQ(uncorrected->find("bias-corrected"), std::string::npos) << *uncorrected;
  EXPECT_NE(uncorrected->find("(19.0 y)"), std::string::npos) << *uncorrected;
}

TEST(ExtrapolationCheck, TheShippedDefaultRecordsItsTrainingAges) {
  // What predict_scan reads: the loaded checkpoint's training record.
  const auto path = std::filesystem::path(BRAINAGE_SOURCE_DIR) / "data" / "model" / "brainage-default.json";
  BRAINAGE_REQUIRE_PATH(path);
  const auto info = brainage::model::load_checkpoint(path, /*accept_vbm=*/true).info;
  const auto range = bp::training_age_range(info.training);
  ASSERT_TRUE(range.has_value()) << "the default checkpoint must record training.data.age_min/age_max";
  EXPECT_GE(range->min_years, 18.0);
  EXPECT_LE(range->max_years, 90.0);
  EXPECT_LT(range->min_years, range->max_years);
}

// The shipped default must have been trained on this build's preprocessing: a change to the
// model inputs bumps kPreprocessingRevision, and this test then fails until the default is
// retrained (or its inputs are shown unchanged and its record updated).
TEST(ShippedDefault, WasTrainedOnThisBuildsPreprocessing) {
  const auto path = std::filesystem::path(BRAINAGE_SOURCE_DIR) / "data" / "model" / "brainage-default.json";
  BRAINAGE_REQUIRE_PATH(path);
  EXPECT_EQ(brainage::model::load_checkpoint(path, /*accept_vbm=*/true).info.preprocessing_version,
            bp::preprocessing_version());
}
