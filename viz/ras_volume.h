#pragma once
// ITK volume → vtkImageData laid out along RAS (x to the Right, y Anterior, z Superior),
// with RAS millimetres as VTK world coordinates. The model grid is MNI-aligned, so its
// direction is a signed permutation; anything oblique is rejected.
#include <vtkSmartPointer.h>

#include <array>

#include "viz/volume_io.h"

class vtkImageData;

namespace brainage::viz {

/// Float volume → VTK_FLOAT RAS image. Throws InvalidInputError for an oblique grid.
vtkSmartPointer<vtkImageData> to_ras_image(const ImageType* image);
/// Label volume → VTK_UNSIGNED_CHAR RAS image.
vtkSmartPointer<vtkImageData> to_ras_image(const LabelImageType* image);

/// Bounds {xmin, xmax, ymin, ymax, zmin, zmax} (RAS mm, voxel centres) of the non-zero
/// voxels, and their centroid.
struct MaskExtent {
  std::array<double, 6> bounds{};
  std::array<double, 3> centroid{};
  std::size_t voxels{0};
};
MaskExtent mask_extent(vtkImageData* ras_mask);

}  // namespace brainage::viz
