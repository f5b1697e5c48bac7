#pragma once
// GM / WM / CSF inside the brain: exact one-dimensional K-means (Lloyd) of the brain
// intensities into three classes initialised at fixed quantiles (deterministic), then one
// pass of a median filter on the labels. Labels: 0 background, 1 CSF, 2 GM, 3 WM.
#include <array>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

enum TissueLabel : unsigned char { kBackground = 0, kCSF = 1, kGM = 2, kWM = 3 };

struct TissueClassificationOptions {
  /** Brain-intensity quantiles that seed the CSF, GM, WM means. Default = {0.05, 0.45, 0.85}. */
  std::array<double, 3> seed_quantiles{0.05, 0.45, 0.85};
  /** Radius (voxels) of the median smoothing of the labels; 0 = none. Default = 1. */
  unsigned smoothing_radius{1};
  /** Upper bound on K-means iterations (it stops when no mean changes). Default = 100. */
  int max_iterations{100};
};

struct TissueClassificationResult {
  MaskType::Pointer labels;            // same grid as the input
  std::array<double, 3> class_means{}; // CSF, GM, WM intensity means
  std::array<double, 3> volumes_ml{};  // CSF, GM, WM
};

/// Throws ProcessingError when the mask holds fewer than 100 voxels.
TissueClassificationResult classify_tissue(const ImageType* image, const MaskType* brain_mask,
                                           const TissueClassificationOptions& options = {});

}  // namespace brainage::preprocessing
