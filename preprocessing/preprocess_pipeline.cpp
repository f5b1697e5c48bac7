#include "preprocessing/preprocess_pipeline.h"

#include <itkCastImageFilter.h>
#include <itkImageRegionConstIterator.h>
#include <itkImageRegionIterator.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkMultiThreaderBase.h>
#include <itkResampleImageFilter.h>
#include <vnl/algo/vnl_svd.h>

#include <chrono>
#include <map>
#include <mutex>

#include "common/build_info.h"
#include "common/errors.h"
#include "preprocessing/canonical_orientation.h"
#include "preprocessing/itk_version.h"
#include "preprocessing/mask_metrics.h"
#include "preprocessing/mask_operations.h"
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

nlohmann::json pass_json(const RefinementPassOptions& pass) {
  return {{"when", to_string(pass.when)},
          {"moving", pass.cut_dilation_mm < 0 ? "whole scan vs ch2"
                                               : "scan cut by its brain mask + " + std::to_string(pass.cut_dilation_mm) + " mm vs ch2bet"},
          {"metric_mask_dilation_mm", pass.metric_dilation_mm},
          {"max_displacement_mm", pass.max_displacement_mm},
          {"shrink", pass.stage.shrink_factors}, {"sigmas_mm", pass.stage.smoothing_sigmas_mm},
          {"iterations", pass.stage.iterations}, {"learning_rate", pass.stage.learning_rate}};
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

/// `image` (native/moving space) sampled on the model grid through `mni_to_native`.
ImageType::Pointer to_model_grid(const ImageType* image, const AffineTransformType* mni_to_native) {
  auto grid = make_model_grid_image();
  auto resample = itk::ResampleImageFilter<ImageType, ImageType>::New();
  resample->SetInput(image);
  resample->SetTransform(mni_to_native);
  resample->SetInterpolator(itk::LinearInterpolateImageFunction<ImageType, double>::New());
  resample->SetUseReferenceImage(true);
  resample->SetReferenceImage(grid);
  resample->SetDefaultPixelValue(0);
  resample->Update();
  ImageType::Pointer out = resample->GetOutput();
  out->DisconnectPipeline();
  return out;
}

MaskType::Pointer mask_to_model_grid(const MaskType* mask, const AffineTransformType* mni_to_native) {
  auto cast = itk::CastImageFilter<MaskType, ImageType>::New();
  cast->SetInput(mask);
  cast->Update();
  const auto soft = to_model_grid(cast->GetOutput(), mni_to_native);
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
      {"threads", options.threads},
      {"template_dir", options.template_dir.string()},
      {"skull_stripped_input",
       {{"assume", options.assume_skull_stripped}, {"detect", options.detect_skull_stripped},
        {"foreground_fraction", options.skull_strip_detection.foreground_fraction},
        {"max_foreground_ml", options.skull_strip_detection.max_foreground_ml},
        {"min_zero_fraction", options.skull_strip_detection.min_zero_fraction}}},
      {"plausibility",
       {{"min_neighbour_correlation", options.plausibility.min_neighbour_correlation},
        {"max_outlier_ratio", options.plausibility.max_outlier_ratio}}},
      {"bias_correction",
       {{"skipped", options.skip_bias_correction}, {"shrink_to_mm", options.bias.shrink_to_mm},
        {"iterations", options.bias.iterations}, {"convergence_threshold", options.bias.convergence_threshold},
        {"control_points", options.bias.control_points}, {"spline_order", options.bias.spline_order},
        {"bias_field_fwhm", options.bias.bias_field_fwhm}}},
      {"registration",
       {{"working_spacing_mm", reg_options.working_spacing_mm},
        {"rigid", {{"shrink", reg_options.rigid.shrink_factors}, {"sigmas_mm", reg_options.rigid.smoothing_sigmas_mm},
                   {"iterations", reg_options.rigid.iterations}, {"learning_rate", reg_options.rigid.learning_rate}}},
        {"affine", {{"shrink", reg_options.affine.shrink_factors}, {"sigmas_mm", reg_options.affine.smoothing_sigmas_mm},
                    {"iterations", reg_options.affine.iterations}, {"learning_rate", reg_options.affine.learning_rate}}},
        {"metric", "Mattes MI"}, {"histogram_bins", reg_options.histogram_bins},
        {"moments_initialisation", reg_options.moments_initialisation},
        {"start_search", {{"shrink", reg_options.start_search.shrink_factors},
                          {"sigmas_mm", reg_options.start_search.smoothing_sigmas_mm},
                          {"iterations", reg_options.start_search.iterations},
                          {"learning_rate", reg_options.start_search.learning_rate}}},
        {"registration_mask_dilation_mm", options.registration_mask_dilation_mm},
        {"max_samples", reg_options.max_samples}, {"minimum_step", reg_options.minimum_step}, {"seed", reg_options.seed},
        {"head_centroid_depth_mm", reg_options.head_centroid_depth_mm},
        {"metric_mask", "ch2bet > 0 dilated by " + std::to_string(options.registration_mask_dilation_mm) + " mm"},
        {"focused_pass", pass_json(options.focused_pass)},
        {"brain_pass", pass_json(options.brain_pass)}}},
      {"brain_extraction",
       {{"core_erosion_mm", options.brain.core_erosion_mm}, {"search_dilation_voxels", options.brain.search_dilation_voxels},
        {"lower_threshold_fraction", options.brain.lower_threshold_fraction},
        {"upper_threshold_fraction", options.brain.upper_threshold_fraction},
        {"opening_radius_mm", options.brain.opening_radius_mm}, {"closing_radius_mm", options.brain.closing_radius_mm}}},
      {"normalization",
       {{"method", "divide by the brain's reference percentile, clip"},
        {"reference_percentile", options.normalization.reference_percentile},
        {"clip_max", options.normalization.clip_max}}},
      {"tissue", {{"method", "1-D K-means of brain intensities, 3 classes (CSF, GM, WM), median-smoothed labels"},
                  {"seed_quantiles", options.tissue.seed_quantiles},
                  {"smoothing_radius", options.tissue.smoothing_radius}}},
      {"qc", {{"min_brain_volume_ml", options.min_brain_volume_ml}, {"max_brain_volume_ml", options.max_brain_volume_ml},
              {"max_final_metric", options.max_final_metric}, {"max_focused_metric", options.max_focused_metric}, {"max_affine_scale", options.max_affine_scale}}}};
}

