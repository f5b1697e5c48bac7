// Metrics against a hand computation, and the bias calibration.
#include "app/cohort/cohort_metrics.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/errors.h"
#include "tests/app/cohort/cohort_fixture.h"
#include "tests/test_data.h"

using namespace brainage::cohort;
using namespace brainage::testing;

namespace {
// ages 20, 30, 40, 50; predictions 25, 30, 35, 60 -> gaps 5, 0, -5, 10.
// By hand: MAE 20/4 = 5; RMSE sqrt(150/4) = 6.123724; mean gap 2.5;
// Sxy = 550, Sxx = 500, Syy = 725 -> r = 550/sqrt(362500) = 0.913500; R² = 1 - 150/500 = 0.7;
// r(gap, age) = 50/sqrt(125*500) = 0.2; OLS fit: slope 1.1, intercept 37.5 - 38.5 = -1.
// Corrected = (p + 1)/1.1 -> gaps 3.636364, -1.818182, -7.272727, 5.454545: MAE 4.545455,
// r(corrected gap, age) = 0 (OLS residuals are uncorrelated with age).
const std::vector<double> kAges{20, 30, 40, 50};
const std::vector<double> kPred{25, 30, 35, 60};
constexpr double kTol = 1e-6;
}  // namespace

TEST(CohortMetrics, EqualsHandComputation) {
  const auto s = error_stats(kAges, kPred);
  EXPECT_EQ(s.n, 4u);
  EXPECT_NEAR(s.mae, 5.0, kTol);
  EXPECT_NEAR(s.rmse, 6.123724, kTol);
  EXPECT_NEAR(s.mean_gap, 2.5, kTol);
  EXPECT_NEAR(s.pearson_r, 0.913500, kTol);
  EXPECT_NEAR(s.r2, 0.7, kTol);
  EXPECT_NEAR(s.gap_age_r, 0.2, kTol);
}

TEST(CohortMetrics, CalibrationFitAndCorrection) {
  const Calibration c = fit_calibration(kAges, kPred, "hand");
  EXPECT_NEAR(c.correction.slope, 1.1, kTol);
  EXPECT_NEAR(c.correction.intercept, -1.0, kTol);
  EXPECT_EQ(c.correction.n, 4u);
  std::vector<MetricSubject> subjects;
  const char* sex[] = {"F", "M", "F", "M"};
  for (int i = 0; i < 4; ++i) subjects.push_back({kAges[i], kPred[i], sex[i], "S"});
  const CohortMetrics m = compute_metrics(subjects, c, true, true);
  ASSERT_TRUE(m.corrected.has_value());
  EXPECT_NEAR(m.corrected->mae, 4.545455, kTol);
  EXPECT_NEAR(m.corrected->gap_age_r, 0.0, kTol);
  EXPECT_NEAR(m.raw.gap_age_r, 0.2, kTol);
  ASSERT_EQ(m.by_age_bin.size(), 4u);
  EXPECT_EQ(m.by_age_bin[0].group, "20-29");
  EXPECT_NEAR(m.by_age_bin[3].mae, 10.0, kTol);
  ASSERT_EQ(m.by_sex.size(), 2u);
  EXPECT_EQ(m.by_sex[0].group, "F");  // gaps 5, -5
  EXPECT_NEAR(m.by_sex[0].mae, 5.0, kTol);
  EXPECT_NEAR(m.by_sex[0].mean_gap, 0.0, kTol);
  EXPECT_NEAR(m.by_sex[1].mean_gap, 5.0, kTol);  // gaps 0, 10
  EXPECT_NEAR(m.by_sex[1].mae_corrected, (1.818182 + 5.454545) / 2, kTol);
  ASSERT_EQ(m.by_site.size(), 1u);
  EXPECT_EQ(m.by_site[0].n, 4u);
  const auto j = to_json(m);
  EXPECT_NEAR(j["bias_correction"]["slope"].get<double>(), 1.1, kTol);
  EXPECT_FALSE(j["bias_correction"]["fitted_on_evaluated_cohort"].get<bool>());
}

