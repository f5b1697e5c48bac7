#include "preprocessing/preprocess_pipeline.h"

#include <itkCastImageFilter.h>
#include <itkImageRegionConstIterator.h>
#include <itkImageRegionIterator.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>
#include <vnl/algo/vnl_svd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

#include "common/build_info.h"
#include "common/errors.h"
#include "preprocessing/canonical_orientation.h"
#include "preprocessing/contrast_to_noise.h"
#include "preprocessing/itk_version.h"
#include "preprocessing/mask_metrics.h"
#include "preprocessing/mask_operations.h"
#include "preprocessing/model_grid_resampling.h"
#include "preprocessing/native_header.h"
#include "preprocessing/nifti_xform.h"
#include "preprocessing/scan_reader.h"

namespace brainage::preprocessing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

/// The templates on the registration's working grid, made once per process and spacing:
/// every registration of every scan compares against these.
struct WorkingTemplate {
  ImageType::ConstPointer head, brain;          // ch2, ch2bet (to_working_grid)
  MaskType::Pointer mask;                       // ch2bet > 0 on the same grid
  std::map<double, MaskType::Pointer> dilated;  // that mask dilated by N mm (registration metric masks)
};

struct Template {
  ImageType::Pointer head;   // ch2
  ImageType::Pointer brain;  // ch2bet
  MaskType::Pointer mask;    // ch2bet > 0
  std::map<double, WorkingTemplate> working;  // by working spacing (mm)
  std::mutex mutex;                           // guards `working` (cohort workers share the template)
};

/// Start poses as [[pitch, roll, yaw (deg), shift L-R, A-P, S-I (mm)], ...].
nlohmann::json rigid_starts_json(const std::vector<RigidStart>& starts) {
  auto out = nlohmann::json::array();
  for (const auto& s : starts)
    out.push_back({s.rotation_deg[0], s.rotation_deg[1], s.rotation_deg[2], s.shift_mm[0], s.shift_mm[1], s.shift_mm[2]});
  return out;
}

nlohmann::json stage_json(const RegistrationStageOptions& stage) {
  return {{"shrink", stage.shrink_factors}, {"sigmas_mm", stage.smoothing_sigmas_mm}, {"iterations", stage.iterations},
          {"learning_rate", stage.learning_rate}, {"minimum_step", stage.minimum_step}};
}

nlohmann::json pass_json(const RefinementPassOptions& pass) {
  return {{"when", to_string(pass.when)},
          {"moving", pass.cut_dilation_mm < 0 ? "whole scan vs ch2"
                                               : "scan cut by its brain mask + " + std::to_string(pass.cut_dilation_mm) + " mm vs ch2bet"},
          {"metric_mask_dilation_mm", pass.metric_dilation_mm},
          {"max_displacement_mm", pass.max_displacement_mm},
          {"optimisation", stage_json(pass.stage)}};
}

/// What a registration against the template needs, on the working grid of `spacing_mm`:
/// the head (ch2) or the brain (ch2bet), and the metric mask (ch2bet > 0 dilated by
/// `mask_dilation_mm`; none when < 0). Made on first use and kept.
struct FixedSide {
  const ImageType* image;
  const MaskType* mask;
};
FixedSide working_template(Template& t, double spacing_mm, bool brain, double mask_dilation_mm) {
  std::lock_guard<std::mutex> lock(t.mutex);
  auto& w = t.working[spacing_mm];
  auto& image = brain ? w.brain : w.head;
  if (!image) image = to_working_grid(brain ? t.brain : t.head, spacing_mm);
  if (mask_dilation_mm < 0) return {image, nullptr};
  if (!w.mask) w.mask = resample_mask_to_grid(t.mask, image);
  auto& dilated = w.dilated[mask_dilation_mm];
  if (!dilated) dilated = dilate_mask(w.mask, mask_dilation_mm);
  return {image, dilated};
}

/// The templates are read once per process (a cohort run reuses them).
Template& load_template(const fs::path& dir) {
  static std::mutex mutex;
  static std::map<fs::path, Template> cache;  // node-based: references stay valid
  std::lock_guard<std::mutex> lock(mutex);
  auto found = cache.find(dir);
  if (found != cache.end()) return found->second;
  for (const char* name : {"ch2.nii.gz", "ch2bet.nii.gz"})
    if (!fs::exists(dir / name))
      throw InvalidInputError((dir / name).string() +
                              ": template missing (install the Debian package mricron-data or pass the template folder)");
  auto head = read_image(dir / "ch2.nii.gz");
  auto brain = read_image(dir / "ch2bet.nii.gz");
  auto mask = mask_above(brain, 0.f);
  Template& t = cache[dir];  // only once both files have been read
  t.head = head;
  t.brain = brain;
  t.mask = mask;
  return t;
}

