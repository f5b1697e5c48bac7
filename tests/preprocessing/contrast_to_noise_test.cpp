// contrast_to_noise_ratio: on a phantom with known WM-GM contrast and noise it returns
// contrast / σ; through the pipeline, a real scan passes QC with a CNR in the training
// range and the same scan with Gaussian noise at SNR 5 (which read 7.3 y younger) fails QC
// naming the rule.
#include "preprocessing/contrast_to_noise.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "preprocessing/model_grid.h"
#include "preprocessing/preprocess_pipeline.h"
#include "preprocessing/scan_reader.h"
#include "preprocessing/tissue_classification.h"
#include "tests/test_data.h"

using namespace brainage::preprocessing;
using namespace brainage::testing;

namespace {

/// 40³ voxels: WM (r < 12 voxels, 1.0), GM (12..16, 0.6), Gaussian noise of sd `sigma`; labels = truth.
std::pair<ImageType::Pointer, MaskType::Pointer> phantom(float sigma) {
  auto image = ImageType::New();
  auto labels = MaskType::New();
  ImageType::RegionType region;
  region.SetSize({40, 40, 40});
  image->SetRegions(region);
  labels->SetRegions(region);
  image->Allocate();
  labels->Allocate();
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.f, sigma);
  for (unsigned z = 0; z < 40; ++z)
    for (unsigned y = 0; y < 40; ++y)
      for (unsigned x = 0; x < 40; ++x) {
        const double r = std::sqrt((x - 19.5) * (x - 19.5) + (y - 19.5) * (y - 19.5) + (z - 19.5) * (z - 19.5));
        const ImageType::IndexType i{{x, y, z}};
        const unsigned char label = r < 12 ? kWM : r < 16 ? kGM : kBackground;
        image->SetPixel(i, (label == kWM ? 1.0f : label == kGM ? 0.6f : 0.f) + noise(rng));
        labels->SetPixel(i, label);
      }
  return {image, labels};
}

}  // namespace

TEST(ContrastToNoise, IsTheContrastOverTheNoiseSd) {
  for (const float sigma : {0.02f, 0.1f}) {
    const auto [image, labels] = phantom(sigma);
    EXPECT_NEAR(contrast_to_noise_ratio(image, labels), 0.4 / sigma, 0.1 * 0.4 / sigma) << sigma;
  }
  const auto [image, labels] = phantom(0.f);
  EXPECT_EQ(contrast_to_noise_ratio(image, labels), 0.0);  // no noise: undefined, reported as 0
}

TEST(ContrastToNoise, ANoisyCopyOfARealScanFailsQcNamingTheRule) {
  const auto scan = shared_data_dir() / "ixi-hh-2mm" / "t1" / "IXI012-HH-1211_T1.nii.gz";
  BRAINAGE_REQUIRE_PATH(scan);
  PreprocessOptions options;
  options.render_qc = false;
  const auto clean = preprocess_scan(scan, options);
  EXPECT_TRUE(clean.qc_passed);
  EXPECT_GT(clean.contrast_to_noise, 9.0);
  EXPECT_LT(clean.contrast_to_noise, 25.0);
  // Gaussian noise, sd = the mean of the brightest 30 % of voxels / 5 (SNR 5).
  auto image = load_scan(scan).image;
  const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  float* p = image->GetBufferPointer();
  std::vector<float> sorted(p, p + n);
  std::sort(sorted.begin(), sorted.end());
  double bright = 0;
  for (std::size_t i = n * 7 / 10; i < n; ++i) bright += sorted[i];
  bright /= static_cast<double>(n - n * 7 / 10);
  std::mt19937 rng(0);
  std::normal_distribution<float> noise(0.f, static_cast<float>(bright / 5));
  for (std::size_t i = 0; i < n; ++i) p[i] += noise(rng);
  const auto noisy_path = scratch_dir("cnr-noisy") / "noisy.nii.gz";
  write_image(image, noisy_path);
  const auto noisy = preprocess_scan(noisy_path, options);
  EXPECT_LT(noisy.contrast_to_noise, options.min_contrast_to_noise);
  EXPECT_FALSE(noisy.qc_passed);
  bool named = false;
  for (const auto& f : noisy.qc_flags) named = named || f.find("contrast-to-noise ratio") != std::string::npos;
  EXPECT_TRUE(named);
}
