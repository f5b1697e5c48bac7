#pragma once
// The whole preprocessing of one scan, as a library call:
//   load + validate -> canonical orientation (RAS voxel axes, geometry kept)
//   -> N4 bias correction (fitted shrunk, applied at full resolution)
//   -> moments-initialised rigid then affine Mattes-MI registration to Colin27 (ch2)
//   -> brain extraction (ch2bet prior carried to native space, refined on the scan)
//   -> resampling into the model grid + robust intensity normalisation inside the brain
//   -> GM/WM/CSF classification in the model grid -> input checks (brain coverage by the
//   field of view, T1 contrast) -> QC.
// preprocess_scan reads top to bottom as those steps; each step returns a struct that
// goes into PreprocessResult, and preprocess.json is written from that result at the end.
#include <array>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "preprocessing/background_offset.h"
#include "preprocessing/bias_correction.h"
#include "preprocessing/brain_coverage.h"
#include "preprocessing/brain_extraction_filter.h"
#include "preprocessing/image_types.h"
#include "preprocessing/intensity_normalization.h"
#include "preprocessing/model_grid.h"
#include "preprocessing/qc_image.h"
#include "preprocessing/scan_plausibility.h"
#include "preprocessing/scan_reader.h"
#include "preprocessing/skull_strip_detection.h"
#include "preprocessing/t1_contrast_check.h"
#include "preprocessing/template_registration.h"
#include "preprocessing/regional_volumes.h"
#include "preprocessing/tissue_classification.h"
#include "preprocessing/tissue_probability.h"

