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
  // Foreground on the six faces of the voxel box.
  const auto size = image->GetLargestPossibleRegion().GetSize();
  const float* v = image->GetBufferPointer();
  double max_face = 0;
  for (unsigned axis = 0; axis < 3; ++axis)
    for (int side = 0; side < 2; ++side) {
      const std::size_t fixed = side == 0 ? 0 : size[axis] - 1;
      std::size_t on = 0, total = 0;
      for (std::size_t z = 0; z < size[2]; ++z)
        for (std::size_t y = 0; y < size[1]; ++y)
          for (std::size_t x = 0; x < size[0]; ++x) {
            const std::size_t pos[3] = {x, y, z};
            if (pos[axis] != fixed) continue;
            ++total;
            on += v[x + size[0] * (y + size[1] * z)] > fg_threshold;
          }
      if (total > 0) max_face = std::max(max_face, static_cast<double>(on) / static_cast<double>(total));
    }
  const double voxel_ml = image->GetSpacing()[0] * image->GetSpacing()[1] * image->GetSpacing()[2] / 1000.0;
  SkullStripEvidence evidence;
  evidence.foreground_ml = static_cast<double>(foreground) * voxel_ml;
  evidence.zero_fraction = static_cast<double>(zeros) / static_cast<double>(values.size());
  evidence.max_face_foreground_fraction = max_face;
  evidence.skull_stripped = evidence.foreground_ml <= options.max_foreground_ml &&
                            evidence.zero_fraction >= options.min_zero_fraction &&
                            max_face <= options.max_face_foreground_fraction;
  char line[300];
  std::snprintf(line, sizeof line,
                "foreground %.0f mL (stripped if <= %.0f), exact-zero background %.0f%% (stripped if >= %.0f%%), "
                "foreground on the field of view's edge %.1f%% (stripped if <= %.1f%%)",
                evidence.foreground_ml, options.max_foreground_ml, 100 * evidence.zero_fraction,
                100 * options.min_zero_fraction, 100 * max_face, 100 * options.max_face_foreground_fraction);
  evidence.reason = line;
  return evidence;
}

}  // namespace brainage::preprocessing
