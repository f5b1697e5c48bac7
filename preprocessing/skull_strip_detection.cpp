#include "preprocessing/skull_strip_detection.h"

#include <itkImageRegionConstIterator.h>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace brainage::preprocessing {

SkullStripEvidence detect_skull_stripped(const ImageType* image, const SkullStripDetectionOptions& options) {
  std::vector<float> values;
  values.reserve(image->GetLargestPossibleRegion().GetNumberOfPixels());
  itk::ImageRegionConstIterator<ImageType> it(image, image->GetLargestPossibleRegion());
  float max_value = 0;
  for (; !it.IsAtEnd(); ++it) {
    values.push_back(it.Get());
    max_value = std::max(max_value, it.Get());
  }
  const auto k = static_cast<std::size_t>(0.99 * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  const double p99 = values[k];
  const double fg_threshold = options.foreground_fraction * p99;
  const double zero_threshold = 1e-6 * max_value;
  std::size_t foreground = 0, zeros = 0;
  for (float v : values) {
    foreground += v > fg_threshold;
    zeros += v <= zero_threshold;
  }
  const double voxel_ml = image->GetSpacing()[0] * image->GetSpacing()[1] * image->GetSpacing()[2] / 1000.0;
  SkullStripEvidence evidence;
  evidence.foreground_ml = static_cast<double>(foreground) * voxel_ml;
  evidence.zero_fraction = static_cast<double>(zeros) / static_cast<double>(values.size());
  evidence.skull_stripped =
      evidence.foreground_ml <= options.max_foreground_ml && evidence.zero_fraction >= options.min_zero_fraction;
  char line[200];
  std::snprintf(line, sizeof line, "foreground %.0f mL (stripped if <= %.0f), exact-zero background %.0f%% (stripped if >= %.0f%%)",
                evidence.foreground_ml, options.max_foreground_ml, 100 * evidence.zero_fraction,
                100 * options.min_zero_fraction);
  evidence.reason = line;
  return evidence;
}

}  // namespace brainage::preprocessing
