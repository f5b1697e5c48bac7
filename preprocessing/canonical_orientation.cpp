#include "preprocessing/canonical_orientation.h"

#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkOrientImageFilter.h>
#include <itkResampleImageFilter.h>

namespace brainage::preprocessing {

ImageType::Pointer to_canonical_orientation(const ImageType* image) {
  using OrientFilter = itk::OrientImageFilter<ImageType, ImageType>;
  auto orient = OrientFilter::New();
  orient->SetInput(image);
  orient->UseImageDirectionOn();
  // ITK names orientations by where each axis comes FROM: "LPI" = x runs L->R, y P->A,
  // z I->S, i.e. voxel axes pointing R, A, S (direction diag(-1, -1, 1) in LPS).
  orient->SetDesiredCoordinateOrientation(itk::SpatialOrientation::ITK_COORDINATE_ORIENTATION_LPI);
  orient->Update();
  ImageType::Pointer out = orient->GetOutput();
  out->DisconnectPipeline();
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
