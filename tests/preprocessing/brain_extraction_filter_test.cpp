// Brain extraction on a synthetic head with an exact answer: a bright brain ellipsoid inside
// a dark skull shell and a bright scalp, the template mask a slightly smaller ellipsoid.
#include "preprocessing/brain_extraction_filter.h"

#include <gtest/gtest.h>

#include <itkImageRegionIteratorWithIndex.h>

#include "preprocessing/mask_metrics.h"

using namespace brainage::preprocessing;

namespace {

/// r² of point p in the ellipsoid with semi-axes (a, b, c) mm, centred on the origin.
double radius2(const itk::Point<double, 3>& p, double a, double b, double c) {
  return p[0] * p[0] / (a * a) + p[1] * p[1] / (b * b) + p[2] * p[2] / (c * c);
}

/// A head on an `n`³ grid of 2 mm voxels centred on the origin: brain (semi-axes 60, 70, 50
/// mm, intensity 100), skull shell out to 1.12× (intensity 10), scalp to 1.25× (80), air 0.
/// With `truth`, the brain mask instead.
template <typename TImage>
typename TImage::Pointer make_head(unsigned n, bool truth) {
  auto image = TImage::New();
  typename TImage::SizeType size;
  size.Fill(n);
  image->SetRegions(typename TImage::RegionType(size));
  typename TImage::SpacingType sp;
  sp.Fill(2.0);
  image->SetSpacing(sp);
  typename TImage::PointType origin;
  origin.Fill(-0.5 * (n - 1) * 2.0);
  image->SetOrigin(origin);
  image->Allocate();
  itk::ImageRegionIteratorWithIndex<TImage> it(image, image->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) {
    itk::Point<double, 3> p;
    image->TransformIndexToPhysicalPoint(it.GetIndex(), p);
    const double r = std::sqrt(radius2(p, 60, 70, 50));
    if (truth) it.Set(r <= 1.0 ? 1 : 0);
    else it.Set(r <= 1.0 ? 100 : r <= 1.12 ? 10 : r <= 1.25 ? 80 : 0);
  }
  return image;
}

/// The template mask: the brain ellipsoid shrunk by 4%, on its own 2 mm grid.
MaskType::Pointer make_template_mask() {
  auto mask = make_head<MaskType>(90, true);
  itk::ImageRegionIteratorWithIndex<MaskType> it(mask, mask->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) {
    itk::Point<double, 3> p;
    mask->TransformIndexToPhysicalPoint(it.GetIndex(), p);
    it.Set(radius2(p, 0.96 * 60, 0.96 * 70, 0.96 * 50) <= 1.0 ? 1 : 0);
  }
  return mask;
}

MaskType::Pointer extract(const ImageType* head) {
  auto filter = BrainExtractionImageFilter::New();
  filter->SetInput(head);
  filter->SetTemplateMask(make_template_mask());
  filter->SetTemplateToNativeTransform(AffineTransformType::New());
  filter->SetSearchDilationMM(6.0);  // the prior is 2-3 mm small: the search must reach past that
  filter->Update();
  MaskType::Pointer out = filter->GetOutput();
  out->DisconnectPipeline();
  return out;
}

}  // namespace

TEST(BrainExtraction, FindsTheBrainInsideSkullAndScalp) {
  const auto head = make_head<ImageType>(90, false);
  const auto mask = extract(head);
  EXPECT_EQ(mask->GetLargestPossibleRegion(), head->GetLargestPossibleRegion());
  EXPECT_EQ(mask->GetOrigin(), head->GetOrigin());
  const auto truth = make_head<MaskType>(90, true);
  EXPECT_GT(dice(mask, truth), 0.97);  // the skull shell or the scalp taken in would give < 0.8
  EXPECT_NEAR(mask_volume_ml(mask) / mask_volume_ml(truth), 1.0, 0.03);
}

TEST(BrainExtraction, MaskDoesNotDependOnHowMuchEmptyFieldOfViewSurroundsTheHead) {
  // The filter works in the prior's padded box: a wide field of view (neck, air) must give
  // the same brain voxel for voxel.
  const auto tight = extract(make_head<ImageType>(80, false));
  const auto wide = extract(make_head<ImageType>(120, false));
  std::size_t tight_count = 0, wide_count = 0, differing = 0;
  itk::ImageRegionIteratorWithIndex<MaskType> it(wide, wide->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) {
    wide_count += it.Get();
    auto index = it.GetIndex();
    for (unsigned d = 0; d < 3; ++d) index[d] -= 20;
    const bool inside = tight->GetLargestPossibleRegion().IsInside(index);
    if (inside) tight_count += tight->GetPixel(index);
    differing += (inside ? tight->GetPixel(index) : 0) != it.Get();
  }
  EXPECT_GT(wide_count, 50000u);
  EXPECT_EQ(tight_count, wide_count);
  EXPECT_EQ(differing, 0u);
}
