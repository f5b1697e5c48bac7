#pragma once
// Small mask operations shared by the pipeline and the registration: dilation by a
// physical distance and cutting an image with a mask.
#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

/// `mask` (> 0 = set) dilated by `mm` (Euclidean distance in physical units).
MaskType::Pointer dilate_mask(const MaskType* mask, double mm);

/// `image` where `mask` (same grid) is set, 0 elsewhere.
ImageType::Pointer mask_image(const ImageType* image, const MaskType* mask);

}  // namespace brainage::preprocessing
