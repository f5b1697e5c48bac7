// preprocessing::check_model_grid_t1_contrast (preprocessing/t1_contrast_check.h) on the
// template itself: the CSF/WM contrast follows a brighter CSF one to one and ignores the
// intensity scale, the properties the model's contrast-domain check relies on.
#include "preprocessing/t1_contrast_check.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "preprocessing/model_grid.h"
#include "preprocessing/model_grid_resampling.h"
#include "tests/preprocessing/synthetic_images.h"
#include "tests/test_data.h"

namespace bp = brainage::preprocessing;

namespace {

/// ch2bet (Colin27's brain) on the model grid: a brain-only model-grid T1.
bp::ImageType::Pointer template_brain_on_model_grid() {
  const auto identity = bp::AffineTransformType::New();
  return bp::resample_to_model_grid(bp::read_image(brainage::testing::mricron_templates_dir() / "ch2bet.nii.gz"),
                                    identity);
}

}  // namespace

TEST(T1ContrastCheck, TheCsfWmContrastFollowsABrighterCsfAndIgnoresTheIntensityScale) {
  BRAINAGE_REQUIRE_PATH(brainage::testing::mricron_templates_dir() / "aal.nii.gz");
  const auto t1 = template_brain_on_model_grid();
  const auto dir = brainage::testing::mricron_templates_dir();
  const auto base = bp::check_model_grid_t1_contrast(t1, dir);
  ASSERT_TRUE(base.t1_weighted) << base.rule;
  EXPECT_GT(base.csf_wm_ratio, 0.1);
  EXPECT_LT(base.csf_wm_ratio, 0.5);
  EXPECT_LE(base.csf_level, base.csf_median);

  // The intensity scale: the same ratio.
  const auto scaled = bp::check_model_grid_t1_contrast(brainage::testing::piecewise_linear_contrast(t1, {{0, 0}, {1e6, 3.7e6}}), dir);
  EXPECT_NEAR(scaled.csf_wm_ratio, base.csf_wm_ratio, 1e-5);

  // CSF brighter by 0.15 of WM (another scanner's contrast; GM and WM levels kept): the
  // ratio rises by that much, where the K-means CSF mean moved ~0.03 (docs/ROBUSTNESS.md).
  const double c = base.csf_level, g = base.gm_median, w = base.wm_median;
  const auto bright = bp::check_model_grid_t1_contrast(
      brainage::testing::piecewise_linear_contrast(t1, {{0, 0}, {c, c + 0.15 * w}, {g, g}, {w, w}, {1e6, 1e6}}), dir);
  EXPECT_NEAR(bright.csf_wm_ratio - base.csf_wm_ratio, 0.15, 0.005);
  EXPECT_NEAR(bright.wm_median, base.wm_median, 1e-5);
}
