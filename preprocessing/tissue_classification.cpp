#include "preprocessing/tissue_classification.h"

#include <itkImageRegionConstIterator.h>
#include <itkImageRegionIterator.h>
#include <itkMedianImageFilter.h>
#include <itkScalarImageKmeansImageFilter.h>

#include <algorithm>
#include <vector>

#include "common/errors.h"

namespace brainage::preprocessing {

TissueClassificationResult classify_tissue(const ImageType* image, const MaskType* brain_mask,
                                           const TissueClassificationOptions& options) {
  std::vector<float> values;
  {
    itk::ImageRegionConstIterator<ImageType> i(image, image->GetLargestPossibleRegion());
    itk::ImageRegionConstIterator<MaskType> m(brain_mask, brain_mask->GetLargestPossibleRegion());
    for (; !i.IsAtEnd(); ++i, ++m)
      if (m.Get()) values.push_back(i.Get());
  }
  if (values.size() < 100)
    throw ProcessingError("tissue classification: the brain mask holds " + std::to_string(values.size()) +
                          " voxels (need >= 100)");
  std::sort(values.begin(), values.end());
  auto quantile = [&](double q) { return values[static_cast<std::size_t>(q * static_cast<double>(values.size() - 1))]; };
  const double lowest = values.front();

  // Background voxels are set below every brain intensity so they form their own class.
  const float background = static_cast<float>(lowest - 0.5 * (quantile(0.99) - lowest) - 1.0);
  auto work = ImageType::New();
  work->CopyInformation(image);
  work->SetRegions(image->GetLargestPossibleRegion());
  work->Allocate();
  {
    itk::ImageRegionConstIterator<ImageType> i(image, image->GetLargestPossibleRegion());
    itk::ImageRegionConstIterator<MaskType> m(brain_mask, brain_mask->GetLargestPossibleRegion());
    itk::ImageRegionIterator<ImageType> w(work, work->GetLargestPossibleRegion());
    for (; !i.IsAtEnd(); ++i, ++m, ++w) w.Set(m.Get() ? i.Get() : background);
  }
  using Kmeans = itk::ScalarImageKmeansImageFilter<ImageType, MaskType>;
  auto kmeans = Kmeans::New();
  kmeans->SetInput(work);
  kmeans->AddClassWithInitialMean(background);
  for (double q : options.seed_quantiles) kmeans->AddClassWithInitialMean(quantile(q));
  kmeans->SetUseNonContiguousLabels(false);
  kmeans->Update();
  const auto means = kmeans->GetFinalMeans();

  // Classes come out in the order of their initial means: 0 background, 1 CSF, 2 GM, 3 WM.
  MaskType::Pointer labels = kmeans->GetOutput();
  labels->DisconnectPipeline();
  if (options.smoothing_radius > 0) {
    auto median = itk::MedianImageFilter<MaskType, MaskType>::New();
    median->SetInput(labels);
    median->SetRadius(options.smoothing_radius);
    median->Update();
    MaskType::Pointer smoothed = median->GetOutput();
    itk::ImageRegionIterator<MaskType> l(labels, labels->GetLargestPossibleRegion());
    itk::ImageRegionConstIterator<MaskType> s(smoothed, smoothed->GetLargestPossibleRegion());
    for (; !l.IsAtEnd(); ++l, ++s)
      if (s.Get() != kBackground) l.Set(s.Get());
  }
  TissueClassificationResult result;
  const double voxel_ml = image->GetSpacing()[0] * image->GetSpacing()[1] * image->GetSpacing()[2] / 1000.0;
  itk::ImageRegionIterator<MaskType> l(labels, labels->GetLargestPossibleRegion());
  itk::ImageRegionConstIterator<MaskType> m(brain_mask, brain_mask->GetLargestPossibleRegion());
  for (; !l.IsAtEnd(); ++l, ++m) {
    if (!m.Get()) {
      l.Set(kBackground);
      continue;
    }
    if (l.Get() == kBackground) l.Set(kCSF);  // a brain voxel never stays background
    result.volumes_ml[l.Get() - 1] += voxel_ml;
  }
  for (unsigned c = 0; c < 3; ++c) result.class_means[c] = means.size() > c + 1 ? means[c + 1] : 0.0;
  result.labels = labels;
  return result;
}

}  // namespace brainage::preprocessing
