#include "viz/ras_volume.h"

#include <vtkImageData.h>

#include <cmath>

#include "common/errors.h"

namespace brainage::viz {

namespace {
template <typename TImage, typename TPixel>
vtkSmartPointer<vtkImageData> convert(const TImage* image, int vtk_type) {
  const auto size = image->GetLargestPossibleRegion().GetSize();
  const auto start = image->GetLargestPossibleRegion().GetIndex();
  const auto& d = image->GetDirection();
  std::array<int, 3> perm{}, sign{};  // RAS axis r <- image axis perm[r], same (1) or opposite (-1) direction
  std::array<bool, 3> used{false, false, false};
  for (int i = 0; i < 3; ++i) {  // image axis i
    int best = 0;
    double best_abs = 0.0, best_val = 0.0;
    for (int r = 0; r < 3; ++r) {
      const double ras = (r < 2 ? -1.0 : 1.0) * d(r, i);  // LPS -> RAS
      if (std::abs(ras) > best_abs) best_abs = std::abs(ras), best_val = ras, best = r;
    }
    if (best_abs < 0.999 || used[best])
      throw InvalidInputError("model-grid volume: direction is oblique, expected an MNI-aligned grid");
    used[best] = true;
    perm[best] = i;
    sign[best] = best_val > 0 ? 1 : -1;
  }
  itk::Index<3> corner;  // the voxel with the smallest R, A and S coordinates
  for (int r = 0; r < 3; ++r) {
    const int i = perm[r];
    corner[i] = start[i] + (sign[r] > 0 ? 0 : static_cast<long>(size[i]) - 1);
  }
  typename TImage::PointType p;
  image->TransformIndexToPhysicalPoint(corner, p);
  auto out = vtkSmartPointer<vtkImageData>::New();
  out->SetDimensions(static_cast<int>(size[perm[0]]), static_cast<int>(size[perm[1]]), static_cast<int>(size[perm[2]]));
  out->SetSpacing(image->GetSpacing()[perm[0]], image->GetSpacing()[perm[1]], image->GetSpacing()[perm[2]]);
  out->SetOrigin(-p[0], -p[1], p[2]);
  out->AllocateScalars(vtk_type, 1);
  auto* dst = static_cast<TPixel*>(out->GetScalarPointer());
  const int n0 = static_cast<int>(size[perm[0]]), n1 = static_cast<int>(size[perm[1]]), n2 = static_cast<int>(size[perm[2]]);
  itk::Index<3> idx;
  std::size_t k = 0;
  for (int c = 0; c < n2; ++c)
    for (int b = 0; b < n1; ++b)
      for (int a = 0; a < n0; ++a, ++k) {
        const int v[3] = {a, b, c};
        for (int r = 0; r < 3; ++r) {
          const int i = perm[r];
          idx[i] = start[i] + (sign[r] > 0 ? v[r] : static_cast<long>(size[i]) - 1 - v[r]);
        }
        dst[k] = image->GetPixel(idx);
      }
  return out;
}
}  // namespace

vtkSmartPointer<vtkImageData> to_ras_image(const ImageType* image) {
  return convert<ImageType, float>(image, VTK_FLOAT);
}
vtkSmartPointer<vtkImageData> to_ras_image(const LabelImageType* image) {
  return convert<LabelImageType, unsigned char>(image, VTK_UNSIGNED_CHAR);
}

MaskExtent mask_extent(vtkImageData* mask) {
  MaskExtent e;
  e.bounds = {1e30, -1e30, 1e30, -1e30, 1e30, -1e30};
  const int* dims = mask->GetDimensions();
  const double* o = mask->GetOrigin();
  const double* s = mask->GetSpacing();
  std::array<double, 3> sum{0, 0, 0};
  for (int c = 0; c < dims[2]; ++c)
    for (int b = 0; b < dims[1]; ++b)
      for (int a = 0; a < dims[0]; ++a) {
        if (mask->GetScalarComponentAsDouble(a, b, c, 0) == 0.0) continue;
        const double p[3] = {o[0] + a * s[0], o[1] + b * s[1], o[2] + c * s[2]};
        for (int r = 0; r < 3; ++r) {
          e.bounds[2 * r] = std::min(e.bounds[2 * r], p[r]);
          e.bounds[2 * r + 1] = std::max(e.bounds[2 * r + 1], p[r]);
          sum[r] += p[r];
        }
        ++e.voxels;
      }
  if (e.voxels == 0) throw InvalidInputError("brain_mask_mni2mm.nii.gz: brain mask is empty");
  for (int r = 0; r < 3; ++r) e.centroid[r] = sum[r] / static_cast<double>(e.voxels);
  return e;
}

}  // namespace brainage::viz
