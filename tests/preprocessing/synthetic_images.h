#pragma once
// Tiny synthetic volumes with exact answers for the preprocessing tests, and Colin27 moved by
// a known transform (a scan whose true template->native transform is known).
#include <itkImageRegionIteratorWithIndex.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "preprocessing/image_types.h"
#include "preprocessing/template_registration.h"

namespace brainage::testing {

using preprocessing::AffineTransformType;
using preprocessing::ImageType;
using preprocessing::MaskType;

/// An `n`³ image with `spacing` mm voxels, identity direction, centred on the origin, holding
/// an ellipsoidal blob (semi-axes 12, 9, 7 voxels·spacing) with a smaller bright core placed
/// off-centre, so that every rotation and translation changes the image.
inline ImageType::Pointer make_blob_image(unsigned n, double spacing, const itk::Vector<double, 3>& shift_mm = {}) {
  auto image = ImageType::New();
  ImageType::SizeType size;
  size.Fill(n);
  image->SetRegions(ImageType::RegionType(size));
  ImageType::SpacingType sp;
  sp.Fill(spacing);
  image->SetSpacing(sp);
  ImageType::PointType origin;
  origin.Fill(-0.5 * (n - 1) * spacing);
  image->SetOrigin(origin);
  image->Allocate();
  itk::ImageRegionIteratorWithIndex<ImageType> it(image, image->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) {
    ImageType::PointType p;
    image->TransformIndexToPhysicalPoint(it.GetIndex(), p);
    const double x = p[0] - shift_mm[0], y = p[1] - shift_mm[1], z = p[2] - shift_mm[2];
    const double r1 = std::pow(x / (12 * spacing), 2) + std::pow(y / (9 * spacing), 2) + std::pow(z / (7 * spacing), 2);
    const double r2 = std::pow((x - 4 * spacing) / (4 * spacing), 2) + std::pow((y + 2 * spacing) / (3 * spacing), 2) +
                      std::pow(z / (3 * spacing), 2);
    it.Set(static_cast<float>(100.0 / (1.0 + std::exp(8 * (r1 - 1))) + 80.0 / (1.0 + std::exp(8 * (r2 - 1)))));
  }
  return image;
}

/// A rigid-plus-scale affine (template/fixed points -> native/moving points) about `center`.
inline AffineTransformType::Pointer make_affine(const itk::Vector<double, 3>& degrees, const itk::Vector<double, 3>& translation,
                                                double scale, const itk::Point<double, 3>& center) {
  auto t = AffineTransformType::New();
  t->SetCenter(center);
  t->Rotate3D(itk::Vector<double, 3>(std::array<double, 3>{1, 0, 0}.data()), degrees[0] * M_PI / 180.0);
  t->Rotate3D(itk::Vector<double, 3>(std::array<double, 3>{0, 1, 0}.data()), degrees[1] * M_PI / 180.0);
  t->Rotate3D(itk::Vector<double, 3>(std::array<double, 3>{0, 0, 1}.data()), degrees[2] * M_PI / 180.0);
  t->Scale(scale);
  t->SetTranslation(translation);
  return t;
}

/// `image` as a scan whose template->native transform is `mni_to_native`: sampled on a grid
/// of `size` voxels of `spacing` mm with direction `direction`, centred on the transformed
/// template centre. Masks use nearest neighbour.
template <typename TImage>
typename TImage::Pointer move_image(const TImage* image, const AffineTransformType* mni_to_native,
                                    const typename TImage::SizeType& size, double spacing,
                                    const typename TImage::DirectionType& direction, bool nearest = false) {
  auto inverse = AffineTransformType::New();
  mni_to_native->GetInverse(inverse);
  itk::ContinuousIndex<double, 3> mid;
  for (unsigned d = 0; d < 3; ++d) mid[d] = 0.5 * (image->GetLargestPossibleRegion().GetSize()[d] - 1);
  typename TImage::PointType centre;
  image->TransformContinuousIndexToPhysicalPoint(mid, centre);
  const auto native_centre = mni_to_native->TransformPoint(centre);
  typename TImage::SpacingType sp;
  sp.Fill(spacing);
  typename TImage::PointType origin;
  for (unsigned r = 0; r < 3; ++r) {
    origin[r] = native_centre[r];
    for (unsigned c = 0; c < 3; ++c) origin[r] -= direction(r, c) * 0.5 * (size[c] - 1) * spacing;
  }
  auto resample = itk::ResampleImageFilter<TImage, TImage>::New();
  resample->SetInput(image);
  resample->SetTransform(inverse);
  if (nearest)
    resample->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<TImage, double>::New());
  else
    resample->SetInterpolator(itk::LinearInterpolateImageFunction<TImage, double>::New());
  resample->SetSize(size);
  resample->SetOutputSpacing(sp);
  resample->SetOutputOrigin(origin);
  resample->SetOutputDirection(direction);
  resample->SetDefaultPixelValue(0);
  resample->Update();
  typename TImage::Pointer out = resample->GetOutput();
  out->DisconnectPipeline();
  return out;
}