PreprocessResult preprocess_scan(const fs::path& scan, const PreprocessOptions& options) {
  const auto start = Clock::now();
  auto last = start;
  nlohmann::json seconds = nlohmann::json::object();
  auto lap = [&](const char* step) {
    const auto now = Clock::now();
    seconds[step] = std::round(std::chrono::duration<double>(now - last).count() * 1000.0) / 1000.0;
    last = now;
  };
  if (options.threads > 0) itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(options.threads);

  PreprocessResult result;
  // 1. Load + validate, refuse what cannot be a head scan, canonical orientation.
  auto loaded = load_scan(scan);
  result.native_image = loaded.image;
  check_scan_plausible(loaded.image, scan, options.plausibility);
  const auto canonical = to_canonical_orientation(loaded.image);
  Template& tmpl = load_template(options.template_dir);
  lap("load");

  SkullStripEvidence stripped;
  if (options.assume_skull_stripped) {
    stripped.skull_stripped = true;
    stripped.reason = "declared by the user (--skull-stripped)";
  } else if (options.detect_skull_stripped) {
    stripped = detect_skull_stripped(canonical, options.skull_strip_detection);
  } else {
    stripped.reason = "detection off";
  }

  // 2. N4.
  if (options.skip_bias_correction) {
    result.corrected_native = canonical;
  } else {
    const auto fg = foreground_mask(canonical);
    result.corrected_native = correct_bias_field(canonical, fg, options.bias).corrected;
  }
  lap("bias_correction");

  // 3. Registration to Colin27 (ch2; ch2bet for stripped inputs).
  RegistrationOptions reg_options = options.registration;
  if (reg_options.threads == 0) reg_options.threads = options.threads;
  const double spacing = reg_options.working_spacing_mm;
  const auto fixed = working_template(tmpl, spacing, stripped.skull_stripped, options.registration_mask_dilation_mm);
  const auto moving = to_working_grid(result.corrected_native, spacing);
  auto registration = register_to_template(fixed.image, moving, reg_options, fixed.mask);
  // A metric above the divergence bound: retry with a search over start poses (head pitch,
  // roll, yaw; centroid shifts), then the same from a shallower head centroid, and keep the best; QC
  // still flags it if none converges. Scans that register at once pay nothing for this.
  int registration_attempts = 1;
  for (int attempt = 0; attempt < 2 && !(registration.final_metric <= options.max_final_metric); ++attempt) {
    RegistrationOptions retry = reg_options;
    retry.rigid_starts = retry_rigid_starts();
    if (attempt == 1) retry.head_centroid_depth_mm = 0.6 * reg_options.head_centroid_depth_mm;
    auto candidate = register_to_template(fixed.image, moving, retry, fixed.mask);
    ++registration_attempts;
    if (candidate.final_metric < registration.final_metric) registration = candidate;
  }
  result.mni_to_native = registration.mni_to_native;
  lap("registration");

  // 4. Brain extraction (BrainExtractionImageFilter) of `image` through a template->native
  // transform; the search distance is in the scan's voxels whatever grid `image` is on.
  const double search_mm =
      options.brain.search_dilation_voxels * result.corrected_native->GetSpacing().GetVnlVector().max_value();
  auto extract_brain = [&](const ImageType* image, const AffineTransformType* mni_to_native) {
    auto extract = BrainExtractionImageFilter::New();
    extract->SetInput(image);
    extract->SetTemplateMask(tmpl.mask);
    extract->SetTemplateToNativeTransform(mni_to_native);
    extract->SetSkullStripped(stripped.skull_stripped);
    extract->SetCoreErosionMM(options.brain.core_erosion_mm);
    extract->SetSearchDilationMM(search_mm);
    extract->SetLowerThresholdFraction(options.brain.lower_threshold_fraction);
    extract->SetUpperThresholdFraction(options.brain.upper_threshold_fraction);
    extract->SetOpeningRadiusMM(options.brain.opening_radius_mm);
    extract->SetClosingRadiusMM(options.brain.closing_radius_mm);
    extract->Update();
    return extract;
  };

  // 4b. Refinement passes from the current transform: the focused pass (whole scan, metric
  // on the brain + 3 mm) rescues a first registration that failed its bound; the brain
  // pass (the scan cut by its brain mask against ch2bet) tightens the brain's scale. Either
  // is discarded if it moves the brain implausibly far. The brain pass's cut is extracted on
  // the working grid (the scan itself at 2 mm); the final mask at the scan's resolution.
  const bool first_failed = !(registration.final_metric <= options.max_final_metric);
  auto refinement = [&](const RefinementPassOptions& pass) {
    nlohmann::json report = {{"when", to_string(pass.when)}, {"applied", false}};
    if (stripped.skull_stripped || pass.when == PassWhen::kOff || (pass.when == PassWhen::kOnFailure && !first_failed))
      return report;
    const bool cut = pass.cut_dilation_mm >= 0;
    MaskType::Pointer cut_mask;
    if (cut) {
      cut_mask = extract_brain(moving, result.mni_to_native)->GetOutput();
      cut_mask->DisconnectPipeline();
    }
    const auto target = working_template(tmpl, spacing, cut, pass.metric_dilation_mm);
    RegistrationOptions pass_options = reg_options;
    pass_options.affine = pass.stage;
    const auto refined = refine_affine(target.image, moving, result.mni_to_native, pass_options, target.mask,
                                       cut_mask.GetPointer(), pass.cut_dilation_mm);
    const double moved = mean_displacement_mm(result.mni_to_native, refined.mni_to_native, tmpl.mask);
    report["metric"] = refined.final_metric;
    report["iterations"] = refined.affine_iterations;
    report["mean_displacement_mm"] = moved;
    if (moved <= pass.max_displacement_mm) {
      result.mni_to_native = refined.mni_to_native;
      report["applied"] = true;
    }
    return report;
  };
  auto focused_pass = refinement(options.focused_pass);
  auto focused_ok = [&] {
    return focused_pass["applied"].get<bool>() && focused_pass["metric"].get<double>() <= options.max_focused_metric;
  };
  // Still failing: the focused metric as a fresh registration from every retry start pose
  // (a first registration far off leaves the focused pass in the wrong basin). Kept when
  // it scores better than the focused pass.
  if (first_failed && !focused_ok() && options.focused_pass.when != PassWhen::kOff && !stripped.skull_stripped) {
    RegistrationOptions restart = reg_options;
    restart.rigid_starts = retry_rigid_starts();
    const auto target = working_template(tmpl, spacing, false, options.focused_pass.metric_dilation_mm);
    const auto fresh = register_to_template(target.image, moving, restart, target.mask);
    focused_pass["restart_metric"] = fresh.final_metric;
    const bool better = !focused_pass["applied"].get<bool>() || fresh.final_metric < focused_pass["metric"].get<double>();
    focused_pass["restart_applied"] = better;
    if (better) {
      result.mni_to_native = fresh.mni_to_native;
      focused_pass["applied"] = true;
      focused_pass["metric"] = fresh.final_metric;
    }
  }
  const bool rescued = focused_ok();
  const auto brain_pass = refinement(options.brain_pass);
  lap("refinement");
  // 4c. The brain mask in native space (canonical grid), then on the input's grid.
  const auto extract = extract_brain(result.corrected_native, result.mni_to_native);
  MaskType::Pointer mask_canonical = extract->GetOutput();
  mask_canonical->DisconnectPipeline();
  result.brain_mask_native = resample_mask_to_grid(mask_canonical, loaded.image);
  lap("brain_extraction");

  // 5. Model grid + normalisation.
  const auto t1_model_raw = to_model_grid(result.corrected_native, result.mni_to_native);
  result.brain_mask_model = mask_to_model_grid(mask_canonical, result.mni_to_native);
  const auto normalized = normalize_intensity(t1_model_raw, result.brain_mask_model, options.normalization);
  result.t1_model = normalized.image;
  lap("resample_normalize");

  // 6. Tissue classes.
  const auto tissue = classify_tissue(result.t1_model, result.brain_mask_model, options.tissue);
  result.tissue_model = tissue.labels;
  lap("tissue_classification");

  // 7. QC.
  const double brain_ml = mask_volume_ml(result.brain_mask_native);
  if (brain_ml < options.min_brain_volume_ml || brain_ml > options.max_brain_volume_ml) {
    char line[160];
    std::snprintf(line, sizeof line, "brain volume %.0f mL outside the plausible adult range %.0f-%.0f mL", brain_ml,
                  options.min_brain_volume_ml, options.max_brain_volume_ml);
    result.qc_flags.emplace_back(line);
  }
  if (first_failed && !rescued) {
    char line[200];
    if (focused_pass["applied"].get<bool>())
      std::snprintf(line, sizeof line, "registration diverged: final Mattes MI %.3f > %.3f, focused pass %.3f > %.3f",
                    registration.final_metric, options.max_final_metric, focused_pass["metric"].get<double>(),
                    options.max_focused_metric);
    else
      std::snprintf(line, sizeof line, "registration diverged: final Mattes MI %.3f > %.3f", registration.final_metric,
                    options.max_final_metric);
    result.qc_flags.emplace_back(line);
  }
  vnl_svd<double> svd(result.mni_to_native->GetMatrix().GetVnlMatrix().as_ref());
  std::vector<double> scales;
  for (unsigned i = 0; i < 3; ++i) scales.push_back(svd.W(i));
  for (double s : scales)
    if (!(s <= options.max_affine_scale && s >= 1.0 / options.max_affine_scale)) {
      char line[160];
      std::snprintf(line, sizeof line, "registration diverged: affine scale %.2f outside [%.2f, %.2f]", s,
                    1.0 / options.max_affine_scale, options.max_affine_scale);
      result.qc_flags.emplace_back(line);
      break;
    }
  result.qc_passed = result.qc_flags.empty();
  if (options.render_qc) {
    auto template_model = to_model_grid(tmpl.head, AffineTransformType::New());
    result.qc_image = render_qc_image(result.corrected_native, mask_canonical, result.t1_model, template_model);
  }
  lap("qc");

  // Report.
  nlohmann::json& r = result.report;
  r["scan"] = fs::absolute(scan).lexically_normal().string();
  r["format"] = loaded.format;
  r["datatype"] = loaded.datatype;
  r["input_geometry"] = geometry_json(loaded.image);
  r["versions"] = {{"brainage", build_info::kVersion}, {"git_sha", build_info::kGitSha}, {"itk", itk_version()},
                   {"compiler", build_info::kCompiler}};
  r["template"] = {{"dir", options.template_dir.string()},
                   {"registration_target", stripped.skull_stripped ? "ch2bet.nii.gz" : "ch2.nii.gz"},
                   {"brain_mask", "ch2bet.nii.gz > 0"}};
  r["skull_stripped_input"] = {{"value", stripped.skull_stripped}, {"reason", stripped.reason}};
  r["parameters"] = preprocess_parameters_json(options);
  r["registration"] = {{"attempts", registration_attempts},
                       {"start_rotation_deg", registration.start.rotation_deg},
                       {"start_shift_mm", registration.start.shift_mm},
                       {"rigid_metric", registration.rigid_metric},
                       {"final_metric", registration.final_metric},
                       {"rigid_iterations", registration.rigid_iterations},
                       {"affine_iterations", registration.affine_iterations},
                       {"stop_condition", registration.stop_condition},
                       {"affine_scales", scales},
                       {"focused_pass", focused_pass},
                       {"brain_pass", brain_pass}};
  r["brain_volume_ml"] = brain_ml;
  r["brain_median_intensity"] = extract->GetBrainMedian();
  r["normalization_reference_intensity"] = normalized.reference_value;
  r["tissue_volumes_ml"] = {{"csf", tissue.volumes_ml[0]}, {"gm", tissue.volumes_ml[1]}, {"wm", tissue.volumes_ml[2]}};
  r["tissue_means"] = {{"csf", tissue.class_means[0]}, {"gm", tissue.class_means[1]}, {"wm", tissue.class_means[2]}};
  r["model_grid"] = geometry_json(result.t1_model);
  seconds["total"] = std::round(std::chrono::duration<double>(Clock::now() - start).count() * 1000.0) / 1000.0;
  r["seconds"] = seconds;
  r["qc"] = {{"passed", result.qc_passed}, {"flags", result.qc_flags}};
  if (!loaded.warnings.empty()) r["warnings"] = loaded.warnings;
  return result;
}

}  // namespace brainage::preprocessing
