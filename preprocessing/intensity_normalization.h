#pragma once
// Robust intensity normalisation inside the brain: every brain voxel is divided by the
// `reference_percentile` of the brain's intensities (robust to a few bright vessels) and
// clipped to [0, clip_max]; voxels outside the brain are 0. For a T1 this puts white matter
// near 0.9–1.0, grey matter near 0.6–0.7 and CSF near 0.2–0.3, whatever the scanner's scale.
#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

struct IntensityNormalizationOptions {
  /** Percentile of brain intensities mapped to 1. Default = 99.0. */
  double reference_percentile{99.0};
  /** Upper clip after scaling. Default = 1.5. */
  double clip_max{1.5};
};

struct NormalizationResult {
  ImageType::Pointer image;   // same grid as the input
  double reference_value{0};  // the intensity mapped to 1
};

/// The `percentile` (0–100) of `image`'s intensities inside `brain_mask` (same grid,
/// > 0 = brain): the value at rank floor(q × (n − 1)) of the n brain voxels, q = percentile
/// / 100 clamped to [0, 1]. Throws ProcessingError (naming `who`) when the mask is empty.
double brain_intensity_percentile(const ImageType* image, const MaskType* brain_mask, double percentile,
                                  const char* who);

/// Throws ProcessingError when the mask holds no voxel of `image`'s grid.
NormalizationResult normalize_intensity(const ImageType* image, const MaskType* brain_mask,
                                        const IntensityNormalizationOptions& options = {});

}  // namespace brainage::preprocessing
