#include "preprocessing/scan_plausibility.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "common/errors.h"

namespace brainage::preprocessing {

double neighbour_correlation(const ImageType* image) {
  const auto size = image->GetLargestPossibleRegion().GetSize();
  const float* v = image->GetBufferPointer();
  const std::size_t stride[3] = {1, size[0], size[0] * size[1]};
  // Sums of squares about the minimum, not about 0: an offset of 1e9 (a scl_inter) would
  // otherwise cancel the variance away in double and read as noise.
  const double lo = *std::min_element(v, v + image->GetLargestPossibleRegion().GetNumberOfPixels());
  double total = 0;
  for (unsigned axis = 0; axis < 3; ++axis) {
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    std::size_t n = 0;
    for (std::size_t z = 0; z < size[2]; ++z)
      for (std::size_t y = 0; y < size[1]; ++y)
        for (std::size_t x = 0; x < size[0]; ++x) {
          const std::size_t pos[3] = {x, y, z};
          if (pos[axis] + 1 >= size[axis]) continue;
          const std::size_t i = x + y * stride[1] + z * stride[2];
          const double a = v[i] - lo, b = v[i + stride[axis]] - lo;
          sa += a;
          sb += b;
          saa += a * a;
          sbb += b * b;
          sab += a * b;
          ++n;
        }
    if (n == 0) continue;
    const double dn = static_cast<double>(n);
    const double cov = sab / dn - (sa / dn) * (sb / dn);
    const double va = saa / dn - (sa / dn) * (sa / dn), vb = sbb / dn - (sb / dn) * (sb / dn);
    total += (va > 0 && vb > 0) ? cov / std::sqrt(va * vb) : 0.0;
  }
  return total / 3.0;
}

void check_scan_plausible(const ImageType* image, const std::filesystem::path& path, const PlausibilityOptions& options) {
  const float* v = image->GetBufferPointer();
  const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  float lo = v[0], hi = v[0];
  for (std::size_t i = 1; i < n; ++i) {
    lo = std::min(lo, v[i]);
    hi = std::max(hi, v[i]);
  }
  char msg[256];
  if (hi == lo) {
    std::snprintf(msg, sizeof msg, ": image is constant (every voxel = %g); a T1-weighted head scan is required",
                  static_cast<double>(lo));
    throw InvalidInputError(path.string() + msg);
  }
  // Grey levels: stop counting as soon as there are enough (at once on any real scan).
  std::vector<float> levels;
  for (std::size_t i = 0; i < n && levels.size() < options.min_grey_levels; ++i)
    if (std::find(levels.begin(), levels.end(), v[i]) == levels.end()) levels.push_back(v[i]);
  if (levels.size() < options.min_grey_levels) {
    std::snprintf(msg, sizeof msg,
                  ": image has only %zu distinct intensities (at least %zu needed): its intensity resolution is lost "
                  "(e.g. a scl_inter far beyond the data's range) or it is a label map; a T1-weighted head scan is required",
                  levels.size(), options.min_grey_levels);
    throw InvalidInputError(path.string() + msg);
  }
  // Absurd outliers, judged against a robust reference before the correlation (which one
  // such voxel dominates). A reference of 0 (almost all voxels 0) leaves this rule out.
  std::vector<float> magnitude(n);
  for (std::size_t i = 0; i < n; ++i) magnitude[i] = std::abs(v[i]);
  const auto k = static_cast<std::size_t>(0.999 * static_cast<double>(n - 1));
  std::nth_element(magnitude.begin(), magnitude.begin() + static_cast<std::ptrdiff_t>(k), magnitude.end());
  const double reference = magnitude[k];
  const double limit = options.max_outlier_ratio * reference;
  if (reference > 0 && std::isfinite(limit)) {
    std::size_t outliers = 0;
    double peak = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const double a = std::abs(static_cast<double>(v[i]));
      peak = std::max(peak, a);
      if (a > limit) ++outliers;
    }
    if (outliers > 0) {
      std::snprintf(msg, sizeof msg,
                    ": intensity range is implausible: %zu voxel(s) exceed %g x the 99.9th percentile of |intensity| "
                    "(max %g, percentile %g); corrupt voxels: fix or clip them",
                    outliers, options.max_outlier_ratio, peak, reference);
      throw InvalidInputError(path.string() + msg);
    }
  }
  const double r = neighbour_correlation(image);
  if (!(r >= options.min_neighbour_correlation)) {
    std::snprintf(msg, sizeof msg,
                  ": image looks like noise (neighbouring-voxel correlation %.2f < %.2f); a T1-weighted head scan is required",
                  r, options.min_neighbour_correlation);
    throw InvalidInputError(path.string() + msg);
  }
}

}  // namespace brainage::preprocessing
