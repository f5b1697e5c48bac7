#include "preprocessing/intensity_normalization.h"

#include <itkImageRegionConstIterator.h>
#include <itkImageRegionIterator.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/errors.h"

namespace brainage::preprocessing {

double brain_intensity_percentile(const ImageType* image, const MaskType* brain_mask, double percentile,
                                  const char* who) {
  std::vector<float> values;
  itk::ImageRegionConstIterator<ImageType> i(image, image->GetLargestPossibleRegion());
  itk::ImageRegionConstIterator<MaskType> m(brain_mask, brain_mask->GetLargestPossibleRegion());
  for (; !i.IsAtEnd(); ++i, ++m)
    if (m.Get()) values.push_back(i.Get());
  if (values.empty()) throw ProcessingError(std::string(who) + ": the brain mask is empty");
  const double q = std::clamp(percentile, 0.0, 100.0) / 100.0;
  const auto k = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return values[k];
}

NormalizationResult normalize_intensity(const ImageType* image, const MaskType* brain_mask,
                                        const IntensityNormalizationOptions& options) {
  NormalizationResult result;
  result.reference_value =
      brain_intensity_percentile(image, brain_mask, options.reference_percentile, "intensity normalisation");
  if (!(result.reference_value > 0))
    throw ProcessingError("intensity normalisation: the brain's " + std::to_string(options.reference_percentile) +
                          "th percentile is not positive");
  result.image = ImageType::New();
  result.image->CopyInformation(image);
  result.image->SetRegions(image->GetLargestPossibleRegion());
  result.image->Allocate();
  const float scale = static_cast<float>(1.0 / result.reference_value);
  const float clip = static_cast<float>(options.clip_max);
  itk::ImageRegionConstIterator<ImageType> i(image, image->GetLargestPossibleRegion());
  itk::ImageRegionConstIterator<MaskType> m(brain_mask, brain_mask->GetLargestPossibleRegion());
  itk::ImageRegionIterator<ImageType> o(result.image, result.image->GetLargestPossibleRegion());
  for (; !i.IsAtEnd(); ++i, ++m, ++o) o.Set(m.Get() ? std::clamp(i.Get() * scale, 0.0f, clip) : 0.0f);
  return result;
}

}  // namespace brainage::preprocessing
