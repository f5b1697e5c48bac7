#include "preprocessing/template_registration.h"

#include <itkBinShrinkImageFilter.h>
#include <itkImageMaskSpatialObject.h>
#include <itkImageRegionConstIteratorWithIndex.h>
#include <itkImageRegistrationMethodv4.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkMattesMutualInformationImageToImageMetricv4.h>
#include <itkRegistrationParameterScalesFromPhysicalShift.h>
#include <itkRegionOfInterestImageFilter.h>
#include <itkRegularStepGradientDescentOptimizerv4.h>
#include <itkResampleImageFilter.h>
#include <itkRecursiveGaussianImageFilter.h>
#include <itkVersor.h>
#include <itkVersorRigid3DTransform.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "preprocessing/canonical_orientation.h"
#include "preprocessing/mask_operations.h"

namespace brainage::preprocessing {
namespace {

using RigidTransformType = itk::VersorRigid3DTransform<double>;
using Optimizer = itk::RegularStepGradientDescentOptimizerv4<double>;

/// ITK's Mattes mutual information (Mattes et al. 2003) evaluated in one work unit, so that
/// a registration gives the same transform on every run and at every thread count.
/// ITK 5.2 adds each work unit's joint-PDF derivatives for a global transform into one
/// buffer under a lock, in whatever order the work units finish. Its public
/// SetMaximumNumberOfWorkUnits(1) only caps the threads of the metric's domain threaders:
/// their work-unit count stays the global thread count, and the pool still runs those
/// units concurrently (measured: `brainage preprocess IXI015 --threads 2` gave three
/// different brain volumes in three runs). The threaders' own work-unit count is
/// protected; this subclass sets it.
class SingleWorkUnitMattesMetric : public itk::MattesMutualInformationImageToImageMetricv4<ImageType, ImageType> {
 public:
  ITK_DISALLOW_COPY_AND_ASSIGN(SingleWorkUnitMattesMetric);
  using Self = SingleWorkUnitMattesMetric;
  using Superclass = itk::MattesMutualInformationImageToImageMetricv4<ImageType, ImageType>;
  using Pointer = itk::SmartPointer<Self>;
  itkNewMacro(Self);
  itkTypeMacro(SingleWorkUnitMattesMetric, MattesMutualInformationImageToImageMetricv4);

  void Initialize() override {
    Superclass::Initialize();
    this->SetMaximumNumberOfWorkUnits(1);
    this->m_DenseGetValueAndDerivativeThreader->SetNumberOfWorkUnits(1);
    this->m_SparseGetValueAndDerivativeThreader->SetNumberOfWorkUnits(1);
  }