/// Voxels above 10% of the 99th percentile: the head (or brain) for N4.
MaskType::Pointer foreground_mask(const ImageType* image) {
  std::vector<float> values(image->GetBufferPointer(),
                            image->GetBufferPointer() + image->GetLargestPossibleRegion().GetNumberOfPixels());
  const auto k = static_cast<std::size_t>(0.99 * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return mask_above(image, 0.1f * values[k]);
}

MaskType::Pointer mask_to_model_grid(const MaskType* mask, const AffineTransformType* mni_to_native) {
  auto cast = itk::CastImageFilter<MaskType, ImageType>::New();
  cast->SetInput(mask);
  cast->Update();
  const auto soft = resample_to_model_grid(cast->GetOutput(), mni_to_native);
  auto out = make_model_grid_mask();
  itk::ImageRegionConstIterator<ImageType> s(soft, soft->GetLargestPossibleRegion());
  itk::ImageRegionIterator<MaskType> m(out, out->GetLargestPossibleRegion());
  for (; !s.IsAtEnd(); ++s, ++m) m.Set(s.Get() >= 0.5f ? 1 : 0);
  return out;
}

nlohmann::json geometry_json(const itk::ImageBase<3>* image) {
  nlohmann::json j;
  const auto size = image->GetLargestPossibleRegion().GetSize();
  j["size"] = {size[0], size[1], size[2]};
  j["spacing_mm"] = {image->GetSpacing()[0], image->GetSpacing()[1], image->GetSpacing()[2]};
  j["origin_lps_mm"] = {image->GetOrigin()[0], image->GetOrigin()[1], image->GetOrigin()[2]};
  return j;
}

}  // namespace

PassWhen pass_when_from_string(const std::string& name) {
  if (name == "off") return PassWhen::kOff;
  if (name == "on-failure") return PassWhen::kOnFailure;
  if (name == "always") return PassWhen::kAlways;
  throw InvalidInputError("a refinement pass runs off, on-failure or always, not '" + name + "'");
}

std::string to_string(PassWhen when) {
  switch (when) {
    case PassWhen::kOff: return "off";
    case PassWhen::kOnFailure: return "on-failure";
    case PassWhen::kAlways: return "always";
  }
  return "?";
}

nlohmann::json preprocess_parameters_json(const PreprocessOptions& options) {
  RegistrationOptions reg_options = options.registration;
  if (reg_options.threads == 0) reg_options.threads = options.threads;
  return {
      {"template_dir", options.template_dir.string()},
      {"skull_stripped_input",
       {{"assume", options.assume_skull_stripped}, {"detect", options.detect_skull_stripped},
        {"foreground_fraction", options.skull_strip_detection.foreground_fraction},
        {"max_foreground_ml", options.skull_strip_detection.max_foreground_ml},
        {"min_zero_fraction", options.skull_strip_detection.min_zero_fraction},
        {"max_face_foreground_fraction", options.skull_strip_detection.max_face_foreground_fraction}}},
      {"plausibility",
       {{"min_neighbour_correlation", options.plausibility.min_neighbour_correlation},
        {"max_outlier_ratio", options.plausibility.max_outlier_ratio},
        {"max_voxel_size_mm", options.max_voxel_size_mm},
        {"max_voxel_volume_mm3", options.max_voxel_volume_mm3}}},
      {"background_offset", {{"background_percentile", options.background.background_percentile}}},
      {"input_checks",
       {{"max_brain_outside_fov", options.max_brain_outside_fov},
        {"check_t1_contrast", options.check_t1_contrast},
        {"min_wm_gm_ratio", options.contrast.min_wm_gm_ratio},
        {"csf_level_quantile", options.contrast.csf_level_quantile}}},
      {"bias_correction",
       {{"skipped", options.skip_bias_correction}, {"shrink_to_mm", options.bias.shrink_to_mm},
        {"iterations", options.bias.iterations}, {"convergence_threshold", options.bias.convergence_threshold},
        {"control_points", options.bias.control_points}, {"spline_order", options.bias.spline_order},
        {"bias_field_fwhm", options.bias.bias_field_fwhm}}},
      {"brain_bias_correction",
       {{"applied", options.brain_bias_correction}, {"shrink_to_mm", options.brain_bias.shrink_to_mm},
        {"iterations", options.brain_bias.iterations}, {"convergence_threshold", options.brain_bias.convergence_threshold},
        {"control_points", options.brain_bias.control_points}, {"spline_order", options.brain_bias.spline_order},
        {"bias_field_fwhm", options.brain_bias.bias_field_fwhm}}},
      {"registration",
       {{"working_spacing_mm", reg_options.working_spacing_mm},
        {"rigid", stage_json(reg_options.rigid)},
        {"affine", stage_json(reg_options.affine)},
        {"metric", "Mattes MI"}, {"histogram_bins", reg_options.histogram_bins},
        {"rank_intensities", reg_options.rank_intensities},
        {"rank_floor_fraction", reg_options.rank_floor_fraction},
        {"moments_initialisation", reg_options.moments_initialisation},
        {"start_search", stage_json(reg_options.start_search)},
        {"rigid_starts", rigid_starts_json(reg_options.rigid_starts)},
        {"start_margin", reg_options.start_margin},
        {"registration_mask_dilation_mm", options.registration_mask_dilation_mm},
        {"max_samples", reg_options.max_samples}, {"seed", reg_options.seed},
        {"head_centroid_depth_mm", reg_options.head_centroid_depth_mm},
        {"metric_mask", "ch2bet > 0 dilated by " + std::to_string(options.registration_mask_dilation_mm) + " mm"},
        {"focused_pass", pass_json(options.focused_pass)},
        {"rescue_fields_of_view_mm", options.rescue_fields_of_view_mm},
        {"rescue_template_scales", options.rescue_template_scales},
        {"brain_pass", pass_json(options.brain_pass)}}},
      {"brain_extraction",
       {{"core_erosion_mm", options.brain.core_erosion_mm}, {"search_dilation_voxels", options.brain.search_dilation_voxels},
        {"lower_threshold_fraction", options.brain.lower_threshold_fraction},
        {"upper_threshold_fraction", options.brain.upper_threshold_fraction},
        {"reference_contrast", options.brain.reference_contrast},
        {"opening_radius_mm", options.brain.opening_radius_mm}, {"closing_radius_mm", options.brain.closing_radius_mm}}},
      {"normalization",
       {{"method", "divide by the brain's reference percentile, clip"},
        {"reference_percentile", options.normalization.reference_percentile},
        {"clip_max", options.normalization.clip_max}}},
      {"tissue", {{"method", "1-D K-means of brain intensities, 3 classes (CSF, GM, WM), median-smoothed labels"},
                  {"seed_quantiles", options.tissue.seed_quantiles},
                  {"smoothing_radius", options.tissue.smoothing_radius}}},
      {"tissue_probability",
       {{"method", options.tissue_probability.model == TissueModel::kLinearUnmixing
                       ? "linear partial-volume unmixing of the bias-corrected brain intensities between the K-means "
                         "CSF/GM/WM means; model grid by linear interpolation; modulated = P x |det affine| x voxel mL"
                       : "EM Gaussian mixture of the bias-corrected brain intensities (K-means start), CSF/GM/WM + mixed "
                         "classes; model grid by linear interpolation; modulated = P x |det affine| x voxel mL"},
        {"model", tissue_model_name(options.tissue_probability.model)},
        {"fit_floor_fraction", options.tissue_probability.fit_floor_fraction},
        {"histogram_bins", options.tissue_probability.histogram_bins},
        {"max_iterations", options.tissue_probability.max_iterations},
        {"tolerance", options.tissue_probability.tolerance},
        {"partial_volume", options.tissue_probability.partial_volume},
        {"mixing_fractions", options.tissue_probability.mixing_fractions},
        {"regional_volumes", options.regional_volumes}}},
      {"qc", {{"min_brain_volume_ml", options.min_brain_volume_ml}, {"max_brain_volume_ml", options.max_brain_volume_ml},
              {"min_contrast_to_noise", options.min_contrast_to_noise},
              {"max_final_metric", options.max_final_metric}, {"max_focused_metric", options.max_focused_metric}, {"max_affine_scale", options.max_affine_scale}}}};
}

