#pragma once
// Small mask operations shared by the brain extraction, the pipeline and the registration:
// signed distance maps, dilation and erosion by a physical distance, and cutting an image
// with a mask.
#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

/// An all-zero mask on `reference`'s grid.
MaskType::Pointer new_mask_like(const itk::ImageBase<3>* reference);

/// Signed Euclidean distance (mm) to the boundary of `mask` > 0: negative inside.
ImageType::Pointer signed_distance_mm(const MaskType* mask);

/// 1 where `distance` <= `mm` (on the distance image's grid).
MaskType::Pointer distance_at_most(const ImageType* distance, double mm);

/// `mask` (> 0 = set) dilated by `mm`; `mm` <= 0 or an empty mask: `mask` as it is.
MaskType::Pointer dilate_mask(const MaskType* mask, double mm);

/// `mask` eroded by `mm`: the voxels farther than `mm` from every unset voxel (the dual of
/// dilate_mask, so erode(dilate(m)) contains m); `mm` <= 0, an empty or a full mask: `mask` as it is.
MaskType::Pointer erode_mask(const MaskType* mask, double mm);

/// 1 where `image` > `threshold`, on the image's grid.
MaskType::Pointer mask_above(const ImageType* image, float threshold);

/// True when any voxel of `mask` is set.
bool any_set(const MaskType* mask);

/// `image` where `mask` (same grid) is set, 0 elsewhere.
ImageType::Pointer mask_image(const ImageType* image, const MaskType* mask);

}  // namespace brainage::preprocessing
