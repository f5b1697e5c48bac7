#include "preprocessing/mask_metrics.h"

#include <itkImageRegionConstIterator.h>
#include <itkImageRegionConstIteratorWithIndex.h>

#include <sstream>

#include "common/errors.h"

namespace brainage::preprocessing {

double dice(const MaskType* a, const MaskType* b) {
  const auto sa = a->GetLargestPossibleRegion().GetSize();
  const auto sb = b->GetLargestPossibleRegion().GetSize();
  if (sa != sb) {
    std::ostringstream msg;
    msg << "dice: mask size " << sa[0] << "x" << sa[1] << "x" << sa[2] << " differs from " << sb[0] << "x" << sb[1]
        << "x" << sb[2];
    throw ProcessingError(msg.str());
  }
  std::size_t na = 0, nb = 0, both = 0;
  itk::ImageRegionConstIterator<MaskType> ia(a, a->GetLargestPossibleRegion());
  itk::ImageRegionConstIterator<MaskType> ib(b, b->GetLargestPossibleRegion());
  for (; !ia.IsAtEnd(); ++ia, ++ib) {
    const bool x = ia.Get() > 0, y = ib.Get() > 0;
    na += x;
    nb += y;
    both += x && y;
  }
  if (na + nb == 0) return 1.0;
  return 2.0 * static_cast<double>(both) / static_cast<double>(na + nb);
}

double mask_volume_ml(const MaskType* mask) {
  std::size_t n = 0;
  itk::ImageRegionConstIterator<MaskType> m(mask, mask->GetLargestPossibleRegion());
  for (; !m.IsAtEnd(); ++m) n += m.Get() > 0;
  const auto& s = mask->GetSpacing();
  return static_cast<double>(n) * s[0] * s[1] * s[2] / 1000.0;
}

itk::Point<double, 3> mask_centroid(const MaskType* mask) {
  double sum[3] = {0, 0, 0};
  double n = 0;
  itk::ImageRegionConstIteratorWithIndex<MaskType> it(mask, mask->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) {
    if (!it.Get()) continue;
    MaskType::PointType p;
    mask->TransformIndexToPhysicalPoint(it.GetIndex(), p);
    for (int d = 0; d < 3; ++d) sum[d] += p[d];
    n += 1;
  }
  if (n == 0) throw ProcessingError("mask_centroid: the mask is empty");
  itk::Point<double, 3> centre;
  for (int d = 0; d < 3; ++d) centre[d] = sum[d] / n;
  return centre;
}

}  // namespace brainage::preprocessing
