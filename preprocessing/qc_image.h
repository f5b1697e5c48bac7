#pragma once
// qc.png, rendered with ITK only: a 2×3 mosaic of 256×256 tiles.
//   top row:    the (bias-corrected) scan in native space, axial / coronal / sagittal
//               through the brain mask's centroid, brain-mask outline in red;
//   bottom row: the registered brain in the model grid (MNI), same views through the grid
//               centre, with the Colin27 template's edges in green.
// Views are sampled in physical space (so any voxel orientation renders the same way):
// patient right on the left of the image, anterior/superior up.
#include <filesystem>

#include <itkImage.h>
#include <itkRGBPixel.h>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

using RGBImageType = itk::Image<itk::RGBPixel<unsigned char>, 2>;

/// `native` and `native_mask` share one grid; `model_t1` and `template_model` are on the model grid.
RGBImageType::Pointer render_qc_image(const ImageType* native, const MaskType* native_mask, const ImageType* model_t1,
                                      const ImageType* template_model);

/// Writes a PNG atomically; throws OutputError naming the path.
void write_png(const RGBImageType* image, const std::filesystem::path& path);

}  // namespace brainage::preprocessing