namespace brainage::preprocessing {

struct BrainExtractionOptions {
  /** See BrainExtractionImageFilter. Default = 6.0. */
  double core_erosion_mm{6.0};
  /** How far the search reaches beyond the prior, in voxels of the scan (× its largest
      spacing, as a Euclidean distance: 1 = the face neighbours), on every grid the brain is
      extracted on. Default = 1.0 (measured: IXI 2 mm, Colin27 1.5 mm and MRISnapshot
      1.05-1.2 mm all lose Dice with 1.5-3 mm searches; docs/BENCHMARKS.md). */
  double search_dilation_voxels{1.0};
  /** Default = 0.30 (about the CSF level: partial-volume CSF stays in, skull and background go). */
  double lower_threshold_fraction{0.30};
  /** Default = 1.8. */
  double upper_threshold_fraction{1.8};
  /** The brain contrast, ln(q75 / q25) of the intensities in the eroded prior, at which
      the two fractions apply as given; other contrasts raise them to the power
      contrast / reference_contrast (BrainExtractionImageFilter::SetReferenceContrast), so
      that another scanner's contrast curve does not move fat or dura into the mask.
      0 = fixed fractions (default). 0.245 = the median of 13 IXI-HH scans (range
      0.232-0.278), the value measured with registration rank_intensities in the eleventh
      session (docs/ROBUSTNESS.md "Contrast"); both are off by default until the
      thread-count and ch2bet field cases pass with them. Default = 0. */
  double reference_contrast{0.0};
  /** Default = 0 (off: at 2 mm an opening erases the cortical ribbon). */
  double opening_radius_mm{0.0};
  /** Default = 2.0. */
  double closing_radius_mm{2.0};
};

/// When a refinement pass runs.
enum class PassWhen {
  kOff,        // never
  kOnFailure,  // only when the first registration fails the metric bound
  kAlways,     // every scan with a skull
};
PassWhen pass_when_from_string(const std::string& name);  // "off" | "on-failure" | "always"; InvalidInputError otherwise
std::string to_string(PassWhen when);

/// An affine registration pass that starts from the current transform (refine_affine) and
/// is followed by a new brain extraction.
struct RefinementPassOptions {
  PassWhen when{PassWhen::kAlways};
  /** < 0: the whole scan against ch2; else the scan cut by its current brain mask dilated by this (mm), against ch2bet. */
  double cut_dilation_mm{-1.0};
  /** The metric samples ch2bet > 0 dilated by this (mm). */
  double metric_dilation_mm{3.0};
  /** The pass is discarded when it moves the template brain by more than this on average (mm). */
  double max_displacement_mm{12.0};
  /** Its affine optimisation (pyramid levels, sigmas, iterations, learning rate, minimum step). */
  RegistrationStageOptions stage{{2, 1}, {2.0, 1.0}, {100, 50}, 1.0};
};

struct PreprocessOptions {
  /** Folder holding ch2.nii.gz and ch2bet.nii.gz (Debian mricron-data). Default = /usr/share/mricron/templates. */
  std::filesystem::path template_dir = "/usr/share/mricron/templates";
  /** Treat the input as already skull-stripped (no stripping). Default = false. */
  bool assume_skull_stripped = false;
  /** Detect skull-stripped inputs automatically (see skull_strip_detection.h). Default = true. */
  bool detect_skull_stripped = true;
  /** Threads of the registration's resampling (0 = ITK's default). The pipeline never
      changes ITK's process-wide thread count (the caller sets it once: app's
      configure_all_threads); masks and transforms do not depend on it (docs/ROBUSTNESS.md). Default = 0. */
  int threads = 0;
  /** Removes an intensity offset before anything else (background_offset.h). Default = {1st percentile}. */
  BackgroundOffsetOptions background{};
  /** Thickest voxel (mm, any axis) accepted; thicker scans are refused (exit 3): the
      registration and the 2 mm model grid cannot recover what 6 mm slices average away.
      Default = 5.0 (measured with the default model: Colin27 at 1x1x3 / 4 / 5 mm moves 0.8 / 1.3 / 1.6 y; docs/ROBUSTNESS.md). */
  double max_voxel_size_mm = 5.0;
  /** Largest voxel volume (mm³) accepted; larger voxels are refused (exit 3). Thick slices
      on a coarse in-plane grid merge sulcal CSF into grey matter and swell the brain mask,
      which reads as a younger brain. Measured with the default model on 6 IXI-HH scans
      resampled from 2x2x2 mm (8 mm³, the training resolution) to 2x2x2.5 / 3 / 3.5 / 4 mm:
      worst |Δage| 2.4 / 4.3 / 8.0 / 9.2 y, mostly younger; at 1 mm in-plane Colin27 moves
      ≤ 1.6 y up to 1x1x5 mm (docs/ROBUSTNESS.md). Default = 9.0 (2x2x2 mm passes, 2x2x2.5
      mm is refused, 1x1x5 mm passes; isotropic voxels above ~2.08 mm, not measured, are
      refused as outside the validated resolution). */
  double max_voxel_volume_mm3 = 9.0;
  /** Largest fraction of the registered template brain allowed outside the field of view
      (brain_coverage.h); above it the result fails QC (exit 5). Default = 0.02. */
  double max_brain_outside_fov = 0.02;
  /** Smallest contrast-to-noise ratio (contrast_to_noise.h) that passes QC (exit 5 below it):
      half the lowest of the 147 training scans (9.7); IXI012 with Gaussian noise at SNR 5
      reads 3.2 (and 7.3 y younger), at SNR 10 5.8 (0.8 y). Default = 5.0. */
  double min_contrast_to_noise = 5.0;
  /** Refuse scans that are not T1-weighted (t1_contrast_check.h). Default = true. */
  bool check_t1_contrast = true;
  T1ContrastOptions contrast{};
  /** Skip N4 (inputs already bias-corrected). Default = false. */
  bool skip_bias_correction = false;
  /** The registration metric samples the template brain dilated by this (mm), so the face,
      neck and field-of-view edges do not drive it; < 0 = the whole template. Default = 15. */
  double registration_mask_dilation_mm = 15.0;
  /** Focused pass, when the first registration fails its metric bound: the whole scan
      against ch2 with the metric on the template brain + 3 mm only, so scalp, face and neck
      stop pulling the affine; its metric then decides the QC (max_focused_metric).
      A failed first registration can be far off, so it may move the brain up to 25 mm and
      runs the affine stage's two levels. Default = {on-failure, whole scan, 3 mm, 25 mm,
      shrink {2, 1}, sigmas {2, 1} mm, iterations {100, 50}, learning rate 1}. */
  RefinementPassOptions focused_pass{PassWhen::kOnFailure, -1.0, 3.0, 25.0, {{2, 1}, {2.0, 1.0}, {100, 50}, 1.0}};
  /** Neck-cut rescue, only when the focused pass (and its restart) still fail: the scan cut
      to each of these heights (mm) below the top of the head (FSL robustfov's cut; 170 mm
      there) is registered from every retry start pose, and the focused pass continues on
      the cut scan from there (the transform applies to the whole scan); the first that
      meets max_focused_metric is kept (or the best, which QC then flags). Scans that
      register otherwise never run it, so their outputs do not change. Empty = off.
      Default = {170, 190}. */
  std::vector<double> rescue_fields_of_view_mm{170.0, 190.0};
  /** Last rescue of a registration still failing after the neck cuts: the focused pass
      restarted from the template scaled by each factor about its brain centre (a small
      brain in a large head, IXI508), the best focused metric kept. Scans that register
      pay nothing. Default = {0.92, 0.85}. */
  std::vector<double> rescue_template_scales{0.92, 0.85};
  /** Brain pass: the scan cut by its brain mask + 4 mm against the skull-stripped ch2bet
      (metric on ch2bet + 8 mm); tightens the brain's scale. It starts close, so one level
      at the working resolution. Default = {always, 4 mm, 8 mm, 12 mm, shrink {1}, sigma
      {1} mm, 50 iterations, learning rate 1, minimum step 0.02}. */
  RefinementPassOptions brain_pass{PassWhen::kAlways, 4.0, 8.0, 12.0, {{1}, {1.0}, {50}, 1.0}};
  BiasCorrectionOptions bias{};
  /** N4 again, inside the first brain mask, before the brain pass: the head-wide fit
      leaves smooth shading of 5-20 % across the brain, and a different one for a skull-on
      scan and its skull-stripped copy; a brain-only fit removes it (as ANTs' brain
      extraction runs N4 again with the brain mask). Default = true. */
  bool brain_bias_correction = true;
  /** Its N4 settings. Default = {4 mm, iterations {50, 50, 50}, threshold 0.001, 4 control points, order 3,
      FWHM 0.15}. Three fitting levels (a final lattice of 7 control points per axis) leave ~20 % of a 1.5x
      linear field's slope inside the brain (ages up to 1.6 y off). Four levels (`preprocess
      --brain-bias-iterations 50 50 50 50`, as ANTs' N4 default) leave 4 % and kept every bias-field case
      within 0.7 y, but made a skull-stripped copy read 1.3-2.9 y younger than its skull-on scan (three
      levels: 0.0-2.2 y) and shifted the default's ages by up to 5 y, so they are not the default (sixteenth
      session, docs/ROBUSTNESS.md "Bias field"). */
  BiasCorrectionOptions brain_bias{4.0, {50, 50, 50}, 0.001, 4, 3, 0.15};
  RegistrationOptions registration{};
  BrainExtractionOptions brain{};
  IntensityNormalizationOptions normalization{};
  TissueClassificationOptions tissue{};
  /** Soft CSF/GM/WM maps on the bias-corrected scan (tissue_probability.h). */
  TissueProbabilityOptions tissue_probability{};
  /** Regional GM/WM/CSF volumes in the AAL regions of <template_dir>/aal.nii.gz (skipped,
      with a report note, when the atlas is not there). Default = true. */
  bool regional_volumes = true;
  SkullStripDetectionOptions skull_strip_detection{};
  PlausibilityOptions plausibility{};
  /** Render qc.png (about 0.1 s). Default = true. */
  bool render_qc = true;
  /** Plausible adult brain volume (mL); outside it the result fails QC. Default = 900
      (the 149 IXI-HH masks: 1073-1859 mL; IXI012 with its voxel sizes scaled by 0.8, a
      brain half its volume, registered by the template-scale rescue to 813 mL and read
      12 y older with QC passed at the earlier 800). */
  double min_brain_volume_ml = 900.0;
  /** Default = 2200. */
  double max_brain_volume_ml = 2200.0;
  /** A final Mattes MI above this (less negative) means the registration diverged. Default = -0.25. */
  double max_final_metric = -0.25;
  /** After a focused pass, its Mattes MI (brain + 3 mm) above this means the registration failed. Default = -0.2. */
  double max_focused_metric = -0.2;
  /** Affine scale factors outside [1/x, x] mean the registration diverged. Default = 1.5. */
  double max_affine_scale = 1.5;
};

/// What one refinement pass did (see RefinementPassOptions).
/// One neck-cut rescue of a failed registration (PreprocessOptions::rescue_fields_of_view_mm).
struct NeckCutRescue {
  double height_mm = 0;       // the scan cut to this height below the top of the head
  double cut_metric = 0;      // Mattes MI of the registration of the cut scan
  double focused_metric = 0;  // Mattes MI of the focused pass continued on the cut scan
};

struct PassOutcome {
  bool ran = false;                  // its `when` rule asked for it
  bool applied = false;              // its transform was kept
  double metric = 0;                 // its final Mattes MI (when ran)
  unsigned iterations = 0;
  double mean_displacement_mm = 0;   // how far it moved the template brain
  bool restarted = false;            // focused pass only: the restart from every start pose ran
  double restart_metric = 0;
  bool restart_applied = false;
  std::vector<NeckCutRescue> rescues;  // focused pass only: the neck-cut rescues tried
  double rescue_applied_mm = 0;      // the neck-cut height whose transform was kept; 0 = none
  std::vector<std::pair<double, double>> scale_rescues;  // focused pass only: (template scale, metric) tried
  double rescue_scale_applied = 0;   // the template scale whose transform was kept; 0 = none
};

/// The registration step's decisions: the first registration (best of its attempts) and
/// the two refinement passes.
struct RegistrationSummary {
  RegistrationResult first;
  int attempts = 1;
  bool first_failed = false;   // its metric above max_final_metric
  PassOutcome focused, brain;
  bool rescued = false;        // a failed first registration rescued by the focused pass
  std::array<double, 3> affine_scales{1, 1, 1};  // singular values of the final affine's matrix
};

struct PreprocessResult {
  ImageType::Pointer t1_model;                 // model grid, brain only, normalised (see intensity_normalization.h)
  MaskType::Pointer brain_mask_model;          // model grid, 1 = brain
  MaskType::Pointer tissue_model;              // model grid: 0 bg, 1 CSF, 2 GM, 3 WM
  MaskType::Pointer brain_mask_native;         // exactly the input's grid (size, spacing, origin, direction)
  ImageType::Pointer native_image;             // the validated input as loaded (its geometry is "native space")
  AffineTransformType::Pointer mni_to_native;  // maps MNI (fixed) points to native (moving) points, ITK convention
  nlohmann::json report;                       // the content of preprocess.json
  bool qc_passed = true;                       // false when registration diverged or brain volume implausible
  std::vector<std::string> qc_flags;           // one short line per failed check
  std::vector<std::string> warnings;           // the loader's and the checks' warnings
  bool orientation_known = true;               // false: a NIfTI with qform_code = sform_code = 0 (scan_reader.h)
  // Not part of the written NIfTI set: the bias-corrected scan (canonical orientation,
  // same physical space as native_image) and the rendered qc.png.
  ImageType::Pointer corrected_native;
  RGBImageType::Pointer qc_image;
  // What each step measured or decided (the report is written from these).
  std::string format, datatype;                // of the input file
  double background_level = 0;                 // intensity moved to 0 (input units)
  SkullStripEvidence skull_stripped;
  RegistrationSummary registration;
  double brain_volume_ml = 0;                  // native brain mask (mL)
  double brain_median_intensity = 0;           // bias-corrected, inside the brain
  double brain_contrast = 0;                   // ln(q75 / q25) in the eroded prior (brain extraction)
  double contrast_to_noise = 0;                // (WM − GM) / noise on the model grid (contrast_to_noise.h)
  double normalization_reference = 0;          // the intensity mapped to 1
  std::array<double, 3> tissue_volumes_ml{};   // CSF, GM, WM (model grid)
  std::array<double, 3> tissue_means{};        // CSF, GM, WM (normalised intensities)
  ModelGridTissueMaps tissue_maps;             // soft + modulated maps on the model grid, |det| of the affine
  std::array<double, 3> soft_tissue_volumes_ml{};  // CSF, GM, WM: Σ posteriors at the scan's resolution
  std::vector<RegionVolume> regional_volumes;  // AAL regions (empty when skipped)
  BrainCoverage coverage;
  T1ContrastResult contrast;
  std::vector<std::pair<std::string, double>> seconds;  // per step, in order, then "total"
};

/// Every preprocessing parameter that can change an output, as the "parameters" object of
/// preprocess.json (also the content of cohort cache keys). Never throws.
nlohmann::json preprocess_parameters_json(const PreprocessOptions& options);

/// Runs the pipeline on `scan`. Throws InvalidInputError for broken/unsuitable inputs (a
/// noise image, an empty image, 2D, voxels thicker than max_voxel_size_mm, a contrast that
/// is not T1-weighted) and never returns a mask for them; QC failures do not throw: they
/// set qc_passed = false and qc_flags (registration diverged, implausible brain volume,
/// brain outside the field of view).
PreprocessResult preprocess_scan(const std::filesystem::path& scan, const PreprocessOptions& options = {});

/// Why `preprocess_scan` refuses voxels of `spacing` (mm, per axis) under `options`
/// (max_voxel_size_mm, then max_voxel_volume_mm3), as the text after "<file>: ", or ""
/// when they are accepted. Used by `brainage info` to warn before a run. Never throws.
std::string voxel_size_refusal(const std::array<double, 3>& spacing, const PreprocessOptions& options = {});

/// Writes the files named in docs/ARCHITECTURE.md into `dir` (created if needed):
/// brain_mask_native.nii.gz, t1_mni2mm.nii.gz, brain_mask_mni2mm.nii.gz,
/// tissue_mni2mm.nii.gz, tissue_prob_{csf,gm,wm}_mni2mm.nii.gz, tissue_modulated_{csf,gm,wm}_mni2mm.nii.gz,
/// regional_volumes.csv, native_to_mni.tfm, qc.png, preprocess.json. Every file atomically.
void write_preprocess_outputs(const PreprocessResult& result, const std::filesystem::path& dir);

/// Reads native_to_mni.tfm back (MNI points -> native points). Throws InvalidInputError.
AffineTransformType::Pointer read_mni_to_native_transform(const std::filesystem::path& tfm);

}  // namespace brainage::preprocessing
