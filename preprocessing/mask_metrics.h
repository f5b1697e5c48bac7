#pragma once
// Overlap of two masks on the same grid: the skull-strip accuracy measure of tests and
// benchmarks.
#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

/// Dice = 2|A∩B| / (|A| + |B|) over voxels > 0. Throws ProcessingError when the grids'
/// sizes differ; 1 when both are empty.
double dice(const MaskType* a, const MaskType* b);

/// Volume (mL) of the voxels > 0.
double mask_volume_ml(const MaskType* mask);

/// The centroid (physical point, mm) of the voxels > 0. Throws ProcessingError for an
/// empty mask.
itk::Point<double, 3> mask_centroid(const MaskType* mask);

}  // namespace brainage::preprocessing
