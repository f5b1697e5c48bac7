#pragma once
// Carries model-grid maps back into the scan's native space. The prediction folder's
// native_to_mni.tfm is ITK's registration transform: it maps points of the MNI (fixed)
// space to points of the native (moving) scan. A native voxel at point p therefore takes
// the value of the model-grid map at T⁻¹(p), nearest neighbour; the result has exactly
// the reference's size, spacing, origin and direction.
#include <itkAffineTransform.h>

#include <filesystem>

#include "viz/volume_io.h"

namespace brainage::viz {

using AffineTransformType = itk::AffineTransform<double, 3>;

/// Reads an ITK transform file holding one matrix+offset transform (affine, rigid,
/// similarity, ...). Throws InvalidInputError otherwise.
AffineTransformType::Pointer read_mni_to_native_transform(const std::filesystem::path& tfm);

/// Writes `transform` as an ITK transform file (atomically).
void write_transform(const AffineTransformType* transform, const std::filesystem::path& tfm);

/// Nearest-neighbour resampling of a model-grid label map into `native_reference`'s grid;
/// 0 where T⁻¹(p) falls outside the model grid.
LabelImageType::Pointer labels_to_native(const LabelImageType* labels_mni, const AffineTransformType* mni_to_native,
                                         const itk::ImageBase<3>* native_reference);

/// Same for a float map (nearest neighbour too, so every native value is a token's score).
ImageType::Pointer scores_to_native(const ImageType* scores_mni, const AffineTransformType* mni_to_native,
                                    const itk::ImageBase<3>* native_reference);

}  // namespace brainage::viz
