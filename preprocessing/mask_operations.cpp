#include "preprocessing/mask_operations.h"

#include <itkImageRegionConstIterator.h>
#include <itkImageRegionIterator.h>
#include <itkSignedMaurerDistanceMapImageFilter.h>

namespace brainage::preprocessing {

MaskType::Pointer dilate_mask(const MaskType* mask, double mm) {
  auto distance = itk::SignedMaurerDistanceMapImageFilter<MaskType, ImageType>::New();
  distance->SetInput(mask);
  distance->SetInsideIsPositive(false);
  distance->SetSquaredDistance(false);
  distance->SetUseImageSpacing(true);
  distance->Update();
  auto out = MaskType::New();
  out->CopyInformation(mask);
  out->SetRegions(mask->GetLargestPossibleRegion());
  out->Allocate();
  itk::ImageRegionConstIterator<ImageType> d(distance->GetOutput(), distance->GetOutput()->GetLargestPossibleRegion());
  itk::ImageRegionIterator<MaskType> m(out, out->GetLargestPossibleRegion());
  for (; !d.IsAtEnd(); ++d, ++m) m.Set(d.Get() <= mm ? 1 : 0);
  return out;
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
