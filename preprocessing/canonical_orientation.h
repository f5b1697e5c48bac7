#pragma once
// One canonical voxel orientation for every scan, without losing physical geometry: the
// voxel axes are permuted/flipped so they point Right, Anterior, Superior (the closest
// such axes for oblique scans), and origin/direction are rewritten so that every voxel keeps
// its physical position. Resampling nothing, the voxel values are unchanged.
//
// The permutation is the one of the six that maximises the summed |cosine| between each
// output axis and its world axis; ties (a header rotated by exactly 45 degrees, where two
// voxel axes are equally close to one world axis) go to the first in a fixed order,
// identity first. itk::OrientImageFilter picks each axis on its own instead and throws
// "PermuteAxes order indices repeat" on such ties.
#include <array>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

/// How output voxel axis w is read from the input: along input axis source_axis[w],
/// reversed when flip[w].
struct AxisReindexing {
  std::array<unsigned, 3> source_axis{0, 1, 2};
  std::array<bool, 3> flip{false, false, false};
};

/// The re-indexing that makes output axis w point along world axis w towards R, A, S (LPS
/// world: -x, -y, +z) as closely as the direction matrix allows (see above). Permutations
/// whose |cosine| sums differ by at most `tie_tolerance` count as tied. Never throws.
AxisReindexing canonical_axis_reindexing(const ImageType::DirectionType& direction, double tie_tolerance = 1e-6);

/// A copy of `image` re-indexed by canonical_axis_reindexing: voxel axes pointing R, A, S
/// ("RAS" in scan_info's orientation_code) for any direction, exact 45/90 degree rotations
/// included. Spacing and direction columns are permuted/negated with the axes and the
/// origin is the physical point of the input voxel that becomes (0, 0, 0), so every voxel
/// keeps its value and its physical position exactly. Never throws.
ImageType::Pointer to_canonical_orientation(const ImageType* image);

/// Nearest-neighbour resampling of `mask` onto exactly the grid (size, spacing, origin,
/// direction) of `reference`, with the identity transform: brings a canonical-orientation
/// mask back to the input's own grid voxel for voxel.
MaskType::Pointer resample_mask_to_grid(const MaskType* mask, const itk::ImageBase<3>* reference);

}  // namespace brainage::preprocessing
