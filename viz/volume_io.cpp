#include "viz/volume_io.h"

#include <cmath>
#include <sstream>

#include "common/errors.h"

namespace brainage::viz {

namespace {
std::string size_text(const itk::ImageBase<3>* im) {
  const auto s = im->GetLargestPossibleRegion().GetSize();
  return std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]);
}
}  // namespace

void require_same_grid(const itk::ImageBase<3>* a, const std::string& a_name, const itk::ImageBase<3>* b,
                       const std::string& b_name, double tolerance) {
  if (a->GetLargestPossibleRegion().GetSize() != b->GetLargestPossibleRegion().GetSize())
    throw InvalidInputError(b_name + ": size " + size_text(b) + " differs from " + a_name + " size " + size_text(a));
  for (unsigned i = 0; i < 3; ++i) {
    bool same = std::abs(a->GetSpacing()[i] - b->GetSpacing()[i]) <= tolerance &&
                std::abs(a->GetOrigin()[i] - b->GetOrigin()[i]) <= tolerance;
    for (unsigned j = 0; j < 3; ++j)
      same = same && std::abs(a->GetDirection()(i, j) - b->GetDirection()(i, j)) <= tolerance;
    if (!same) throw InvalidInputError(b_name + ": spacing/origin/direction differ from " + a_name + " (same grid required)");
  }
}

}  // namespace brainage::viz