namespace {

/// Wall-clock seconds of each step, in order.
class StepTimer {
 public:
  explicit StepTimer(std::vector<std::pair<std::string, double>>& out) : out_(out), start_(Clock::now()), last_(start_) {}
  void lap(const char* step) { out_.emplace_back(step, since(last_)); }
  void total() { out_.emplace_back("total", since(start_)); }

 private:
  double since(Clock::time_point& t) {
    const auto now = Clock::now();
    const double s = std::round(std::chrono::duration<double>(now - t).count() * 1000.0) / 1000.0;
    last_ = now;
    return s;
  }
  std::vector<std::pair<std::string, double>>& out_;
  Clock::time_point start_, last_;
};

/// Step 1: the scan as loaded (validated), refused when it cannot be a usable head scan,
/// in canonical orientation with its background level moved to 0.
ImageType::Pointer load_input(const fs::path& scan, const PreprocessOptions& options, PreprocessResult& result) {
  auto loaded = load_scan(scan);
  check_scan_plausible(loaded.image, scan, options.plausibility);
  const auto spacing = loaded.image->GetSpacing();
  if (const auto why = voxel_size_refusal({spacing[0], spacing[1], spacing[2]}, options); !why.empty())
    throw InvalidInputError(scan.string() + ": " + why);
  result.native_image = loaded.image;
  result.format = loaded.format;
  result.datatype = loaded.datatype;
  result.warnings = loaded.warnings;
  result.orientation_known = loaded.orientation_known;
  auto offset = remove_background_offset(to_canonical_orientation(loaded.image), options.background);
  result.background_level = offset.background_level;
  return offset.image;
}

/// Step 2: is the input already skull-stripped?
SkullStripEvidence skull_strip_evidence(const ImageType* canonical, const PreprocessOptions& options) {
  SkullStripEvidence evidence;
  if (options.assume_skull_stripped) {
    evidence.skull_stripped = true;
    evidence.reason = "declared by the user (--skull-stripped)";
  } else if (options.detect_skull_stripped) {
    evidence = detect_skull_stripped(canonical, options.skull_strip_detection);
  } else {
    evidence.reason = "detection off";
  }
  return evidence;
}

/// Step 3: N4 over the head (or brain) foreground.
ImageType::Pointer correct_bias(const ImageType::Pointer& canonical, const PreprocessOptions& options) {
  if (options.skip_bias_correction) return canonical;
  return correct_bias_field(canonical, foreground_mask(canonical), options.bias).corrected;
}

/// Brain extraction (BrainExtractionImageFilter) of `image` through a template->native
/// transform; the search distance is in the scan's voxels whatever grid `image` is on. A
/// stripped input goes through the same extraction as a skull-on one (its zeros are never
/// brain), so both copies of a scan get the same rules and the same mask.
struct BrainExtractor {
  const Template& tmpl;
  const PreprocessOptions& options;
  double search_mm;

