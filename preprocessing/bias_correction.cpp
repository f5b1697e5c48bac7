#include "preprocessing/bias_correction.h"

#include <itkBSplineControlPointImageFilter.h>
#include <itkImageRegionConstIterator.h>
#include <itkImageRegionIterator.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkN4BiasFieldCorrectionImageFilter.h>
#include <itkObjectFactoryBase.h>
#include <itkVersion.h>
#include <itkResampleImageFilter.h>

#include <algorithm>
#include <cmath>

#include "common/errors.h"
#include "preprocessing/itk_factories.h"

namespace brainage::preprocessing {

namespace {
/// Work units of the N4 fit and of its B-spline fit, whatever the thread count.
constexpr itk::ThreadIdType kBiasFitWorkUnits = 8;

using N4 = itk::N4BiasFieldCorrectionImageFilter<ImageType, MaskType, ImageType>;

/// N4's scattered-data B-spline fit with a fixed work-unit count. ITK 5.2's N4 creates this
/// filter inside Update() and leaves it at the process's thread count; the fit sums one
/// control-point lattice per work unit, so the bias field (and every later stage: the rigid
/// metric of Colin27 differed in the 7th digit, IXI204's age by 0.14 y between --threads 2
/// and 4) followed the thread count. Constructed through ITK's object factory (below).
class FixedWorkUnitBSplineFit : public N4::BSplineFilterType {
 public:
  using Self = FixedWorkUnitBSplineFit;
  using Pointer = itk::SmartPointer<Self>;
  itkNewMacro(Self);
  itkTypeMacro(FixedWorkUnitBSplineFit, BSplineScatteredDataPointSetToImageFilter);

 protected:
  FixedWorkUnitBSplineFit() { this->SetNumberOfWorkUnits(kBiasFitWorkUnits); }
};

/// ITK object factory that hands N4 the fit above wherever it asks for the plain filter
/// (the override mechanism of itk::ObjectFactoryBase).
class FixedWorkUnitBSplineFitFactory : public itk::ObjectFactoryBase {
 public:
  using Self = FixedWorkUnitBSplineFitFactory;
  using Pointer = itk::SmartPointer<Self>;
  itkFactorylessNewMacro(Self);
  itkTypeMacro(FixedWorkUnitBSplineFitFactory, itk::ObjectFactoryBase);
  const char* GetITKSourceVersion() const override { return ITK_SOURCE_VERSION; }
  const char* GetDescription() const override { return "N4 B-spline fit with a fixed work-unit count (brainage)"; }

 protected:
  FixedWorkUnitBSplineFitFactory() {
    this->RegisterOverride(typeid(N4::BSplineFilterType).name(), typeid(FixedWorkUnitBSplineFit).name(),
                           "N4 B-spline fit, fixed work units", true,
                           itk::CreateObjectFunction<FixedWorkUnitBSplineFit>::New());
  }
};

/// A view of `image` in its voxel frame: the same pixel buffer (shared, not copied), region
/// and spacing, with zero origin and identity direction. Whatever N4 computes on it depends
/// on the voxels and their spacing only, not on where the header puts them.
template <typename TImage>
typename TImage::Pointer voxel_frame_view(const TImage* image) {
  auto view = TImage::New();
  view->SetRegions(image->GetLargestPossibleRegion());
  view->SetSpacing(image->GetSpacing());
  view->SetPixelContainer(const_cast<typename TImage::PixelContainer*>(image->GetPixelContainer()));
  return view;
}

/// The coarse grid N4 fits on, in the voxel frame of `image` (zero origin, identity
/// direction): per axis an odd step f′ (the factor f when odd, else f − 1, but 3 for f = 2) and
/// m = (n − 1) / f′ + 1 samples (one fewer when that leaves an odd remainder), the first
/// (n − 1 − f′·(m − 1)) / 2 voxels in. So every sample sits on a whole voxel and the samples
/// are symmetric about the image centre: a flipped or permuted copy of the voxels gets the
/// same samples, flipped or permuted. (ITK's ShrinkImageFilter keeps every f-th voxel counted
/// from one end, so the canonical re-indexing of a header rotated by 45° or more gave N4 other
/// voxels and moved IXI012 and IXI015 by ~1 y; docs/ROBUSTNESS.md, fourteenth session.)
/// Zero-filled; only its geometry is used.
ImageType::Pointer centred_coarse_grid(const ImageType* image, const itk::FixedArray<unsigned, 3>& factors) {
  const auto size = image->GetLargestPossibleRegion().GetSize();
  ImageType::SizeType coarse_size;
  ImageType::SpacingType spacing;
  ImageType::PointType origin;
  for (unsigned d = 0; d < 3; ++d) {
    const unsigned f = factors[d];
    const unsigned step = f % 2 == 1 ? f : std::max(3u, f - 1);
    coarse_size[d] = (size[d] - 1) / step + 1;
    if (((size[d] - 1) - step * (coarse_size[d] - 1)) % 2 == 1) coarse_size[d] -= 1;
    const auto first = ((size[d] - 1) - step * (coarse_size[d] - 1)) / 2;  // whole voxels
    spacing[d] = step * image->GetSpacing()[d];
    origin[d] = static_cast<double>(first) * image->GetSpacing()[d];  // voxel frame: index i at i × spacing
  }
  auto grid = ImageType::New();
  grid->SetRegions(coarse_size);
  grid->SetSpacing(spacing);
  grid->SetOrigin(origin);
  grid->Allocate(true);
  return grid;
}

/// The voxels of `image` that sit on `grid` (every grid point is a whole voxel of `image`:
/// ITK ResampleImageFilter with a nearest-neighbour interpolator, so nothing is averaged).
template <typename TImage>
typename TImage::Pointer voxels_on_grid(const TImage* image, const ImageType* grid) {
  auto resample = itk::ResampleImageFilter<TImage, TImage>::New();
  resample->SetInput(image);
  resample->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<TImage, double>::New());
  resample->SetOutputParametersFromImage(grid);
  resample->SetDefaultPixelValue(0);
  resample->Update();
  typename TImage::Pointer out = resample->GetOutput();
  out->DisconnectPipeline();
  return out;
}

}  // namespace

