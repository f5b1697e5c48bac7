#include "preprocessing/brain_coverage.h"

#include <itkImageRegionConstIteratorWithIndex.h>

#include <array>
#include <cmath>

namespace brainage::preprocessing {

BrainCoverage brain_coverage(const MaskType* template_brain, const AffineTransformType* mni_to_native,
                             const itk::ImageBase<3>* scan) {
  const auto size = scan->GetLargestPossibleRegion().GetSize();
  const auto start = scan->GetLargestPossibleRegion().GetIndex();
  std::size_t inside = 0, outside = 0;
  std::array<double, 3> sum_all{0, 0, 0}, sum_out{0, 0, 0};  // template (LPS) coordinates
  itk::ImageRegionConstIteratorWithIndex<MaskType> it(template_brain, template_brain->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) {
    if (!it.Get()) continue;
    MaskType::PointType mni;
    template_brain->TransformIndexToPhysicalPoint(it.GetIndex(), mni);
    const auto native = mni_to_native->TransformPoint(mni);
    itk::ContinuousIndex<double, 3> index;
    scan->TransformPhysicalPointToContinuousIndex(native, index);
    bool in = true;
    for (unsigned d = 0; d < 3; ++d) {
      const double lo = static_cast<double>(start[d]) - 0.5;
      const double hi = static_cast<double>(start[d]) + static_cast<double>(size[d]) - 0.5;
      in &= index[d] >= lo && index[d] <= hi;
    }
    for (unsigned d = 0; d < 3; ++d) sum_all[d] += mni[d];
    if (in) {
      ++inside;
    } else {
      ++outside;
      for (unsigned d = 0; d < 3; ++d) sum_out[d] += mni[d];
    }
  }
  BrainCoverage coverage;
  const std::size_t total = inside + outside;
  if (total == 0) return coverage;
  const auto spacing = template_brain->GetSpacing();
  coverage.outside_fraction = static_cast<double>(outside) / static_cast<double>(total);
  coverage.outside_ml = static_cast<double>(outside) * spacing[0] * spacing[1] * spacing[2] / 1000.0;
  if (outside > 0) {
    // The side: the largest offset of the missing part's centroid from the brain's, in
    // LPS template coordinates (+x left, +y posterior, +z superior).
    static const char* kNames[3][2] = {{"right", "left"}, {"anterior", "posterior"}, {"inferior", "superior"}};
    unsigned axis = 0;
    double best = 0;
    std::array<double, 3> offset{};
    for (unsigned d = 0; d < 3; ++d) {
      offset[d] = sum_out[d] / static_cast<double>(outside) - sum_all[d] / static_cast<double>(total);
      if (std::abs(offset[d]) > best) {
        best = std::abs(offset[d]);
        axis = d;
      }
    }
    coverage.side = kNames[axis][offset[axis] > 0 ? 1 : 0];
  }
  return coverage;
}

}  // namespace brainage::preprocessing
