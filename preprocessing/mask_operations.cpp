#include "preprocessing/mask_operations.h"

#include <itkSignedMaurerDistanceMapImageFilter.h>

namespace brainage::preprocessing {
namespace {

/// 1 where `mask` is 0 and 0 where it is set.
MaskType::Pointer inverted(const MaskType* mask) {
  auto out = new_mask_like(mask);
  const unsigned char* m = mask->GetBufferPointer();
  unsigned char* o = out->GetBufferPointer();
  for (std::size_t i = 0, n = mask->GetLargestPossibleRegion().GetNumberOfPixels(); i < n; ++i) o[i] = m[i] ? 0 : 1;
  return out;
}

}  // namespace

MaskType::Pointer new_mask_like(const itk::ImageBase<3>* reference) {
  auto mask = MaskType::New();
  mask->CopyInformation(reference);
  mask->SetRegions(reference->GetLargestPossibleRegion());
  mask->Allocate();
  mask->FillBuffer(0);
  return mask;
}

ImageType::Pointer signed_distance_mm(const MaskType* mask) {
  auto distance = itk::SignedMaurerDistanceMapImageFilter<MaskType, ImageType>::New();
  distance->SetInput(mask);
  distance->SetInsideIsPositive(false);
  distance->SetSquaredDistance(false);
  distance->SetUseImageSpacing(true);
  distance->SetBackgroundValue(0);
  distance->Update();
  ImageType::Pointer out = distance->GetOutput();
  out->DisconnectPipeline();
  return out;
}

MaskType::Pointer distance_at_most(const ImageType* distance, double mm) {
  auto out = new_mask_like(distance);
  const float* d = distance->GetBufferPointer();
  unsigned char* m = out->GetBufferPointer();
  for (std::size_t i = 0, n = distance->GetLargestPossibleRegion().GetNumberOfPixels(); i < n; ++i) m[i] = d[i] <= mm ? 1 : 0;
  return out;
}

MaskType::Pointer mask_above(const ImageType* image, float threshold) {
  auto out = new_mask_like(image);
  const float* v = image->GetBufferPointer();
  unsigned char* m = out->GetBufferPointer();
  for (std::size_t i = 0, n = image->GetLargestPossibleRegion().GetNumberOfPixels(); i < n; ++i) m[i] = v[i] > threshold ? 1 : 0;
  return out;
}

bool any_set(const MaskType* mask) {
  const unsigned char* m = mask->GetBufferPointer();
  for (std::size_t i = 0, n = mask->GetLargestPossibleRegion().GetNumberOfPixels(); i < n; ++i)
    if (m[i]) return true;
  return false;
}

MaskType::Pointer dilate_mask(const MaskType* mask, double mm) {
  if (mm <= 0 || !any_set(mask)) return const_cast<MaskType*>(mask);
  return distance_at_most(signed_distance_mm(mask), mm);
}

MaskType::Pointer erode_mask(const MaskType* mask, double mm) {
  if (mm <= 0 || !any_set(mask)) return const_cast<MaskType*>(mask);
  // The dual of dilate_mask: what the background dilated by `mm` does not reach. (Cutting
  // the signed distance at -mm is not: it measures to the mask's own edge voxels, so an
  // erosion after a dilation removed more than the dilation added, and a "closing" shrank.)
  return inverted(dilate_mask(inverted(mask), mm));
}

ImageType::Pointer mask_image(const ImageType* image, const MaskType* mask) {
  auto out = ImageType::New();
  out->CopyInformation(image);
  out->SetRegions(image->GetLargestPossibleRegion());
  out->Allocate();
  const float* v = image->GetBufferPointer();
  const unsigned char* m = mask->GetBufferPointer();
  float* o = out->GetBufferPointer();
  for (std::size_t i = 0, n = image->GetLargestPossibleRegion().GetNumberOfPixels(); i < n; ++i) o[i] = m[i] ? v[i] : 0.f;
  return out;
}

}  // namespace brainage::preprocessing