void register_bias_fit_factory() { itk::ObjectFactoryBase::RegisterFactory(FixedWorkUnitBSplineFitFactory::New()); }

BiasCorrectionResult correct_bias_field(const ImageType* image, const MaskType* mask,
                                        const BiasCorrectionOptions& options) {
  if (options.iterations.empty()) throw ProcessingError("bias correction: at least one fitting level is required");
  // Mask: given, or every voxel > 0.
  MaskType::Pointer fit_mask = MaskType::New();
  fit_mask->CopyInformation(image);
  fit_mask->SetRegions(image->GetLargestPossibleRegion());
  fit_mask->Allocate();
  std::size_t count = 0;
  {
    itk::ImageRegionConstIterator<ImageType> it(image, image->GetLargestPossibleRegion());
    itk::ImageRegionIterator<MaskType> out(fit_mask, fit_mask->GetLargestPossibleRegion());
    if (mask != nullptr) {
      itk::ImageRegionConstIterator<MaskType> m(mask, mask->GetLargestPossibleRegion());
      for (; !it.IsAtEnd(); ++it, ++m, ++out) {
        const bool on = m.Get() > 0 && it.Get() > 0;  // N4 works on log intensities
        out.Set(on ? 1 : 0);
        count += on;
      }
    } else {
      for (; !it.IsAtEnd(); ++it, ++out) {
        const bool on = it.Get() > 0;
        out.Set(on ? 1 : 0);
        count += on;
      }
    }
  }
  if (count < 64) throw ProcessingError("bias correction: the mask holds " + std::to_string(count) + " positive voxels (need >= 64)");

  // N4 fits on a coarse copy (voxels about shrink_to_mm apart). Frame and sampling are the
  // voxels' own, so a scan gets the same field whatever its header says:
  // - voxel_frame_view: with the header's origin and direction, ITK 5.2's N4 fitted a field
  //   that differed in the last digits for the same voxels under a rotated header;
  // - centred_coarse_grid: whole voxels symmetric about the centre (not ShrinkImageFilter).
  const auto image_view = voxel_frame_view(image);
  const auto mask_view = voxel_frame_view(fit_mask.GetPointer());
  itk::FixedArray<unsigned, 3> factors;
  for (unsigned d = 0; d < 3; ++d) {
    const auto f = static_cast<unsigned>(std::max(1.0, std::round(options.shrink_to_mm / image->GetSpacing()[d])));
    factors[d] = std::min<unsigned>(f, std::max<unsigned>(1, image->GetLargestPossibleRegion().GetSize()[d] / 8));
  }
  const auto coarse_grid = centred_coarse_grid(image_view, factors);
  const auto small_image = voxels_on_grid<ImageType>(image_view, coarse_grid);
  const auto small_mask = voxels_on_grid<MaskType>(mask_view, coarse_grid);

  ensure_itk_factories();  // registers FixedWorkUnitBSplineFitFactory
  auto n4 = N4::New();
  n4->SetInput(small_image);
  n4->SetMaskImage(small_mask);
  n4->SetUseMaskLabel(false);  // any non-zero mask voxel
  N4::VariableSizeArrayType iterations(static_cast<unsigned>(options.iterations.size()));
  for (std::size_t i = 0; i < options.iterations.size(); ++i) iterations[i] = options.iterations[i];
  n4->SetMaximumNumberOfIterations(iterations);
  n4->SetNumberOfFittingLevels(static_cast<unsigned>(options.iterations.size()));
  n4->SetConvergenceThreshold(options.convergence_threshold);
  N4::ArrayType control_points;
  control_points.Fill(std::max(options.control_points, options.spline_order + 1));
  n4->SetNumberOfControlPoints(control_points);
  n4->SetSplineOrder(options.spline_order);
  n4->SetBiasFieldFullWidthAtHalfMaximum(options.bias_field_fwhm);
  // A fixed work-unit count here and in N4's B-spline fit (FixedWorkUnitBSplineFit): the fit
  // sums one lattice per work unit, so the field would otherwise change (in the last digits)
  // with the number of threads.
  n4->SetNumberOfWorkUnits(kBiasFitWorkUnits);
  try {
    n4->Update();
  } catch (const itk::ExceptionObject& e) {
    throw ProcessingError(std::string("bias correction: N4 failed (") + e.GetDescription() + ")");
  }

  // Log field on the shrunk grid from the fitted control-point lattice...
  const ImageType* small = small_image;
  using BSpliner = itk::BSplineControlPointImageFilter<N4::BiasFieldControlPointLatticeType, N4::ScalarImageType>;
  auto bspliner = BSpliner::New();
  bspliner->SetInput(n4->GetLogBiasFieldControlPointLattice());
  bspliner->SetSplineOrder(n4->GetSplineOrder());
  bspliner->SetSize(small->GetLargestPossibleRegion().GetSize());
  bspliner->SetOrigin(small->GetOrigin());
  bspliner->SetSpacing(small->GetSpacing());
  bspliner->SetDirection(small->GetDirection());
  bspliner->Update();
  auto log_field_small = ImageType::New();
  log_field_small->CopyInformation(small);
  log_field_small->SetRegions(small->GetLargestPossibleRegion());
  log_field_small->Allocate();
  {
    itk::ImageRegionConstIterator<BSpliner::OutputImageType> in(bspliner->GetOutput(),
                                                               bspliner->GetOutput()->GetLargestPossibleRegion());
    itk::ImageRegionIterator<ImageType> out(log_field_small, log_field_small->GetLargestPossibleRegion());
    for (; !in.IsAtEnd(); ++in, ++out) out.Set(in.Get()[0]);
  }
  // ...brought to full resolution (the log field is smooth: linear interpolation is exact
  // to well below a percent) and divided out.
  auto upsample = itk::ResampleImageFilter<ImageType, ImageType>::New();
  upsample->SetInput(log_field_small);
  upsample->SetInterpolator(itk::LinearInterpolateImageFunction<ImageType, double>::New());
  upsample->SetUseReferenceImage(true);
  upsample->SetReferenceImage(image_view);
  upsample->SetDefaultPixelValue(0);
  upsample->Update();

  BiasCorrectionResult result;
  result.field = upsample->GetOutput();
  result.field->DisconnectPipeline();
  result.field->CopyInformation(image);  // back to the input's header
  result.corrected = ImageType::New();
  result.corrected->CopyInformation(image);
  result.corrected->SetRegions(image->GetLargestPossibleRegion());
  result.corrected->Allocate();
  {
    // Normalise the field to mean 1 over the mask so corrected intensities keep their scale.
    double sum = 0;
    std::size_t n = 0;
    itk::ImageRegionIterator<ImageType> f(result.field, result.field->GetLargestPossibleRegion());
    itk::ImageRegionConstIterator<MaskType> m(fit_mask, fit_mask->GetLargestPossibleRegion());
    for (; !f.IsAtEnd(); ++f, ++m)
      if (m.Get()) {
        sum += f.Get();
        ++n;
      }
    const double mean_log = n ? sum / static_cast<double>(n) : 0.0;
    itk::ImageRegionConstIterator<ImageType> in(image, image->GetLargestPossibleRegion());
    itk::ImageRegionIterator<ImageType> out(result.corrected, result.corrected->GetLargestPossibleRegion());
    for (f.GoToBegin(); !in.IsAtEnd(); ++in, ++out, ++f) {
      const float field = static_cast<float>(std::exp(f.Get() - mean_log));
      f.Set(field);
      out.Set(in.Get() / field);
    }
  }
  result.levels_run = static_cast<unsigned>(options.iterations.size());
  return result;
}

}  // namespace brainage::preprocessing