  BrainExtractionImageFilter::Pointer run(const ImageType* image, const AffineTransformType* mni_to_native) const {
    auto extract = BrainExtractionImageFilter::New();
    extract->SetInput(image);
    extract->SetTemplateMask(tmpl.mask);
    extract->SetTemplateToNativeTransform(mni_to_native);
    extract->SetCoreErosionMM(options.brain.core_erosion_mm);
    extract->SetSearchDilationMM(search_mm);
    extract->SetLowerThresholdFraction(options.brain.lower_threshold_fraction);
    extract->SetUpperThresholdFraction(options.brain.upper_threshold_fraction);
    extract->SetReferenceContrast(options.brain.reference_contrast);
    extract->SetOpeningRadiusMM(options.brain.opening_radius_mm);
    extract->SetClosingRadiusMM(options.brain.closing_radius_mm);
    extract->Update();
    return extract;
  }
  MaskType::Pointer mask(const ImageType* image, const AffineTransformType* mni_to_native) const {
    MaskType::Pointer out = run(image, mni_to_native)->GetOutput();
    out->DisconnectPipeline();
    return out;
  }
};

/// Step 4: registration to Colin27 (ch2; ch2bet for stripped inputs) and its refinement
/// passes. Returns the decisions; `mni_to_native` is the transform kept.
RegistrationSummary register_scan(Template& tmpl, ImageType::Pointer& corrected, bool stripped,
                                  const BrainExtractor& extractor, const PreprocessOptions& options,
                                  AffineTransformType::Pointer& mni_to_native) {
  RegistrationOptions reg_options = options.registration;
  if (reg_options.threads == 0) reg_options.threads = options.threads;
  const double spacing = reg_options.working_spacing_mm;
  const auto fixed = working_template(tmpl, spacing, stripped, options.registration_mask_dilation_mm);
  ImageType::ConstPointer moving = to_working_grid(corrected, spacing);
  RegistrationSummary summary;
  summary.first = register_to_template(fixed.image, moving, reg_options, fixed.mask);
  // A metric above the divergence bound: retry with a search over start poses (head pitch,
  // roll, yaw; centroid shifts), then the same from a shallower head centroid, and keep the
  // best; QC still flags it if none converges. Scans that register at once pay nothing.
  for (int attempt = 0; attempt < 2 && !(summary.first.final_metric <= options.max_final_metric); ++attempt) {
    RegistrationOptions retry = reg_options;
    retry.rigid_starts = retry_rigid_starts();
    if (attempt == 1) retry.head_centroid_depth_mm = 0.6 * reg_options.head_centroid_depth_mm;
    auto candidate = register_to_template(fixed.image, moving, retry, fixed.mask);
    ++summary.attempts;
    if (candidate.final_metric < summary.first.final_metric) summary.first = candidate;
  }
  mni_to_native = summary.first.mni_to_native;
  summary.first_failed = !(summary.first.final_metric <= options.max_final_metric);

  // Refinement passes from the current transform: the focused pass (whole scan, metric on
  // the brain + 3 mm) rescues a first registration that failed its bound; the brain pass
  // (the scan cut by its brain mask against ch2bet) tightens the brain's scale. Either is
  // discarded if it moves the brain implausibly far. The brain pass's cut is extracted on
  // the working grid (the scan itself at 2 mm).
  auto refine = [&](const RefinementPassOptions& pass) {
    PassOutcome outcome;
    if (pass.when == PassWhen::kOff || (pass.when == PassWhen::kOnFailure && !summary.first_failed)) return outcome;
    if (stripped && pass.cut_dilation_mm < 0) return outcome;  // whole-head passes need a head
    outcome.ran = true;
    const bool cut = pass.cut_dilation_mm >= 0;
    MaskType::Pointer cut_mask;
    if (cut) cut_mask = extractor.mask(moving, mni_to_native);
    const auto target = working_template(tmpl, spacing, cut, pass.metric_dilation_mm);
    RegistrationOptions pass_options = reg_options;
    pass_options.affine = pass.stage;
    const auto refined = refine_affine(target.image, moving, mni_to_native, pass_options, target.mask,
                                       cut_mask.GetPointer(), pass.cut_dilation_mm);
    outcome.metric = refined.final_metric;
    outcome.iterations = refined.affine_iterations;
    outcome.mean_displacement_mm = mean_displacement_mm(mni_to_native, refined.mni_to_native, tmpl.mask);
    if (outcome.mean_displacement_mm <= pass.max_displacement_mm) {
      mni_to_native = refined.mni_to_native;
      outcome.applied = true;
    }
    return outcome;
  };
  summary.focused = refine(options.focused_pass);
  auto focused_ok = [&] { return summary.focused.applied && summary.focused.metric <= options.max_focused_metric; };
  // Still failing: the focused metric as a fresh registration from every retry start pose
  // (a first registration far off leaves the focused pass in the wrong basin). Kept when
  // it scores better than the focused pass.
  if (summary.first_failed && !focused_ok() && options.focused_pass.when != PassWhen::kOff && !stripped) {
    RegistrationOptions restart = reg_options;
    restart.rigid_starts = retry_rigid_starts();
    const auto target = working_template(tmpl, spacing, false, options.focused_pass.metric_dilation_mm);
    const auto fresh = register_to_template(target.image, moving, restart, target.mask);
    summary.focused.restarted = true;
    summary.focused.restart_metric = fresh.final_metric;
    summary.focused.restart_applied = !summary.focused.applied || fresh.final_metric < summary.focused.metric;
    if (summary.focused.restart_applied) {
      mni_to_native = fresh.mni_to_native;
      summary.focused.applied = true;
      summary.focused.metric = fresh.final_metric;
    }
  }
  // Still failing: a long neck and shoulders can hold the whole-scan metric in a wrong
  // optimum from every pose (IXI508: MI -0.07 to -0.16). Register the scan cut below the
  // head (robustfov) and run the focused pass on the cut scan too (the whole scan's
  // neck and shoulders still held it in the wrong optimum; IXI508).
  if (summary.first_failed && !focused_ok() && options.focused_pass.when != PassWhen::kOff && !stripped) {
    const auto target = working_template(tmpl, spacing, false, options.focused_pass.metric_dilation_mm);
    for (const double height_mm : options.rescue_fields_of_view_mm) {
      const auto cut = cut_below_head_top(moving, height_mm);
      RegistrationOptions cut_options = reg_options;
      cut_options.rigid_starts = retry_rigid_starts();
      const auto start = register_to_template(fixed.image, cut, cut_options, fixed.mask);
      RegistrationOptions pass_options = reg_options;
      pass_options.affine = options.focused_pass.stage;
      const auto refined = refine_affine(target.image, cut, start.mni_to_native, pass_options, target.mask);
      summary.focused.rescues.push_back({height_mm, start.final_metric, refined.final_metric});
      if (!summary.focused.applied || refined.final_metric < summary.focused.metric) {
        mni_to_native = refined.mni_to_native;
        summary.focused.applied = true;
        summary.focused.metric = refined.final_metric;
        summary.focused.rescue_applied_mm = height_mm;
      }
      if (focused_ok()) break;
    }
  }
  // Still failing: a small brain in a large head with a thick scalp (IXI508): the head's
  // fit leaves the template brain 8-10 % too large per axis, and every pass above stays in
  // that basin. Restart the focused pass from the template scaled down about its brain
  // centre; the candidates are compared on one footing (the whole scan against ch2 on the
  // template brain + 3 mm, the focused pass's own metric).
  if (summary.first_failed && !focused_ok() && options.focused_pass.when != PassWhen::kOff && !stripped &&
      !options.rescue_template_scales.empty()) {
    const auto target = working_template(tmpl, spacing, false, options.focused_pass.metric_dilation_mm);
    RegistrationOptions pass_options = reg_options;
    pass_options.affine = options.focused_pass.stage;
    const auto centre = mask_centroid(tmpl.mask);
    const AffineTransformType::ConstPointer base = mni_to_native.GetPointer();  // every start scales the same pose
    for (const double scale : options.rescue_template_scales) {  // all tried, the best kept
      const auto start = scaled_about(base, centre, scale);
      const auto refined = refine_affine(target.image, moving, start, pass_options, target.mask);
      summary.focused.scale_rescues.push_back({scale, refined.final_metric});
      if (!summary.focused.applied || refined.final_metric < summary.focused.metric) {
        mni_to_native = refined.mni_to_native;
        summary.focused.applied = true;
        summary.focused.metric = refined.final_metric;
        summary.focused.rescue_scale_applied = scale;
      }
    }
  }
  summary.rescued = focused_ok();
  // Brain-only N4 before the brain pass: the head-wide fit leaves smooth shading of 5-20 %
  // across the brain (and a different one for a skull-on scan and its stripped copy); a
  // fit inside the first brain mask removes it, so the brain pass, the mask and the model
  // input all see the same brain whatever the shading (as ANTs' brain extraction runs N4
  // again with the brain mask).
  if (options.brain_bias_correction) {
    const auto brain = resample_mask_to_grid(extractor.mask(moving, mni_to_native), corrected);
    corrected = correct_bias_field(corrected, brain, options.brain_bias).corrected;
    moving = to_working_grid(corrected, spacing);
  }
  summary.brain = refine(options.brain_pass);
  vnl_svd<double> svd(mni_to_native->GetMatrix().GetVnlMatrix().as_ref());
  for (unsigned i = 0; i < 3; ++i) summary.affine_scales[i] = svd.W(i);
  return summary;
}

/// Step 9: the QC verdict's flags (each one line).
std::vector<std::string> qc_flags(const PreprocessResult& r, const PreprocessOptions& options) {
  std::vector<std::string> flags;
  char line[240];
  if (r.brain_volume_ml < options.min_brain_volume_ml || r.brain_volume_ml > options.max_brain_volume_ml) {
    std::snprintf(line, sizeof line, "brain volume %.0f mL outside the plausible adult range %.0f-%.0f mL",
                  r.brain_volume_ml, options.min_brain_volume_ml, options.max_brain_volume_ml);
    flags.emplace_back(line);
  }
  const auto& reg = r.registration;
  if (reg.first_failed && !reg.rescued) {
    if (reg.focused.applied)
      std::snprintf(line, sizeof line, "registration diverged: final Mattes MI %.3f > %.3f, focused pass %.3f > %.3f",
                    reg.first.final_metric, options.max_final_metric, reg.focused.metric, options.max_focused_metric);
    else
      std::snprintf(line, sizeof line, "registration diverged: final Mattes MI %.3f > %.3f", reg.first.final_metric,
                    options.max_final_metric);
    flags.emplace_back(line);
    if (!r.orientation_known)  // the likeliest cause, named on the same line
      flags.back() += "; the header gives no orientation (qform_code = sform_code = 0), the likely cause";
  }
  for (double s : reg.affine_scales)
    if (!(s <= options.max_affine_scale && s >= 1.0 / options.max_affine_scale)) {
      std::snprintf(line, sizeof line, "registration diverged: affine scale %.2f outside [%.2f, %.2f]", s,
                    1.0 / options.max_affine_scale, options.max_affine_scale);
      flags.emplace_back(line);
      break;
    }
  if (r.contrast_to_noise < options.min_contrast_to_noise) {
    std::snprintf(line, sizeof line,
                  "contrast-to-noise ratio %.1f below %.1f (white vs grey matter over the noise; the training scans: "
                  "9.7-17.2): too noisy for a trustworthy age",
                  r.contrast_to_noise, options.min_contrast_to_noise);
    flags.emplace_back(line);
  }
  if (r.coverage.outside_fraction > options.max_brain_outside_fov) {
    std::snprintf(line, sizeof line,
                  "brain coverage: %.1f%% of the template brain (%.0f mL, %s) lies outside the field of view (limit %.1f%%)",
                  100 * r.coverage.outside_fraction, r.coverage.outside_ml, r.coverage.side.c_str(),
                  100 * options.max_brain_outside_fov);
    flags.emplace_back(line);
  }
  // A contrast that fails the T1 rule after a failed registration: the regions did not
  // line up, so this is a QC flag rather than a refusal.
  if (!r.contrast.t1_weighted && !flags.empty()) flags.push_back("T1 contrast check unreliable: " + r.contrast.rule);
  return flags;
}

nlohmann::json pass_outcome_json(const PassOutcome& pass, PassWhen when) {
  nlohmann::json j = {{"when", to_string(when)}, {"applied", pass.applied}};
  if (!pass.ran) return j;
  j["metric"] = pass.metric;
  j["iterations"] = pass.iterations;
  j["mean_displacement_mm"] = pass.mean_displacement_mm;
  if (pass.restarted) {
    j["restart_metric"] = pass.restart_metric;
    j["restart_applied"] = pass.restart_applied;
  }
  if (!pass.rescues.empty()) {
    nlohmann::json tried = nlohmann::json::array();
    for (const auto& r : pass.rescues)
      tried.push_back({{"neck_cut_mm", r.height_mm}, {"cut_metric", r.cut_metric}, {"metric", r.focused_metric}});
    j["neck_cut_rescues"] = tried;
    j["neck_cut_applied_mm"] = pass.rescue_applied_mm;
  }
  if (!pass.scale_rescues.empty()) {
    nlohmann::json tried = nlohmann::json::array();
    for (const auto& [scale, metric] : pass.scale_rescues) tried.push_back({{"template_scale", scale}, {"metric", metric}});
    j["template_scale_rescues"] = tried;
    j["template_scale_applied"] = pass.rescue_scale_applied;
  }
  return j;
}

/// preprocess.json, written from the result (docs/ARCHITECTURE.md).
nlohmann::json make_report(const fs::path& scan, const PreprocessResult& result, const PreprocessOptions& options) {
  const auto& reg = result.registration;
  nlohmann::json r;
  r["scan"] = fs::absolute(scan).lexically_normal().string();
  r["format"] = result.format;
  r["datatype"] = result.datatype;
  r["input_geometry"] = geometry_json(result.native_image);
  if (const auto header = attached_nifti_header(result.native_image)) r["input_nifti_xforms"] = nifti_xforms_json(*header);
  r["versions"] = {{"brainage", build_info::kVersion}, {"git_sha", build_info::kGitSha}, {"itk", itk_version()},
                   {"compiler", build_info::kCompiler}};
  r["template"] = {{"dir", options.template_dir.string()},
                   {"registration_target", result.skull_stripped.skull_stripped ? "ch2bet.nii.gz" : "ch2.nii.gz"},
                   {"brain_mask", "ch2bet.nii.gz > 0"}};
  r["skull_stripped_input"] = {{"value", result.skull_stripped.skull_stripped}, {"reason", result.skull_stripped.reason}};
  r["parameters"] = preprocess_parameters_json(options);
  r["threads"] = options.threads;  // not a parameter: outputs do not depend on it (docs/ROBUSTNESS.md)
  r["background_level"] = result.background_level;
  r["registration"] = {{"attempts", reg.attempts},
                       {"start_rotation_deg", reg.first.start.rotation_deg},
                       {"start_shift_mm", reg.first.start.shift_mm},
                       {"rigid_metric", reg.first.rigid_metric},
                       {"final_metric", reg.first.final_metric},
                       {"rigid_iterations", reg.first.rigid_iterations},
                       {"affine_iterations", reg.first.affine_iterations},
                       {"stop_condition", reg.first.stop_condition},
                       {"affine_scales", reg.affine_scales},
                       {"focused_pass", pass_outcome_json(reg.focused, options.focused_pass.when)},
                       {"brain_pass", pass_outcome_json(reg.brain, options.brain_pass.when)}};
  r["brain_volume_ml"] = result.brain_volume_ml;
  r["brain_median_intensity"] = result.brain_median_intensity;
  r["brain_contrast"] = result.brain_contrast;
  r["contrast_to_noise"] = result.contrast_to_noise;
  r["normalization_reference_intensity"] = result.normalization_reference;
  r["tissue_volumes_ml"] = {{"csf", result.tissue_volumes_ml[0]}, {"gm", result.tissue_volumes_ml[1]},
                            {"wm", result.tissue_volumes_ml[2]}};
  r["tissue_means"] = {{"csf", result.tissue_means[0]}, {"gm", result.tissue_means[1]}, {"wm", result.tissue_means[2]}};
  const auto& soft = result.soft_tissue_volumes_ml;
  r["tissue_probability"] = {
      {"volumes_ml", {{"csf", soft[0]}, {"gm", soft[1]}, {"wm", soft[2]}}},
      {"brain_parenchyma_ml", soft[1] + soft[2]},
      {"intracranial_ml", soft[0] + soft[1] + soft[2]},
      {"jacobian_determinant", result.tissue_maps.jacobian_determinant},
      {"modulated_totals_ml", {{"csf", result.tissue_maps.modulated_totals_ml[0]},
                               {"gm", result.tissue_maps.modulated_totals_ml[1]},
                               {"wm", result.tissue_maps.modulated_totals_ml[2]}}},
      {"regional_volumes", result.regional_volumes.empty() ? "not computed (no aal.nii.gz in the template folder)"
                                                           : "regional_volumes.csv (AAL, 116 regions)"}};
  r["brain_coverage"] = {{"outside_fov_fraction", result.coverage.outside_fraction},
                         {"outside_fov_ml", result.coverage.outside_ml},
                         {"side", result.coverage.side},
                         {"limit", options.max_brain_outside_fov}};
  if (options.check_t1_contrast)
    r["t1_contrast"] = {{"wm_median", result.contrast.wm_median}, {"gm_median", result.contrast.gm_median},
                        {"csf_median", result.contrast.csf_median}, {"wm_gm_ratio", result.contrast.wm_gm_ratio},
                        {"gm_csf_ratio", result.contrast.gm_csf_ratio}, {"csf_level", result.contrast.csf_level},
                        {"csf_wm_ratio", result.contrast.csf_wm_ratio}, {"t1_weighted", result.contrast.t1_weighted},
                        {"min_wm_gm_ratio", options.contrast.min_wm_gm_ratio}};
  r["model_grid"] = geometry_json(result.t1_model);
  nlohmann::json seconds = nlohmann::json::object();
  for (const auto& [step, s] : result.seconds) seconds[step] = s;
  r["seconds"] = seconds;
  r["qc"] = {{"passed", result.qc_passed}, {"flags", result.qc_flags}};
  if (!result.warnings.empty()) r["warnings"] = result.warnings;
  return r;
}

}  // namespace