 protected:
  SingleWorkUnitMattesMetric() = default;
  ~SingleWorkUnitMattesMetric() override = default;
};
using Metric = SingleWorkUnitMattesMetric;

/// The 99th percentile of all voxels of `image` (the element at index floor(0.99 · (n − 1))).
double percentile_99(const ImageType* image) {
  const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  std::vector<float> values(image->GetBufferPointer(), image->GetBufferPointer() + n);
  const std::size_t k = static_cast<std::size_t>(0.99 * static_cast<double>(n - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return values[k];
}

/// The physical height (LPS z, mm; +z superior) of the most superior head voxel (above
/// `threshold`); −1e30 when there is none.
double head_top_mm(const ImageType* image, double threshold) {
  itk::ImageRegionConstIteratorWithIndex<ImageType> it(image, image->GetLargestPossibleRegion());
  double top = -1e30;
  ImageType::PointType p;
  for (; !it.IsAtEnd(); ++it)
    if (it.Get() > threshold) {
      image->TransformIndexToPhysicalPoint(it.GetIndex(), p);
      top = std::max(top, p[2]);
    }
  return top;
}

/// Centroid of the head: voxels above 10% of the 99th percentile, restricted to the
/// `depth_mm` below the most superior such voxel (so a neck in the field of view does not
/// drag the centroid down).
ImageType::PointType head_centroid(const ImageType* image, double depth_mm) {
  const double threshold = 0.1 * percentile_99(image);
  itk::ImageRegionConstIteratorWithIndex<ImageType> it(image, image->GetLargestPossibleRegion());
  const double top = head_top_mm(image, threshold);
  ImageType::PointType p;
  double sum[3] = {0, 0, 0};
  double weight = 0;
  for (it.GoToBegin(); !it.IsAtEnd(); ++it)
    if (it.Get() > threshold) {
      image->TransformIndexToPhysicalPoint(it.GetIndex(), p);
      if (p[2] < top - depth_mm) continue;
      for (unsigned d = 0; d < 3; ++d) sum[d] += p[d];
      weight += 1;
    }
  ImageType::PointType c;
  if (weight == 0) {
    // no foreground: the geometric centre
    itk::ContinuousIndex<double, 3> mid;
    for (unsigned d = 0; d < 3; ++d) mid[d] = 0.5 * (image->GetLargestPossibleRegion().GetSize()[d] - 1);
    image->TransformContinuousIndexToPhysicalPoint(mid, c);
    return c;
  }
  for (unsigned d = 0; d < 3; ++d) c[d] = sum[d] / weight;
  return c;
}

/// Sets each pyramid level's iteration budget and counts the iterations run.
template <typename TRegistration>
class LevelObserver : public itk::Command {
 public:
  using Self = LevelObserver;
  using Pointer = itk::SmartPointer<Self>;
  itkNewMacro(Self);
  TRegistration* reg{nullptr};
  Optimizer* opt{nullptr};
  std::vector<unsigned> iterations;
  unsigned total{0};
  void Execute(itk::Object* caller, const itk::EventObject& event) override {
    Execute(static_cast<const itk::Object*>(caller), event);
  }
  void Execute(const itk::Object*, const itk::EventObject& event) override {
    if (!itk::MultiResolutionIterationEvent().CheckEvent(&event)) return;
    const auto level = reg->GetCurrentLevel();
    if (level > 0) total += static_cast<unsigned>(opt->GetCurrentIteration());
    if (level < iterations.size()) opt->SetNumberOfIterations(iterations[level]);
  }
};

template <typename TTransform>
struct StageOutcome {
  double metric{0};
  unsigned iterations{0};
  std::string stop;
};

template <typename TTransform>
StageOutcome<TTransform> run_stage(const ImageType* fixed, const ImageType* moving, TTransform* transform,
                                   const RegistrationStageOptions& stage, const RegistrationOptions& options,
                                   const MaskType* fixed_mask) {
  using Registration = itk::ImageRegistrationMethodv4<ImageType, ImageType, TTransform>;
  auto metric = Metric::New();
  metric->SetNumberOfHistogramBins(options.histogram_bins);
  metric->SetUseMovingImageGradientFilter(false);
  metric->SetUseFixedImageGradientFilter(false);
  if (fixed_mask != nullptr) {
    auto spatial = itk::ImageMaskSpatialObject<3>::New();
    spatial->SetImage(fixed_mask);
    spatial->Update();
    metric->SetFixedImageMask(spatial);
  }
  // The metric runs as one work unit (SingleWorkUnitMattesMetric sets it on every
  // Initialize), so its sums do not depend on thread timing; everything else stays threaded.

  auto scales = itk::RegistrationParameterScalesFromPhysicalShift<Metric>::New();
  scales->SetMetric(metric);

  auto optimizer = Optimizer::New();
  optimizer->SetLearningRate(stage.learning_rate);
  optimizer->SetMinimumStepLength(stage.minimum_step);
  optimizer->SetRelaxationFactor(0.6);
  optimizer->SetGradientMagnitudeTolerance(1e-6);
  optimizer->SetScalesEstimator(scales);
  optimizer->SetDoEstimateLearningRateOnce(false);
  optimizer->SetDoEstimateLearningRateAtEachIteration(false);
  optimizer->SetNumberOfIterations(stage.iterations.empty() ? 100 : stage.iterations.front());
  optimizer->SetReturnBestParametersAndValue(true);
  // The optimiser hands its work-unit count on to the metric when it starts: one (above).
  optimizer->SetNumberOfWorkUnits(1);

  auto registration = Registration::New();
  registration->SetFixedImage(fixed);
  registration->SetMovingImage(moving);
  registration->SetMetric(metric);
  registration->SetOptimizer(optimizer);
  registration->SetInitialTransform(transform);
  registration->InPlaceOn();
  const auto levels = static_cast<unsigned>(stage.shrink_factors.size());
  registration->SetNumberOfLevels(levels);
  typename Registration::ShrinkFactorsArrayType shrink(levels);
  typename Registration::SmoothingSigmasArrayType sigmas(levels);
  for (unsigned l = 0; l < levels; ++l) {
    shrink[l] = stage.shrink_factors[l];
    sigmas[l] = l < stage.smoothing_sigmas_mm.size() ? stage.smoothing_sigmas_mm[l] : 0.0;
  }
  registration->SetShrinkFactorsPerLevel(shrink);
  registration->SetSmoothingSigmasPerLevel(sigmas);
  registration->SetSmoothingSigmasAreSpecifiedInPhysicalUnits(true);
  registration->SetMetricSamplingStrategy(Registration::MetricSamplingStrategyEnum::RANDOM);
  // Per level: enough random samples for a stable MI (max_samples), never more than all voxels.
  typename Registration::MetricSamplingPercentageArrayType percentages(levels);
  for (unsigned l = 0; l < levels; ++l) {
    double voxels = 1;
    for (unsigned d = 0; d < 3; ++d)
      voxels *= std::max(1.0, std::floor(fixed->GetLargestPossibleRegion().GetSize()[d] / double(shrink[l])));
    percentages[l] = std::clamp(options.max_samples / voxels, 0.001, 1.0);
  }
  registration->SetMetricSamplingPercentagePerLevel(percentages);
  registration->MetricSamplingReinitializeSeed(options.seed);
  if (options.threads > 0)
    registration->SetNumberOfWorkUnits(static_cast<itk::ThreadIdType>(options.threads));

  // Per-level iteration counts.
  auto observer = LevelObserver<Registration>::New();
  observer->reg = registration;
  observer->opt = optimizer;
  observer->iterations = stage.iterations;
  registration->AddObserver(itk::MultiResolutionIterationEvent(), observer);

  try {
    registration->Update();
  } catch (const itk::ExceptionObject& e) {
    std::string what = e.GetDescription();
    const auto nl = what.find('\n');
    if (nl != std::string::npos) what = what.substr(0, nl);
    throw ProcessingError("registration to the template failed (" + what + ")");
  }
  StageOutcome<TTransform> outcome;
  outcome.metric = optimizer->GetValue();
  outcome.iterations = observer->total + optimizer->GetCurrentIteration();
  outcome.stop = optimizer->GetStopConditionDescription();
  transform->SetParameters(registration->GetModifiableTransform()->GetParameters());
  return outcome;
}

/// Both images and the fixed mask on the working grid (inputs already there are used as they are).
struct WorkingImages {
  ImageType::ConstPointer fixed, moving;
  MaskType::ConstPointer mask;  // null without a fixed mask
};

bool same_grid(const itk::ImageBase<3>* a, const itk::ImageBase<3>* b) {
  return a->GetLargestPossibleRegion() == b->GetLargestPossibleRegion() && a->GetSpacing() == b->GetSpacing() &&
         a->GetOrigin() == b->GetOrigin() && a->GetDirection() == b->GetDirection();
}

/// `image` with each voxel above `floor_fraction` of the 99th percentile replaced by the
/// mid-rank of its value among those voxels, scaled to (0, 1] (equal values share a rank,
/// so an integer-valued scan maps the same way); the other voxels 0. A monotone increasing
/// change of the intensities gives the same result, up to the floor's position.
ImageType::ConstPointer intensity_ranks(const ImageType* image, double floor_fraction) {
  const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  const float* in = image->GetBufferPointer();
  const float floor = static_cast<float>(floor_fraction * percentile_99(image));
  // The head voxels (value, index), sorted by value: one sort, then each run of equal
  // values gets its mid-rank.
  std::vector<std::pair<float, std::size_t>> head;
  head.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    if (in[i] > floor) head.emplace_back(in[i], i);
  std::sort(head.begin(), head.end());
  auto ranks = ImageType::New();
  ranks->CopyInformation(image);
  ranks->SetRegions(image->GetLargestPossibleRegion());
  ranks->Allocate();
  ranks->FillBuffer(0.0f);
  float* out = ranks->GetBufferPointer();
  const double count = static_cast<double>(head.size());
  for (std::size_t lo = 0; lo < head.size();) {
    std::size_t hi = lo + 1;
    while (hi < head.size() && head[hi].first == head[lo].first) ++hi;
    const float rank = static_cast<float>((0.5 * static_cast<double>(lo + hi) + 0.5) / count);
    for (std::size_t r = lo; r < hi; ++r) out[head[r].second] = rank;
    lo = hi;
  }
  return ranks;
}

WorkingImages working_images(const ImageType* fixed, const ImageType* moving, const RegistrationOptions& options,
                             const MaskType* fixed_mask) {
  WorkingImages w;
  w.fixed = to_working_grid(fixed, options.working_spacing_mm);
  w.moving = to_working_grid(moving, options.working_spacing_mm);
  if (options.rank_intensities) {
    w.fixed = intensity_ranks(w.fixed, options.rank_floor_fraction);
    w.moving = intensity_ranks(w.moving, options.rank_floor_fraction);
  }
  if (fixed_mask != nullptr && same_grid(fixed_mask, w.fixed)) {
    w.mask = fixed_mask;
  } else if (fixed_mask != nullptr) {
    auto resample = itk::ResampleImageFilter<MaskType, MaskType>::New();
    resample->SetInput(fixed_mask);
    resample->SetUseReferenceImage(true);
    resample->SetReferenceImage(w.fixed);
    resample->Update();
    w.mask = resample->GetOutput();
  }
  return w;
}

}  // namespace

bool is_on_working_grid(const itk::ImageBase<3>* image, double spacing) {
  for (unsigned d = 0; d < 3; ++d)
    if (std::abs(image->GetSpacing()[d] - spacing) > 1e-6 * spacing) return false;
  return true;
}

ImageType::ConstPointer to_working_grid(const ImageType* image, double spacing) {
  if (is_on_working_grid(image, spacing)) return image;
  // Whole-number ratios on every axis (a 1 mm scan, the 1 mm template): the mean of each
  // block of voxels is the working voxel, centred where the resampling below puts it.
  itk::FixedArray<unsigned, 3> factors;
  bool whole = true;
  for (unsigned d = 0; d < 3; ++d) {
    const double ratio = spacing / image->GetSpacing()[d];
    factors[d] = static_cast<unsigned>(std::lround(ratio));
    whole &= factors[d] >= 1 && std::abs(ratio - factors[d]) < 1e-3;
  }
  if (whole) {
    auto shrink = itk::BinShrinkImageFilter<ImageType, ImageType>::New();
    shrink->SetInput(image);
    shrink->SetShrinkFactors(factors);
    shrink->Update();
    ImageType::Pointer out = shrink->GetOutput();
    out->DisconnectPipeline();
    return out.GetPointer();
  }
  ImageType::ConstPointer source = image;
  ImageType::Pointer smoothed;
  bool needs_smoothing = false;
  for (unsigned d = 0; d < 3; ++d) needs_smoothing |= image->GetSpacing()[d] < 0.75 * spacing;
  if (needs_smoothing) {
    // Anti-aliasing Gaussian along each axis finer than the working grid only: an axis
    // already as coarse (thick slices, 1x1x3 mm) gets none (a zero sigma is not allowed
    // by ITK's recursive Gaussian).
    for (unsigned d = 0; d < 3; ++d) {
      const double s2 = spacing * spacing - image->GetSpacing()[d] * image->GetSpacing()[d];
      if (!(s2 > 0)) continue;
      auto smooth = itk::RecursiveGaussianImageFilter<ImageType, ImageType>::New();
      smooth->SetInput(source);
      smooth->SetDirection(d);
      smooth->SetOrder(itk::GaussianOrderEnum::ZeroOrder);
      smooth->SetNormalizeAcrossScale(false);
      smooth->SetSigma(0.5 * std::sqrt(s2));
      smooth->Update();
      smoothed = smooth->GetOutput();
      smoothed->DisconnectPipeline();
      source = smoothed;
    }
  }
  const auto in_size = image->GetLargestPossibleRegion().GetSize();
  ImageType::SizeType size;
  ImageType::SpacingType out_spacing;
  ImageType::PointType origin;
  itk::ContinuousIndex<double, 3> start;
  for (unsigned d = 0; d < 3; ++d) {
    const double extent = in_size[d] * image->GetSpacing()[d];
    size[d] = std::max<itk::SizeValueType>(1, static_cast<itk::SizeValueType>(std::floor(extent / spacing)));
    out_spacing[d] = spacing;
    // first output voxel centre: half a new voxel inside the old image's outer edge
    start[d] = -0.5 + 0.5 * spacing / image->GetSpacing()[d];
  }
  image->TransformContinuousIndexToPhysicalPoint(start, origin);
  auto resample = itk::ResampleImageFilter<ImageType, ImageType>::New();
  resample->SetInput(source);
  resample->SetSize(size);
  resample->SetOutputSpacing(out_spacing);
  resample->SetOutputOrigin(origin);
  resample->SetOutputDirection(image->GetDirection());
  resample->SetDefaultPixelValue(0);
  resample->Update();
  ImageType::Pointer out = resample->GetOutput();
  out->DisconnectPipeline();
  return out.GetPointer();
}

RegistrationResult refine_affine(const ImageType* fixed, const ImageType* moving, const AffineTransformType* initial,
                                 const RegistrationOptions& options, const MaskType* fixed_mask,
                                 const MaskType* moving_cut, double cut_dilation_mm) {
  auto work = working_images(fixed, moving, options, fixed_mask);
  if (moving_cut != nullptr)
    work.moving = mask_image(work.moving, dilate_mask(resample_mask_to_grid(moving_cut, work.moving), cut_dilation_mm)).GetPointer();
  auto affine = AffineTransformType::New();
  affine->SetFixedParameters(initial->GetFixedParameters());
  affine->SetParameters(initial->GetParameters());
  const auto outcome = run_stage(work.fixed.GetPointer(), work.moving.GetPointer(), affine.GetPointer(), options.affine,
                                 options, work.mask.GetPointer());
  RegistrationResult result;
  result.mni_to_native = affine;
  result.final_metric = outcome.metric;
  result.affine_iterations = outcome.iterations;
  result.stop_condition = outcome.stop;
  return result;
}

RegistrationResult register_to_template(const ImageType* fixed, const ImageType* moving,
                                        const RegistrationOptions& options, const MaskType* fixed_mask) {
  const auto work = working_images(fixed, moving, options, fixed_mask);
  const auto& fixed_work = work.fixed;
  const auto& moving_work = work.moving;
  const auto& mask_work = work.mask;

  // Rigid, initialised by the head centroids (translation: principal axes of a head with or
  // without neck are not reliable rotations) and the best of the given start rotations.
  ImageType::PointType fixed_center, moving_center;
  if (options.moments_initialisation) {
    fixed_center = head_centroid(fixed_work, options.head_centroid_depth_mm);
    moving_center = head_centroid(moving_work, options.head_centroid_depth_mm);
  } else {
    for (const auto& [img, c] : {std::pair{fixed_work.GetPointer(), &fixed_center}, std::pair{moving_work.GetPointer(), &moving_center}}) {
      itk::ContinuousIndex<double, 3> mid;
      for (unsigned d = 0; d < 3; ++d) mid[d] = 0.5 * (img->GetLargestPossibleRegion().GetSize()[d] - 1);
      img->TransformContinuousIndexToPhysicalPoint(mid, *c);
    }
  }
  RigidTransformType::OutputVectorType translation;
  for (unsigned d = 0; d < 3; ++d) translation[d] = moving_center[d] - fixed_center[d];
  // Every start maps the fixed head centroid onto the moving one; they differ in rotation.
  auto rigid_from = [&](const RigidStart& pose) {
    const auto& degrees = pose.rotation_deg;
    constexpr double kRadians = 3.14159265358979323846 / 180.0;
    itk::Versor<double> about_x, about_y, about_z;
    about_x.SetRotationAroundX(degrees[0] * kRadians);
    about_y.SetRotationAroundY(degrees[1] * kRadians);
    about_z.SetRotationAroundZ(degrees[2] * kRadians);
    auto t = RigidTransformType::New();
    t->SetCenter(fixed_center);
    t->SetRotation(about_z * about_y * about_x);
    auto shifted = translation;
    for (unsigned d = 0; d < 3; ++d) shifted[d] += pose.shift_mm[d];
    t->SetTranslation(shifted);
    return t;
  };
  if (options.rigid_starts.empty()) throw ProcessingError("registration: no rigid start pose given");
  // The first start (the header's own pose) is kept unless another scores better by
  // start_margin: a normal scan keeps the registration it had with one start, and near-ties
  // are not decided by last-digit differences (e.g. N4's across thread counts).
  RigidStart start = options.rigid_starts.front();
  if (options.rigid_starts.size() > 1) {
    double first = 0, best = std::numeric_limits<double>::infinity();
    RigidStart best_pose = start;
    for (std::size_t i = 0; i < options.rigid_starts.size(); ++i) {
      const auto& pose = options.rigid_starts[i];
      auto candidate = rigid_from(pose);
      const auto outcome = run_stage(fixed_work.GetPointer(), moving_work.GetPointer(), candidate.GetPointer(),
                                     options.start_search, options, mask_work.GetPointer());
      if (i == 0) first = outcome.metric;
      if (outcome.metric < best) {
        best = outcome.metric;
        best_pose = pose;
      }
    }
    if (best < first - options.start_margin) start = best_pose;
  }
  auto rigid = rigid_from(start);

  const auto rigid_outcome = run_stage(fixed_work.GetPointer(), moving_work.GetPointer(), rigid.GetPointer(),
                                       options.rigid, options, mask_work.GetPointer());

  auto affine = AffineTransformType::New();
  affine->SetCenter(rigid->GetCenter());
  affine->SetMatrix(rigid->GetMatrix());
  affine->SetTranslation(rigid->GetTranslation());
  const auto affine_outcome = run_stage(fixed_work.GetPointer(), moving_work.GetPointer(), affine.GetPointer(),
                                        options.affine, options, mask_work.GetPointer());

  RegistrationResult result;
  result.mni_to_native = affine;
  result.rigid_metric = rigid_outcome.metric;
  result.start = start;
  result.final_metric = affine_outcome.metric;
  result.rigid_iterations = rigid_outcome.iterations;
  result.affine_iterations = affine_outcome.iterations;
  result.stop_condition = affine_outcome.stop;
  return result;
}

std::vector<RigidStart> default_rigid_starts() {
  std::vector<RigidStart> starts{RigidStart{}};
  for (int axis = 0; axis < 3; ++axis)
    for (double angle : {-20.0, 20.0}) {
      RigidStart start;
      start.rotation_deg[axis] = angle;
      starts.push_back(start);
    }
  return starts;
}

ImageType::ConstPointer cut_below_head_top(const ImageType* image, double height_mm) {
  const double top = head_top_mm(image, 0.1 * percentile_99(image));
  if (top < -1e29) return image;
  const auto& direction = image->GetDirection();
  unsigned axis = 0;
  for (unsigned d = 1; d < 3; ++d)
    if (std::abs(direction[2][d]) > std::abs(direction[2][axis])) axis = d;
  const auto region = image->GetLargestPossibleRegion();
  long first = -1, last = -1;  // the planes kept, along `axis`
  for (long k = 0; k < static_cast<long>(region.GetSize()[axis]); ++k) {
    itk::ContinuousIndex<double, 3> centre;
    for (unsigned d = 0; d < 3; ++d) centre[d] = 0.5 * (region.GetSize()[d] - 1);
    centre[axis] = k;
    ImageType::PointType p;
    image->TransformContinuousIndexToPhysicalPoint(centre, p);
    if (p[2] < top - height_mm) continue;
    if (first < 0) first = k;
    last = k;
  }
  if (first < 0 || (first == 0 && last == static_cast<long>(region.GetSize()[axis]) - 1)) return image;
  ImageType::RegionType kept = region;
  kept.SetIndex(axis, region.GetIndex()[axis] + first);
  kept.SetSize(axis, static_cast<itk::SizeValueType>(last - first + 1));
  auto extract = itk::RegionOfInterestImageFilter<ImageType, ImageType>::New();
  extract->SetInput(image);
  extract->SetRegionOfInterest(kept);
  extract->Update();
  return extract->GetOutput();
}

std::vector<RigidStart> retry_rigid_starts() {
  std::vector<RigidStart> starts{RigidStart{}};
  for (double pitch : {-40.0, -30.0, -20.0, -10.0, 10.0, 20.0, 30.0, 40.0}) starts.push_back({{pitch, 0, 0}, {0, 0, 0}});
  for (double angle : {-90.0, -45.0, -12.0, 12.0, 45.0, 90.0}) {
    starts.push_back({{0, angle, 0}, {0, 0, 0}});
    starts.push_back({{0, 0, angle}, {0, 0, 0}});
  }
  for (double shift : {-30.0, -15.0, 15.0, 30.0}) starts.push_back({{0, 0, 0}, {0, 0, shift}});
  for (double shift : {-15.0, 15.0}) starts.push_back({{0, 0, 0}, {0, shift, 0}});
  // Pitch too (appended, so the starts above keep their order): a header that swaps the
  // A-P and S-I axes; IXI146 pitched 90 deg diverged from every start above (brain 2372 mL).
  for (double angle : {-90.0, -45.0, 45.0, 90.0}) starts.push_back({{angle, 0, 0}, {0, 0, 0}});
  return starts;
}

double mean_displacement_mm(const AffineTransformType* a, const AffineTransformType* b, const MaskType* mask) {
  double sum = 0;
  std::size_t n = 0;
  itk::ImageRegionConstIteratorWithIndex<MaskType> it(mask, mask->GetLargestPossibleRegion());
  MaskType::PointType p;
  for (; !it.IsAtEnd(); ++it) {
    if (!it.Get()) continue;
    mask->TransformIndexToPhysicalPoint(it.GetIndex(), p);
    sum += (a->TransformPoint(p) - b->TransformPoint(p)).GetNorm();
    ++n;
  }
  if (n == 0) throw ProcessingError("mean_displacement_mm: the mask is empty");
  return sum / static_cast<double>(n);
}

AffineTransformType::Pointer scaled_about(const AffineTransformType* mni_to_native, const itk::Point<double, 3>& centre,
                                          double scale) {
  auto scaling = AffineTransformType::New();
  scaling->SetCenter(centre);
  scaling->Scale(scale);
  auto out = AffineTransformType::New();
  out->SetFixedParameters(mni_to_native->GetFixedParameters());
  out->SetParameters(mni_to_native->GetParameters());
  out->Compose(scaling, true);  // the scaling first, then the pose
  return out;
}

}  // namespace brainage::preprocessing
