#include "preprocessing/tissue_classification.h"

#include <itkImageRegionConstIterator.h>
#include <itkImageRegionIterator.h>
#include <itkMedianImageFilter.h>

#include <algorithm>
#include <array>
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

  // K-means (Lloyd) on the brain intensities. In one dimension every class is an interval
  // of the sorted values, so each iteration is a few binary searches on prefix sums: exact,
  // and much faster than a k-d tree over the whole grid (ITK's ScalarImageKmeans, used
  // before, with the background as a fourth class far below the brain).
  std::vector<double> prefix(values.size() + 1, 0.0);
  for (std::size_t i = 0; i < values.size(); ++i) prefix[i + 1] = prefix[i] + values[i];
  std::array<double, 3> means{};  // CSF, GM, WM
  for (std::size_t c = 0; c < 3; ++c) means[c] = quantile(options.seed_quantiles[c]);
  std::array<float, 2> upper{};  // CSF: value < upper[0]; GM: < upper[1]; WM: the rest
  auto place_boundaries = [&] {
    for (std::size_t c = 0; c < 2; ++c) upper[c] = static_cast<float>(0.5 * (means[c] + means[c + 1]));
  };
  for (int iteration = 0; iteration < options.max_iterations; ++iteration) {
    place_boundaries();
    const std::size_t split[4] = {0, static_cast<std::size_t>(std::lower_bound(values.begin(), values.end(), upper[0]) - values.begin()),
                                  static_cast<std::size_t>(std::lower_bound(values.begin(), values.end(), upper[1]) - values.begin()),
                                  values.size()};
    bool changed = false;
    for (std::size_t c = 0; c < 3; ++c) {
      if (split[c + 1] <= split[c]) continue;  // an empty class keeps its mean
      const double mean = (prefix[split[c + 1]] - prefix[split[c]]) / static_cast<double>(split[c + 1] - split[c]);
      changed |= mean != means[c];
      means[c] = mean;
    }
    if (!changed) break;
  }
  place_boundaries();
  auto labels = MaskType::New();
  labels->CopyInformation(image);
  labels->SetRegions(image->GetLargestPossibleRegion());
  labels->Allocate();
  {
    itk::ImageRegionConstIterator<ImageType> i(image, image->GetLargestPossibleRegion());
    itk::ImageRegionConstIterator<MaskType> m(brain_mask, brain_mask->GetLargestPossibleRegion());
    itk::ImageRegionIterator<MaskType> l(labels, labels->GetLargestPossibleRegion());
    for (; !i.IsAtEnd(); ++i, ++m, ++l) {
      if (!m.Get()) {
        l.Set(kBackground);
        continue;
      }
      const float v = i.Get();
      l.Set(v < upper[0] ? kCSF : v < upper[1] ? kGM : kWM);
    }
  }

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
  for (unsigned c = 0; c < 3; ++c) result.class_means[c] = means[c];
  result.labels = labels;
  return result;
}

}  // namespace brainage::preprocessing