std::string voxel_size_refusal(const std::array<double, 3>& spacing, const PreprocessOptions& options) {
  char line[512];
  const double thickest = std::max({spacing[0], spacing[1], spacing[2]});
  if (thickest > options.max_voxel_size_mm) {
    std::snprintf(line, sizeof line,
                  "voxels of %.2f x %.2f x %.2f mm: thicker than %.1f mm along an axis, too coarse for a brain age "
                  "(reconstruct thinner slices or use a 3D T1)",
                  spacing[0], spacing[1], spacing[2], options.max_voxel_size_mm);
    return line;
  }
  const double voxel_volume = spacing[0] * spacing[1] * spacing[2];
  if (voxel_volume > options.max_voxel_volume_mm3) {
    std::snprintf(line, sizeof line,
                  "voxels of %.2f x %.2f x %.2f mm (%.1f mm3): larger than %.1f mm3 (about 2 mm isotropic, what "
                  "the model is validated for); coarser voxels, e.g. thick slices on a 2 mm in-plane grid, bias the "
                  "tissue maps and the age (younger); use a scan with finer voxels, e.g. 1 mm in-plane "
                  "(docs/ROBUSTNESS.md)",
                  spacing[0], spacing[1], spacing[2], voxel_volume, options.max_voxel_volume_mm3);
    return line;
  }
  return "";
}

