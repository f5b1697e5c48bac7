#pragma once
// N4 bias-field correction, fitted on a coarse copy (whole voxels, centred) for speed and applied at full
// resolution: the B-spline control-point lattice N4 fits on the small image is evaluated
// on the full-resolution grid (BSplineControlPointImageFilter) and divided out.
#include <vector>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

struct BiasCorrectionOptions {
  /** Voxel size (mm) of the shrunk copy N4 fits on; integer factor per axis f = round(this / spacing), ≥ 1, and the samples are whole voxels f′ apart, f′ = f when odd, else f − 1 (3 for f = 2; so 6 mm apart for 2 mm voxels, 7 mm for 1 mm), placed symmetrically about the image centre (so a flipped or permuted copy of the voxels gets the same field, flipped or permuted). Default = 8.0. */
  double shrink_to_mm{8.0};
  /** Maximum iterations at each fitting level (one level per entry). Default = {50, 50, 30}. */
  std::vector<unsigned> iterations{50, 50, 30};
  /** Convergence threshold (coefficient of variation of the field update). Default = 0.001. */
  double convergence_threshold{0.001};
  /** Control points per axis at the first level (≥ spline order + 1). Default = 4. */
  unsigned control_points{4};
  /** B-spline order. Default = 3. */
  unsigned spline_order{3};
  /** Histogram sharpening FWHM. Default = 0.15. */
  double bias_field_fwhm{0.15};
};

struct BiasCorrectionResult {
  ImageType::Pointer corrected;  // input / field, same grid as the input
  ImageType::Pointer field;      // multiplicative field, same grid as the input, mean ≈ 1 inside the mask
  unsigned levels_run{0};
};

/// Registers with ITK the object factory that gives N4's internal B-spline fit a fixed
/// work-unit count, so the bias field does not depend on the thread count. Called once
/// per process by ensure_itk_factories() (itk_factories.h), inside its std::call_once:
/// registering while another thread creates an ITK object would race on ITK's factory
/// list. Never throws.
void register_bias_fit_factory();

/// Corrects `image` (intensities must be ≥ 0) using voxels where `mask` > 0 (all voxels
/// with intensity > 0 when mask is null). Throws ProcessingError when the mask is empty.
BiasCorrectionResult correct_bias_field(const ImageType* image, const MaskType* mask,
                                        const BiasCorrectionOptions& options = {});

}  // namespace brainage::preprocessing
