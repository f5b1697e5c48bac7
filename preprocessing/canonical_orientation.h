#pragma once
// One canonical voxel orientation for every scan, without losing physical geometry: the
// voxel axes are permuted/flipped so they point Right, Anterior, Superior (the closest
// such axes for oblique scans), and origin/direction are rewritten so that every voxel keeps
// its physical position. Resampling nothing, the voxel values are unchanged.
#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

/// A copy of `image` whose voxel axes point R, A, S ("RAS" in scan_info's orientation_code).
ImageType::Pointer to_canonical_orientation(const ImageType* image);

/// Nearest-neighbour resampling of `mask` onto exactly the grid (size, spacing, origin,
/// direction) of `reference`, with the identity transform: brings a canonical-orientation
/// mask back to the input's own grid voxel for voxel.
MaskType::Pointer resample_mask_to_grid(const MaskType* mask, const itk::ImageBase<3>* reference);

}  // namespace brainage::preprocessing
