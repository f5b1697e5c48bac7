#include "preprocessing/model_grid_resampling.h"

#include <itkLinearInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

#include "preprocessing/model_grid.h"

namespace brainage::preprocessing {

ImageType::Pointer resample_to_model_grid(const ImageType* image, const AffineTransformType* mni_to_native) {
  auto resample = itk::ResampleImageFilter<ImageType, ImageType>::New();
  resample->SetInput(image);
  resample->SetTransform(mni_to_native);
  resample->SetInterpolator(itk::LinearInterpolateImageFunction<ImageType, double>::New());
  resample->SetUseReferenceImage(true);
  resample->SetReferenceImage(make_model_grid_image());
  resample->SetDefaultPixelValue(0);
  resample->Update();
  ImageType::Pointer out = resample->GetOutput();
  out->DisconnectPipeline();
  return out;
}

}  // namespace brainage::preprocessing
