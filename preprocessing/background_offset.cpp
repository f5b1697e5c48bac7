#include "preprocessing/background_offset.h"

#include <algorithm>
#include <vector>

#include "common/errors.h"

namespace brainage::preprocessing {

BackgroundOffsetResult remove_background_offset(const ImageType* image, const BackgroundOffsetOptions& options) {
  const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  if (n == 0) throw ProcessingError("background offset: the image has no voxel");
  const float* in = image->GetBufferPointer();
  std::vector<float> values(in, in + n);
  const double q = std::clamp(options.background_percentile, 0.0, 100.0) / 100.0;
  const auto k = static_cast<std::size_t>(q * static_cast<double>(n - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  BackgroundOffsetResult result;
  result.background_level = values[k];
  result.image = ImageType::New();
  result.image->CopyInformation(image);
  result.image->SetRegions(image->GetLargestPossibleRegion());
  result.image->Allocate();
  float* out = result.image->GetBufferPointer();
  const float level = values[k];
  for (std::size_t i = 0; i < n; ++i) out[i] = std::max(0.0f, in[i] - level);
  return result;
}

}  // namespace brainage::preprocessing
