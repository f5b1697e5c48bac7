// Pearson correlation and the linear bias correction, on hand-computed examples.
#include "common/age_statistics.h"

#include <gtest/gtest.h>

#include <cmath>

using brainage::BiasCorrection;
using brainage::pearson;

TEST(AgeStatistics, PearsonOnKnownDataAndNaNWithoutSpread) {
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {2, 4, 6, 8}), 1.0, 1e-12);
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {8, 6, 4, 2}), -1.0, 1e-12);
  // x = 1..5, y = 2 1 4 3 5: sxy = 8, sxx = syy = 10 -> r = 0.8
  EXPECT_NEAR(pearson({1, 2, 3, 4, 5}, {2, 1, 4, 3, 5}), 0.8, 1e-12);
  EXPECT_TRUE(std::isnan(pearson({1, 2, 3}, {5, 5, 5}))) << "no spread: not measurable, not 0";
  EXPECT_TRUE(std::isnan(pearson({1}, {2})));
  EXPECT_TRUE(std::isnan(pearson({1, 2}, {1, 2, 3})));
}

TEST(AgeStatistics, BiasCorrectionFitsAndInverts) {
  // predicted = 0.6 * age + 18 exactly
  const auto c = BiasCorrection::fit({20, 40, 60, 80}, {30, 42, 54, 66});
  EXPECT_TRUE(c.usable());
  EXPECT_EQ(c.n, 4u);
  EXPECT_NEAR(c.slope, 0.6, 1e-12);
  EXPECT_NEAR(c.intercept, 18.0, 1e-12);
  EXPECT_NEAR(c.apply(54.0), 60.0, 1e-12);
}

TEST(AgeStatistics, UnusableCorrectionsAreRefusedWithAReasonAndNeverApplied) {
  std::string why;
  EXPECT_FALSE(BiasCorrection::fit({20, 40}, {30, 40}, &why).usable());
  EXPECT_NE(why.find("at least 3"), std::string::npos) << why;
  EXPECT_FALSE(BiasCorrection::fit({50, 50, 50}, {40, 45, 50}, &why).usable());
  EXPECT_NE(why.find("ages are equal"), std::string::npos) << why;
  const auto flat_fit = BiasCorrection::fit({20, 40, 60}, {50, 50.5, 51}, &why);  // slope 0.025
  EXPECT_FALSE(flat_fit.usable());
  EXPECT_EQ(flat_fit.n, 3u) << "recorded as fitted, never applied";
  EXPECT_DOUBLE_EQ(flat_fit.apply(51.0), 51.0);
  EXPECT_NE(why.find("slope"), std::string::npos) << why;
  // A stored correction whose slope is too small, or that was never fitted, leaves ages as they are.
  BiasCorrection flat;
  flat.slope = 0.07;
  flat.intercept = 40;
  flat.n = 30;
  EXPECT_DOUBLE_EQ(flat.apply(55.0), 55.0);
  EXPECT_DOUBLE_EQ(BiasCorrection{}.apply(55.0), 55.0);
}
