#include "preprocessing/canonical_orientation.h"

#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

#include <cmath>

namespace brainage::preprocessing {

AxisReindexing canonical_axis_reindexing(const ImageType::DirectionType& direction, double tie_tolerance) {
  // The six permutations in a fixed order, identity first: on a tie (within
  // tie_tolerance) the earlier one wins, so the choice never depends on rounding.
  static const std::array<std::array<unsigned, 3>, 6> kPermutations = {
      {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}};
  AxisReindexing best;
  double best_sum = -1;
  for (const auto& perm : kPermutations) {
    double sum = 0;
    for (unsigned w = 0; w < 3; ++w) sum += std::abs(direction[w][perm[w]]);
    if (sum > best_sum + tie_tolerance) {
      best_sum = sum;
      best.source_axis = perm;
    }
  }
  // Output axis w runs along world axis w towards R, A, S: -x, -y, +z in ITK's LPS world.
  static const double kWanted[3] = {-1.0, -1.0, 1.0};
  for (unsigned w = 0; w < 3; ++w) best.flip[w] = direction[w][best.source_axis[w]] * kWanted[w] < 0;
  return best;
}

ImageType::Pointer to_canonical_orientation(const ImageType* image) {
  const AxisReindexing re = canonical_axis_reindexing(image->GetDirection());
  const auto region = image->GetLargestPossibleRegion();
  const auto in_size = region.GetSize();
  const auto in_start = region.GetIndex();
  ImageType::SizeType size;
  ImageType::SpacingType spacing;
  ImageType::DirectionType direction;
  ImageType::IndexType first;  // input index of output voxel (0, 0, 0)
  std::array<std::ptrdiff_t, 3> in_stride{1, static_cast<std::ptrdiff_t>(in_size[0]),
                                          static_cast<std::ptrdiff_t>(in_size[0] * in_size[1])};
  std::array<std::ptrdiff_t, 3> step{};  // input buffer step per output index step, per output axis
  std::ptrdiff_t start_offset = 0;
  for (unsigned w = 0; w < 3; ++w) {
    const unsigned a = re.source_axis[w];
    size[w] = in_size[a];
    spacing[w] = image->GetSpacing()[a];
    for (unsigned r = 0; r < 3; ++r) direction[r][w] = (re.flip[w] ? -1.0 : 1.0) * image->GetDirection()[r][a];
    const auto last = static_cast<std::ptrdiff_t>(in_size[a]) - 1;
    first[a] = in_start[a] + (re.flip[w] ? last : 0);
    step[w] = (re.flip[w] ? -1 : 1) * in_stride[a];
    start_offset += (re.flip[w] ? last : 0) * in_stride[a];
  }
  ImageType::PointType origin;
  image->TransformIndexToPhysicalPoint(first, origin);

  auto out = ImageType::New();
  out->SetRegions(ImageType::RegionType(size));
  out->SetSpacing(spacing);
  out->SetOrigin(origin);
  out->SetDirection(direction);
  out->Allocate();
  const float* in = image->GetBufferPointer();
  float* o = out->GetBufferPointer();
  for (std::size_t k = 0; k < size[2]; ++k)
    for (std::size_t j = 0; j < size[1]; ++j) {
      const float* p = in + start_offset + static_cast<std::ptrdiff_t>(k) * step[2] + static_cast<std::ptrdiff_t>(j) * step[1];
      for (std::size_t i = 0; i < size[0]; ++i, p += step[0]) *o++ = *p;
    }
  return out;
}

MaskType::Pointer resample_mask_to_grid(const MaskType* mask, const itk::ImageBase<3>* reference) {
  auto resample = itk::ResampleImageFilter<MaskType, MaskType>::New();
  resample->SetInput(mask);
  resample->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<MaskType, double>::New());
  resample->SetSize(reference->GetLargestPossibleRegion().GetSize());
  resample->SetOutputStartIndex(reference->GetLargestPossibleRegion().GetIndex());
  resample->SetOutputSpacing(reference->GetSpacing());
  resample->SetOutputOrigin(reference->GetOrigin());
  resample->SetOutputDirection(reference->GetDirection());
  resample->SetDefaultPixelValue(0);
  resample->Update();
  MaskType::Pointer out = resample->GetOutput();
  out->DisconnectPipeline();
  return out;
}

}  // namespace brainage::preprocessing