/// A copy of `image` with every voxel value x replaced by f(x) (same grid).
inline ImageType::Pointer intensity_mapped(const ImageType* image, const std::function<double(double)>& f) {
  auto out = ImageType::New();
  out->CopyInformation(image);
  out->SetRegions(image->GetLargestPossibleRegion());
  out->Allocate();
  itk::ImageRegionConstIterator<ImageType> in(image, image->GetLargestPossibleRegion());
  itk::ImageRegionIterator<ImageType> o(out, out->GetLargestPossibleRegion());
  for (; !in.IsAtEnd(); ++in, ++o) o.Set(static_cast<float>(f(in.Get())));
  return out;
}

/// A copy of `image` through x -> peak · (x / peak)^gamma, peak = the image's maximum,
/// negative values to 0: a monotone change of the contrast curve (gamma < 1 brightens the
/// dark tissues, as a weaker T1 weighting does).
inline ImageType::Pointer gamma_contrast(const ImageType* image, double gamma) {
  float peak = 0;
  itk::ImageRegionConstIterator<ImageType> in(image, image->GetLargestPossibleRegion());
  for (; !in.IsAtEnd(); ++in) peak = std::max(peak, in.Get());
  return intensity_mapped(image, [&](double x) { return peak > 0 ? peak * std::pow(std::max(0.0, x) / peak, gamma) : 0.0; });
}

/// A copy of `image` through the piecewise-linear function through `knots` (x, y), x
/// increasing; values outside the knots unchanged: another scanner's tissue levels (knots
/// at the scan's CSF, GM, WM levels, moved; docs/ROBUSTNESS.md "Another scanner's contrast").
inline ImageType::Pointer piecewise_linear_contrast(const ImageType* image,
                                                    const std::vector<std::pair<double, double>>& knots) {
  return intensity_mapped(image, [&](double x) {
    for (std::size_t k = 0; k + 1 < knots.size(); ++k)
      if (x >= knots[k].first && x <= knots[k + 1].first) {
        const double t = (x - knots[k].first) / (knots[k + 1].first - knots[k].first);
        return knots[k].second + t * (knots[k + 1].second - knots[k].second);
      }
    return x;
  });
}

/// A copy of `image` times a smooth multiplicative bias field with max/min = `ratio` across
/// the head's bounding box (voxels above 10 % of the maximum): log-linear along voxel axis
/// `axis` (0..2), or radial (axis 3: bright centre, dark edges), as coil shading is.
inline ImageType::Pointer times_bias_field(const ImageType* image, int axis, double ratio) {
  const auto size = image->GetLargestPossibleRegion().GetSize();
  const auto n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  const float peak = *std::max_element(image->GetBufferPointer(), image->GetBufferPointer() + n);
  long lo[3] = {long(size[0]), long(size[1]), long(size[2])}, hi[3] = {-1, -1, -1};
  itk::ImageRegionConstIteratorWithIndex<ImageType> it(image, image->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it)
    if (it.Get() > 0.1f * peak)
      for (unsigned d = 0; d < 3; ++d) {
        lo[d] = std::min<long>(lo[d], it.GetIndex()[d]);
        hi[d] = std::max<long>(hi[d], it.GetIndex()[d]);
      }
  auto out = ImageType::New();
  out->CopyInformation(image);
  out->SetRegions(image->GetLargestPossibleRegion());
  out->Allocate();
  itk::ImageRegionIteratorWithIndex<ImageType> o(out, out->GetLargestPossibleRegion());
  const double log_ratio = std::log(ratio);
  for (; !o.IsAtEnd(); ++o) {
    double u[3];
    for (unsigned d = 0; d < 3; ++d)
      u[d] = std::clamp((o.GetIndex()[d] - lo[d]) / std::max(1.0, double(hi[d] - lo[d])), 0.0, 1.0) - 0.5;
    const double exponent = axis < 3 ? log_ratio * u[axis]
                                     : log_ratio * (0.5 - (u[0] * u[0] + u[1] * u[1] + u[2] * u[2]) / 0.75);
    o.Set(image->GetPixel(o.GetIndex()) * static_cast<float>(std::exp(exponent)));
  }
  return out;
}

/// The same voxels with the header rotated by `degrees` about the image centre, about
/// physical (LPS) axis `axis` (0 = L-R: pitch, 1 = A-P: roll, 2 = S-I: yaw).
inline ImageType::Pointer header_rotated(const ImageType* image, unsigned axis, double degrees) {
  auto out = ImageType::New();
  out->Graft(image);
  out->DisconnectPipeline();
  const double a = degrees * M_PI / 180.0;
  ImageType::DirectionType r;
  r.SetIdentity();
  const unsigned i = (axis + 1) % 3, j = (axis + 2) % 3;
  r[i][i] = std::cos(a);
  r[i][j] = -std::sin(a);
  r[j][i] = std::sin(a);
  r[j][j] = std::cos(a);
  itk::ContinuousIndex<double, 3> centre_index;
  for (unsigned d = 0; d < 3; ++d) centre_index[d] = (image->GetLargestPossibleRegion().GetSize()[d] - 1) / 2.0;
  ImageType::PointType centre, moved;
  image->TransformContinuousIndexToPhysicalPoint(centre_index, centre);
  out->SetDirection(r * image->GetDirection());
  out->TransformContinuousIndexToPhysicalPoint(centre_index, moved);
  auto origin = out->GetOrigin();
  for (unsigned d = 0; d < 3; ++d) origin[d] += centre[d] - moved[d];
  out->SetOrigin(origin);
  return out;
}

}  // namespace brainage::testing
