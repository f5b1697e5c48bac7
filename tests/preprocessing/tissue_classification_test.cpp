// Tissue classes: a synthetic brain of three nested intensity shells (WM core, GM shell,
// CSF rim) with noise comes back with the right labels, class means and volumes; voxels
// outside the mask stay background.
#include "preprocessing/tissue_classification.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/errors.h"

using namespace brainage::preprocessing;

namespace {

struct Phantom {
  ImageType::Pointer image;
  MaskType::Pointer mask, truth;
};

/// 40³ voxels of 2 mm: WM (r < 10 vox, 1.0), GM (10..14, 0.6), CSF (14..17, 0.2),
/// Gaussian noise sd 0.05; the mask is r < 17.
Phantom make_phantom() {
  Phantom p;
  p.image = ImageType::New();
  p.mask = MaskType::New();
  p.truth = MaskType::New();
  ImageType::RegionType region;
  region.SetSize({40, 40, 40});
  ImageType::SpacingType spacing;
  spacing.Fill(2.0);
  for (auto* img : {static_cast<itk::ImageBase<3>*>(p.image), static_cast<itk::ImageBase<3>*>(p.mask),
                    static_cast<itk::ImageBase<3>*>(p.truth)}) {
    img->SetRegions(region);
    img->SetSpacing(spacing);
  }
  p.image->Allocate();
  p.mask->Allocate();
  p.truth->Allocate();
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.f, 0.05f);
  for (unsigned z = 0; z < 40; ++z)
    for (unsigned y = 0; y < 40; ++y)
      for (unsigned x = 0; x < 40; ++x) {
        const double r = std::sqrt((x - 19.5) * (x - 19.5) + (y - 19.5) * (y - 19.5) + (z - 19.5) * (z - 19.5));
        const ImageType::IndexType i{{x, y, z}};
        const unsigned char label = r < 10 ? kWM : r < 14 ? kGM : r < 17 ? kCSF : kBackground;
        const float value = label == kWM ? 1.0f : label == kGM ? 0.6f : label == kCSF ? 0.2f : 0.0f;
        p.image->SetPixel(i, value + noise(rng));
        p.mask->SetPixel(i, label != kBackground);
        p.truth->SetPixel(i, label);
      }
  return p;
}

}  // namespace

TEST(TissueClassification, RecoversThreeNoisyClasses) {
  const auto p = make_phantom();
  const auto result = classify_tissue(p.image, p.mask);
  std::size_t agree = 0, brain = 0, leaked = 0;
  double truth_ml[3] = {0, 0, 0};
  const auto n = p.image->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) {
    const auto want = p.truth->GetBufferPointer()[i], got = result.labels->GetBufferPointer()[i];
    if (want == kBackground) {
      leaked += got != kBackground;
      continue;
    }
    ++brain;
    agree += want == got;
    truth_ml[want - 1] += 8.0 / 1000.0;
  }
  EXPECT_EQ(leaked, 0u);
  EXPECT_GT(static_cast<double>(agree) / static_cast<double>(brain), 0.98);
  EXPECT_NEAR(result.class_means[0], 0.2, 0.03);
  EXPECT_NEAR(result.class_means[1], 0.6, 0.03);
  EXPECT_NEAR(result.class_means[2], 1.0, 0.03);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(result.volumes_ml[c], truth_ml[c], 0.03 * truth_ml[c]) << "class " << c;
}

TEST(TissueClassification, EmptyMaskIsAProcessingError) {
  auto p = make_phantom();
  p.mask->FillBuffer(0);
  EXPECT_THROW(classify_tissue(p.image, p.mask), brainage::ProcessingError);
}
