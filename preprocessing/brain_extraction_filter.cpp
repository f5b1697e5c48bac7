#include "preprocessing/brain_extraction_filter.h"

#include <itkBinaryFillholeImageFilter.h>
#include <itkBinaryThresholdImageFilter.h>
#include <itkCastImageFilter.h>
#include <itkConnectedComponentImageFilter.h>
#include <itkImageRegionConstIterator.h>
#include <itkImageRegionIterator.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkImageRegionConstIteratorWithIndex.h>
#include <itkRegionOfInterestImageFilter.h>
#include <itkRelabelComponentImageFilter.h>
#include <itkResampleImageFilter.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/errors.h"
#include "preprocessing/mask_operations.h"

namespace brainage::preprocessing {
namespace {

MaskType::Pointer largest_component(const MaskType* mask) {
  using LabelImage = itk::Image<unsigned int, 3>;
  auto cc = itk::ConnectedComponentImageFilter<MaskType, LabelImage>::New();
  cc->SetInput(mask);
  cc->FullyConnectedOff();
  auto relabel = itk::RelabelComponentImageFilter<LabelImage, LabelImage>::New();
  relabel->SetInput(cc->GetOutput());
  relabel->Update();
  auto out = new_mask_like(mask);
  itk::ImageRegionConstIterator<LabelImage> l(relabel->GetOutput(), relabel->GetOutput()->GetLargestPossibleRegion());
  itk::ImageRegionIterator<MaskType> m(out, out->GetLargestPossibleRegion());
  for (; !l.IsAtEnd(); ++l, ++m) m.Set(l.Get() == 1 ? 1 : 0);
  return out;
}

MaskType::Pointer fill_holes(const MaskType* mask) {
  auto fill = itk::BinaryFillholeImageFilter<MaskType>::New();
  fill->SetInput(mask);
  fill->SetForegroundValue(1);
  fill->FullyConnectedOff();
  fill->Update();
  MaskType::Pointer out = fill->GetOutput();
  out->DisconnectPipeline();
  return out;
}

/// The intensities of `image` under `mask` at the quantiles `q` (ascending, each in
/// [0, 1]: the element at index min(floor(q · n), n − 1) of the n sorted values; 0 for an
/// empty mask).
std::vector<double> quantiles_where(const ImageType* image, const MaskType* mask, const std::vector<double>& q) {
  std::vector<float> values;
  itk::ImageRegionConstIterator<ImageType> i(image, image->GetLargestPossibleRegion());
  itk::ImageRegionConstIterator<MaskType> m(mask, mask->GetLargestPossibleRegion());
  for (; !i.IsAtEnd(); ++i, ++m)
    if (m.Get()) values.push_back(i.Get());
  std::vector<double> out(q.size(), 0.0);
  if (values.empty()) return out;
  auto from = values.begin();  // ascending q: each selection only searches above the last
  for (std::size_t k = 0; k < q.size(); ++k) {
    const auto index = std::min(static_cast<std::size_t>(q[k] * static_cast<double>(values.size())), values.size() - 1);
    const auto at = values.begin() + static_cast<std::ptrdiff_t>(index);
    std::nth_element(from, at, values.end());
    out[k] = *at;
    from = at;
  }
  return out;
}

double median_where(const ImageType* image, const MaskType* mask) { return quantiles_where(image, mask, {0.5})[0]; }

/// The bounding box of `mask` > 0 grown by `margin_mm` on every side, inside the image.
itk::ImageRegion<3> padded_bounding_box(const MaskType* mask, double margin_mm) {
  const auto whole = mask->GetLargestPossibleRegion();
  itk::Index<3> lo, hi;
  for (unsigned d = 0; d < 3; ++d) {
    lo[d] = whole.GetUpperIndex()[d];
    hi[d] = whole.GetIndex()[d];
  }
  itk::ImageRegionConstIteratorWithIndex<MaskType> it(mask, whole);
  for (; !it.IsAtEnd(); ++it)
    if (it.Get())
      for (unsigned d = 0; d < 3; ++d) {
        lo[d] = std::min(lo[d], it.GetIndex()[d]);
        hi[d] = std::max(hi[d], it.GetIndex()[d]);
      }
  itk::ImageRegion<3> box;
  for (unsigned d = 0; d < 3; ++d) {
    const auto pad = static_cast<itk::IndexValueType>(std::ceil(margin_mm / mask->GetSpacing()[d]));
    const auto first = std::max(whole.GetIndex()[d], lo[d] - pad);
    const auto last = std::min(whole.GetUpperIndex()[d], hi[d] + pad);
    box.SetIndex(d, first);
    box.SetSize(d, static_cast<itk::SizeValueType>(last - first + 1));
  }
  return box;
}

template <typename TImage>
typename TImage::Pointer crop(const TImage* image, const itk::ImageRegion<3>& region) {
  auto roi = itk::RegionOfInterestImageFilter<TImage, TImage>::New();
  roi->SetInput(image);
  roi->SetRegionOfInterest(region);
  roi->Update();
  typename TImage::Pointer out = roi->GetOutput();
  out->DisconnectPipeline();
  return out;
}

}  // namespace

BrainExtractionImageFilter::BrainExtractionImageFilter() { this->SetNumberOfRequiredInputs(1); }

void BrainExtractionImageFilter::SetTemplateMask(const MaskType* mask) {
  m_TemplateMask = mask;
  this->Modified();
}

void BrainExtractionImageFilter::SetTemplateToNativeTransform(const AffineTransformType* transform) {
  m_Transform = transform;
  this->Modified();
}

void BrainExtractionImageFilter::GenerateInputRequestedRegion() {
  Superclass::GenerateInputRequestedRegion();
  if (auto* input = const_cast<ImageType*>(this->GetInput())) input->SetRequestedRegionToLargestPossibleRegion();
}

void BrainExtractionImageFilter::GenerateData() {
  ImageType::ConstPointer input = this->GetInput();
  MaskType* output = this->GetOutput();
  output->SetBufferedRegion(output->GetRequestedRegion());
  output->Allocate();
  output->FillBuffer(0);
  if (m_TemplateMask.IsNull() || m_Transform.IsNull())
    throw ProcessingError("brain extraction: the template mask and the template->native transform are required");

  // 1. Prior: the template mask carried into native space (native points -> template points
  //    through the inverse transform), linear interpolation, > 0.5.
  using FloatMask = itk::Image<float, 3>;
  auto cast = itk::CastImageFilter<MaskType, FloatMask>::New();
  cast->SetInput(m_TemplateMask);
  auto inverse = AffineTransformType::New();
  if (!m_Transform->GetInverse(inverse))
    throw ProcessingError("brain extraction: the template->native transform is not invertible");
  auto resample = itk::ResampleImageFilter<FloatMask, FloatMask>::New();
  resample->SetInput(cast->GetOutput());
  resample->SetTransform(inverse);
  resample->SetInterpolator(itk::LinearInterpolateImageFunction<FloatMask, double>::New());
  resample->SetUseReferenceImage(true);
  resample->SetReferenceImage(input);
  resample->SetDefaultPixelValue(0);
  resample->Update();
  auto prior = mask_above(resample->GetOutput(), 0.5f);
  if (!any_set(prior)) throw ProcessingError("brain extraction: the template brain falls outside the scan's field of view");

  MaskType::Pointer brain;
  auto region = input->GetLargestPossibleRegion();  // where `brain` lies in the output
  if (m_SkullStripped) {
    // Already stripped: the foreground is the brain; only clean it.
    const auto positive = mask_above(input, 0.f);
    m_BrainMedian = median_where(input, positive);
    auto fg = new_mask_like(input);
    {
      const double t = m_ForegroundFraction * m_BrainMedian;
      itk::ImageRegionConstIterator<ImageType> i(input, input->GetLargestPossibleRegion());
      itk::ImageRegionIterator<MaskType> m(fg, fg->GetLargestPossibleRegion());
      for (; !i.IsAtEnd(); ++i, ++m) m.Set(i.Get() > t ? 1 : 0);
    }
    brain = fill_holes(largest_component(fg));
  } else {
    // Steps 2-5 never reach beyond the prior's box + search + closing distance: work on
    // that box (the same result, far fewer voxels than a head with neck in the field).
    const double voxel_mm = input->GetSpacing().GetVnlVector().max_value();
    region = padded_bounding_box(prior, m_SearchDilationMM + 2 * std::max(m_OpeningRadiusMM, m_ClosingRadiusMM) + 2 * voxel_mm);
    input = crop(input.GetPointer(), region);
    prior = crop(prior.GetPointer(), region);
    // 2. Brain-tissue statistics in the eroded prior.
    auto core = erode_mask(prior, m_CoreErosionMM);
    if (!any_set(core)) core = prior;
    const auto search = dilate_mask(prior, m_SearchDilationMM);
    const auto q = quantiles_where(input, core, {0.25, 0.5, 0.75});
    m_BrainMedian = q[1];
    m_BrainContrast = q[0] > 0 && q[2] > q[0] ? std::log(q[2] / q[0]) : 0.0;
    // The bounds' distance from the median, in log intensity, grows with the brain's own
    // contrast: a power-law contrast change (x^g) moves them with the tissues.
    const double exponent = m_ReferenceContrast > 0 && m_BrainContrast > 0 ? m_BrainContrast / m_ReferenceContrast : 1.0;
    const double lo = std::pow(m_LowerThresholdFraction, exponent) * m_BrainMedian;
    const double hi = std::pow(m_UpperThresholdFraction, exponent) * m_BrainMedian;
    // 3. Candidates: plausible brain intensities inside the search region.
    auto candidates = new_mask_like(input);
    {
      itk::ImageRegionConstIterator<ImageType> i(input, input->GetLargestPossibleRegion());
      itk::ImageRegionConstIterator<MaskType> s(search, search->GetLargestPossibleRegion());
      itk::ImageRegionIterator<MaskType> m(candidates, candidates->GetLargestPossibleRegion());
      for (; !i.IsAtEnd(); ++i, ++s, ++m) m.Set(s.Get() && i.Get() >= lo && i.Get() <= hi ? 1 : 0);
    }
    // 4. Opening, largest component, union with the core, closing, hole filling.
    auto opened = dilate_mask(erode_mask(candidates, m_OpeningRadiusMM), m_OpeningRadiusMM);
    auto component = largest_component(opened);
    {
      itk::ImageRegionIterator<MaskType> m(component, component->GetLargestPossibleRegion());
      itk::ImageRegionConstIterator<MaskType> c(core, core->GetLargestPossibleRegion());
      for (; !m.IsAtEnd(); ++m, ++c)
        if (c.Get()) m.Set(1);
    }
    auto closed = erode_mask(dilate_mask(component, m_ClosingRadiusMM), m_ClosingRadiusMM);
    brain = fill_holes(closed);
    // 5. Never outside the search region.
    itk::ImageRegionIterator<MaskType> m(brain, brain->GetLargestPossibleRegion());
    itk::ImageRegionConstIterator<MaskType> s(search, search->GetLargestPossibleRegion());
    for (; !m.IsAtEnd(); ++m, ++s)
      if (!s.Get()) m.Set(0);
  }

  itk::ImageRegionConstIterator<MaskType> b(brain, brain->GetLargestPossibleRegion());
  itk::ImageRegionIterator<MaskType> o(output, region);
  for (; !o.IsAtEnd(); ++o, ++b) o.Set(b.Get() ? 1 : 0);
}

void BrainExtractionImageFilter::PrintSelf(std::ostream& os, itk::Indent indent) const {
  Superclass::PrintSelf(os, indent);
  os << indent << "CoreErosionMM: " << m_CoreErosionMM << "\n"
     << indent << "SearchDilationMM: " << m_SearchDilationMM << "\n"
     << indent << "LowerThresholdFraction: " << m_LowerThresholdFraction << "\n"
     << indent << "UpperThresholdFraction: " << m_UpperThresholdFraction << "\n"
     << indent << "ReferenceContrast: " << m_ReferenceContrast << "\n"
     << indent << "OpeningRadiusMM: " << m_OpeningRadiusMM << "\n"
     << indent << "ClosingRadiusMM: " << m_ClosingRadiusMM << "\n"
     << indent << "SkullStripped: " << m_SkullStripped << "\n"
     << indent << "ForegroundFraction: " << m_ForegroundFraction << "\n";
}

}  // namespace brainage::preprocessing
