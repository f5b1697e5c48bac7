#include "preprocessing/contrast_to_noise.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "preprocessing/tissue_classification.h"

namespace brainage::preprocessing {
namespace {

double median(std::vector<double>& v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

double contrast_to_noise_ratio(const ImageType* t1, const MaskType* labels) {
  const auto size = t1->GetLargestPossibleRegion().GetSize();
  const float* v = t1->GetBufferPointer();
  const unsigned char* l = labels->GetBufferPointer();
  const std::size_t stride[3] = {1, size[0], size[0] * size[1]};
  const std::size_t n = size[0] * size[1] * size[2];
  std::vector<double> wm, gm;
  for (std::size_t i = 0; i < n; ++i) {
    if (l[i] == kWM) wm.push_back(v[i]);
    if (l[i] == kGM) gm.push_back(v[i]);
  }
  // Eroded WM: a WM voxel whose six face neighbours are WM (none on the grid's border).
  std::vector<unsigned char> core(n, 0);
  for (std::size_t z = 1; z + 1 < size[2]; ++z)
    for (std::size_t y = 1; y + 1 < size[1]; ++y)
      for (std::size_t x = 1; x + 1 < size[0]; ++x) {
        const std::size_t i = x + y * stride[1] + z * stride[2];
        bool inside = l[i] == kWM;
        for (unsigned a = 0; a < 3 && inside; ++a) inside = l[i - stride[a]] == kWM && l[i + stride[a]] == kWM;
        core[i] = inside;
      }
  std::vector<double> differences;
  for (std::size_t i = 0; i < n; ++i)
    if (core[i])
      for (unsigned a = 0; a < 3; ++a)
        if (i + stride[a] < n && core[i + stride[a]]) differences.push_back(v[i + stride[a]] - v[i]);
  if (differences.size() < 100 || wm.empty() || gm.empty()) return 0;
  const double centre = median(differences);
  for (double& d : differences) d = std::abs(d - centre);
  const double noise = 1.4826 * median(differences) / std::sqrt(2.0);
  if (!(noise > 0)) return 0;
  return (median(wm) - median(gm)) / noise;
}

}  // namespace brainage::preprocessing
