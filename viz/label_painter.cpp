#include "viz/label_painter.h"

#include <itkImageRegionConstIteratorWithIndex.h>

#include "common/errors.h"

namespace brainage::viz {

namespace {
void check_grid(const RoutingSummary& r, const LabelImageType* mask) {
  const auto size = mask->GetLargestPossibleRegion().GetSize();
  for (unsigned a = 0; a < 3; ++a)
    if (size[a] != static_cast<itk::SizeValueType>(r.token_grid[a]) * r.patch_size)
      throw InvalidInputError("brain_mask_mni2mm.nii.gz: size " + std::to_string(size[0]) + "x" +
                              std::to_string(size[1]) + "x" + std::to_string(size[2]) + " is not token grid " +
                              std::to_string(r.token_grid[0]) + "x" + std::to_string(r.token_grid[1]) + "x" +
                              std::to_string(r.token_grid[2]) + " times patch " + std::to_string(r.patch_size));
}

std::size_t token_of(const RoutingSummary& r, const itk::Index<3>& idx) {
  const int p = r.patch_size;
  return r.token_index(static_cast<int>(idx[0]) / p, static_cast<int>(idx[1]) / p, static_cast<int>(idx[2]) / p);
}
}  // namespace

PaintedLayer paint_layer(const RoutingSummary& r, const RoutingLayer& layer, const LabelImageType* mask) {
  check_grid(r, mask);
  PaintedLayer out;
  out.labels = LabelImageType::New();
  out.labels->CopyInformation(mask);
  out.labels->SetRegions(mask->GetLargestPossibleRegion());
  out.labels->Allocate(true);
  out.scores = ImageType::New();
  out.scores->CopyInformation(mask);
  out.scores->SetRegions(mask->GetLargestPossibleRegion());
  out.scores->Allocate(true);
  for (itk::ImageRegionConstIteratorWithIndex<LabelImageType> it(mask, mask->GetLargestPossibleRegion()); !it.IsAtEnd();
       ++it) {
    if (it.Get() == 0) continue;
    const std::size_t t = token_of(r, it.GetIndex());
    out.labels->SetPixel(it.GetIndex(), static_cast<unsigned char>(layer.expert[t] + 1));
    out.scores->SetPixel(it.GetIndex(), layer.score[t]);
  }
  return out;
}

std::vector<std::size_t> brain_tokens_per_expert(const RoutingSummary& r, const RoutingLayer& layer,
                                                 const LabelImageType* mask) {
  check_grid(r, mask);
  std::vector<char> in_brain(r.num_tokens(), 0);
  for (itk::ImageRegionConstIteratorWithIndex<LabelImageType> it(mask, mask->GetLargestPossibleRegion()); !it.IsAtEnd();
       ++it)
    if (it.Get() != 0) in_brain[token_of(r, it.GetIndex())] = 1;
  std::vector<std::size_t> counts(static_cast<std::size_t>(r.num_experts), 0);
  for (std::size_t t = 0; t < in_brain.size(); ++t)
    if (in_brain[t]) ++counts[static_cast<std::size_t>(layer.expert[t])];
  return counts;
}

}  // namespace brainage::viz
