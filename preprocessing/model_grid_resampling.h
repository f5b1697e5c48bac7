#pragma once
// Native-space images onto the model grid (preprocessing/model_grid.h: 80×96×80 voxels of
// 2 mm in MNI space) through the native↔MNI affine: one resampling for the T1, the brain
// mask and the tissue maps (ITK ResampleImageFilter, trilinear interpolation).
#include "preprocessing/image_types.h"
#include "preprocessing/template_registration.h"

namespace brainage::preprocessing {

/// `image` (any grid in the native physical space) sampled at the model grid's voxel
/// centres through `mni_to_native` (MNI points -> native points, ITK's convention):
/// trilinear, 0 outside the image. Returns a new model-grid image; throws
/// itk::ExceptionObject only on an ITK failure.
ImageType::Pointer resample_to_model_grid(const ImageType* image, const AffineTransformType* mni_to_native);

}  // namespace brainage::preprocessing