TEST(CohortMetrics, CalibrationFromPredictionsCsv) {
  const auto dir = scratch_dir("cohort-metrics-cal");
  write_text(dir / "predictions.csv",
             "subject_id,age,predicted_age,error\nA,20,25,\nB,30,30,\nC,40,35,\nD,50,60,\n"
             "E,60,,InvalidInputError: x\nF,,44,\n");
  const Calibration c = calibration_from_predictions_csv(dir / "predictions.csv");
  EXPECT_NEAR(c.correction.slope, 1.1, kTol);
  EXPECT_NEAR(c.correction.intercept, -1.0, kTol);
  EXPECT_EQ(c.correction.n, 4u) << "rows without age or prediction are not used";
  EXPECT_NE(c.source.find("predictions.csv"), std::string::npos);
  write_text(dir / "other.csv", "subject_id,age\nA,20\n");
  EXPECT_THROW(calibration_from_predictions_csv(dir / "other.csv"), brainage::InvalidInputError);
}

TEST(CohortMetrics, DegenerateCalibrationsAreRefused) {
  EXPECT_THROW(fit_calibration({20, 30}, {25, 30}, "x"), brainage::ProcessingError);
  EXPECT_THROW(fit_calibration({30, 30, 30}, {25, 30, 35}, "x"), brainage::ProcessingError);
  EXPECT_THROW(fit_calibration({20, 30, 40}, {40, 40, 40}, "x"), brainage::ProcessingError);
  EXPECT_TRUE(std::isnan(brainage::pearson({1, 1, 1}, {1, 2, 3})));
}

// Two subjects always correlate ±1: the correlations are reported as not defined (NaN,
// null in metrics.json) below 3 subjects, never as a perfect r.
TEST(CohortMetrics, CorrelationsAreNotDefinedBelowThreeSubjects) {
  const auto two = brainage::cohort::error_stats({30, 60}, {35, 58});
  EXPECT_TRUE(std::isnan(two.pearson_r));
  EXPECT_TRUE(std::isnan(two.gap_age_r));
  EXPECT_NEAR(two.mae, 3.5, 1e-12);
  const auto three = brainage::cohort::error_stats({30, 45, 60}, {35, 44, 58});
  EXPECT_TRUE(std::isfinite(three.pearson_r));
}

// Another scanner's contrast moves every age the same way (docs/ROBUSTNESS.md "Contrast":
// ~10 y on contrast-remapped IXI scans). A cohort whose gaps sit off zero by >= 4 y and
// >= 3 standard errors is told so; ordinary scatter around zero, a small offset or a
// handful of subjects is not.
TEST(CohortMetrics, ASystematicOffsetIsNamedAndScatterIsNot) {
  using brainage::cohort::error_stats;
  using brainage::cohort::systematic_offset_warning;
  std::vector<double> ages, shifted, scattered, slight;
  for (int i = 0; i < 20; ++i) {
    const double age = 25.0 + 2.5 * i, noise = (i % 2 == 0 ? 1.0 : -1.0) * (3.0 + i % 5);
    ages.push_back(age);
    shifted.push_back(age + 9.0 + noise);   // mean gap +9 y
    scattered.push_back(age + noise);       // mean gap ~0
    slight.push_back(age + 2.0 + noise);    // mean gap +2 y: below 4 y
  }
  const auto warning = systematic_offset_warning(error_stats(ages, shifted));
  EXPECT_NE(warning.find("+9.0 y over 20 subjects"), std::string::npos) << warning;
  EXPECT_EQ(systematic_offset_warning(error_stats(ages, scattered)), "");
  EXPECT_EQ(systematic_offset_warning(error_stats(ages, slight)), "");
  const std::vector<double> few_ages(ages.begin(), ages.begin() + 9), few(shifted.begin(), shifted.begin() + 9);
  EXPECT_EQ(systematic_offset_warning(error_stats(few_ages, few)), "") << "fewer than 10 subjects";
  // Wide scatter: +5 y mean gap with an sd of ~25 y is within 3 standard errors.
  std::vector<double> wide;
  for (int i = 0; i < 20; ++i) wide.push_back(ages[i] + 5.0 + (i % 2 == 0 ? 25.0 : -25.0));
  EXPECT_EQ(systematic_offset_warning(error_stats(ages, wide)), "");
}
