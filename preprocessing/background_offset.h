#pragma once
// Removes an intensity offset so that "no signal" is 0 again, before anything that reads
// intensities as magnitudes (N4 works on log intensities; the skull-strip detector, the
// brain extraction's thresholds and the normalisation divide by percentiles). A T1
// magnitude image has air at ~0; inputs that arrive with a DICOM rescale intercept gone
// wrong, z-scored over the volume, or shifted by a constant have it at some other level,
// and every ratio the pipeline takes would then change with that offset.
//
// Method: the background level is a low percentile of all voxels (air fills far more than
// that fraction of any head scan's field of view); it is subtracted and what falls below
// 0 is set to 0, as ANTs' brain extraction truncates intensities at a low quantile before
// N4 (antsBrainExtraction.sh, ImageMath TruncateImageIntensity). An image whose background
// is already at 0 (most scans) comes back unchanged, voxel for voxel.
#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

struct BackgroundOffsetOptions {
  /** Percentile (0-100) of all voxels taken as the background level. Default = 1.0. */
  double background_percentile{1.0};
};

struct BackgroundOffsetResult {
  ImageType::Pointer image;       // same grid; image - level, clipped at 0
  double background_level{0};     // the intensity that became 0 (input units)
};

/// `image` with its background level moved to 0 (see the header comment). Throws
/// ProcessingError for an empty image.
BackgroundOffsetResult remove_background_offset(const ImageType* image, const BackgroundOffsetOptions& options = {});

}  // namespace brainage::preprocessing