PreprocessResult preprocess_scan(const fs::path& scan, const PreprocessOptions& options) {
  PreprocessResult result;
  StepTimer timer(result.seconds);

  // 1. Load + validate + canonical orientation + background offset.
  const auto canonical = load_input(scan, options, result);
  Template& tmpl = load_template(options.template_dir);
  timer.lap("load");

  // 2. Skull-stripped input?
  result.skull_stripped = skull_strip_evidence(canonical, options);
  const bool stripped = result.skull_stripped.skull_stripped;

  // 3. N4 bias correction (head-wide; again inside the brain during step 4).
  result.corrected_native = correct_bias(canonical, options);
  timer.lap("bias_correction");

  // 4. Registration to Colin27 and its refinement passes.
  const BrainExtractor extractor{
      tmpl, options,
      options.brain.search_dilation_voxels * result.corrected_native->GetSpacing().GetVnlVector().max_value()};
  result.registration = register_scan(tmpl, result.corrected_native, stripped, extractor, options, result.mni_to_native);
  timer.lap("registration");

  // 5. The brain mask in native space (canonical grid), then on the input's grid.
  const auto extraction = extractor.run(result.corrected_native, result.mni_to_native);
  MaskType::Pointer mask_canonical = extraction->GetOutput();
  mask_canonical->DisconnectPipeline();
  result.brain_mask_native = resample_mask_to_grid(mask_canonical, result.native_image);
  result.brain_volume_ml = mask_volume_ml(result.brain_mask_native);
  result.brain_median_intensity = extraction->GetBrainMedian();
  result.brain_contrast = extraction->GetBrainContrast();
  timer.lap("brain_extraction");

  // 6. Model grid + intensity normalisation.
  const auto t1_model_raw = resample_to_model_grid(result.corrected_native, result.mni_to_native);
  result.brain_mask_model = mask_to_model_grid(mask_canonical, result.mni_to_native);
  const auto normalized = normalize_intensity(t1_model_raw, result.brain_mask_model, options.normalization);
  result.t1_model = normalized.image;
  result.normalization_reference = normalized.reference_value;
  timer.lap("resample_normalize");

  // 7. Tissue classes.
  const auto tissue = classify_tissue(result.t1_model, result.brain_mask_model, options.tissue);
  result.tissue_model = tissue.labels;
  result.tissue_volumes_ml = tissue.volumes_ml;
  result.tissue_means = tissue.class_means;
  result.contrast_to_noise = contrast_to_noise_ratio(result.t1_model, tissue.labels);
  timer.lap("tissue_classification");
  // 7b. Soft tissue maps at the scan's resolution, carried to the model grid and modulated;
  // their AAL regional volumes.
  const auto soft = estimate_tissue_probabilities(result.corrected_native, mask_canonical, options.tissue_probability);
  result.soft_tissue_volumes_ml = soft.volumes_ml;
  result.tissue_maps = tissue_maps_to_model_grid(soft.probabilities, result.mni_to_native);
  if (options.regional_volumes && fs::exists(options.template_dir / "aal.nii.gz"))
    result.regional_volumes = regional_volumes(result.tissue_maps.modulated, load_aal_atlas(options.template_dir));
  timer.lap("tissue_probability");

  // 8. Input checks: is the whole brain in the field of view; is it a T1?
  result.coverage = brain_coverage(tmpl.mask, result.mni_to_native, result.corrected_native);
  if (options.check_t1_contrast)
    result.contrast = check_t1_contrast(result.t1_model, result.brain_mask_model,
                                        template_contrast_regions(options.template_dir), options.contrast);
  else
    result.contrast.t1_weighted = true;

  // 9. QC verdict; a T1 check failing on a registration that passed QC is a refusal.
  result.qc_flags = qc_flags(result, options);
  result.qc_passed = result.qc_flags.empty();
  if (!result.contrast.t1_weighted && result.qc_passed) throw InvalidInputError(scan.string() + ": " + result.contrast.rule);
  if (options.render_qc) {
    auto template_model = resample_to_model_grid(tmpl.head, AffineTransformType::New());
    result.qc_image = render_qc_image(result.corrected_native, mask_canonical, result.t1_model, template_model);
  }
  timer.lap("qc");
  timer.total();
  result.report = make_report(scan, result, options);
  return result;
}

}  // namespace brainage::preprocessing
