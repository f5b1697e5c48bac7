#pragma once
// Soft GM / WM / CSF maps inside the brain, two tissue models (TissueModel):
//
// - kLinearUnmixing (the default): partial-volume fractions under the linear mixing model
//   of MRI partial volume (Choi, Haynor & Kim 1991; Santago & Gage 1993): a voxel of
//   intensity x between two adjacent pure-class means holds the fraction
//   (μ_b − x) / (μ_b − μ_a) of the darker tissue a and the rest of tissue b; beyond the CSF
//   or WM mean it is pure. The class means are those of the K-means of
//   tissue_classification.h. Chosen because it depends only on the three class means,
//   which stay put when contrast, noise or sharpness change, and because averaging
//   intensities averages fractions (a 2 mm voxel's fraction = the mean of its 1 mm voxels').
//   Measured on 6 IXI scans (docs/RESULTS.md, "Tenth session: tissue model"): GM volume
//   within 0.9–2.2 % under 1 mm blur, 3 % noise and gamma 0.85–1.2 (3.6 % at gamma 1.4),
//   where the Gaussian mixture moved 2.3–32 %, and a lower VBM cross-validated MAE.
// - kGaussianMixture: posterior class probabilities from a Gaussian mixture fitted by
//   expectation-maximisation (Dempster, Laird & Rubin 1977; the intensity model of SPM's
//   unified segmentation, Ashburner & Friston 2005, without its spatial priors), K-means
//   start, optional mixed classes CSF/GM and GM/WM (FSL FAST's partial-volume model): a
//   mixed voxel holds a fraction α of the darker tissue, α on a fixed grid, mean and
//   variance interpolated between the pure classes. Kept for comparison: without spatial
//   priors its class variances trade off against each other and the volumes follow the
//   scan's contrast and noise.
//
// Both are affine-equivariant in intensity (K-means seeds at quantiles), so the maps do
// not change with the scan's intensity scale or offset. Deterministic (no random numbers,
// no threads).
//
// Then: the maps carried to the model grid (model_grid.h) through the native<->MNI affine,
// and their modulated versions: probability × |det A| × voxel volume, with A the linear part
// of the MNI -> native affine, so a model-grid voxel holds the millilitres of the subject's
// own tissue that registration mapped into it (Good et al. 2001, "modulation").
#include <array>

#include "preprocessing/image_types.h"
#include "preprocessing/template_registration.h"
#include "preprocessing/tissue_classification.h"

namespace brainage::preprocessing {

/// Tissue order of every array and 4D volume here: CSF, GM, WM.
inline constexpr std::array<const char*, 3> kTissueNames{"csf", "gm", "wm"};

/// How the soft maps are made from the brain intensities (see the top of this file).
enum class TissueModel { kLinearUnmixing, kGaussianMixture };

/// "linear-unmixing" / "gaussian-mixture" (as written in preprocess.json).
const char* tissue_model_name(TissueModel model);

struct TissueProbabilityOptions {
  /** Tissue model. Default = kLinearUnmixing (fractions between the K-means class means). */
  TissueModel model{TissueModel::kLinearUnmixing};
  /** kLinearUnmixing: brain voxels darker than this fraction of the brain's 99th intensity
      percentile are left out of the K-means that sets the class means (they still get
      fractions: CSF). A skull-stripped input's zeros inside the brain mask otherwise pull
      the CSF mean down and halve the CSF volume (ch2bet: CSF mean 0.33 of the percentile
      vs Colin27's 0.46; with the floor 0.47). Default = 0.15 (at most 0.7 % of the brain
      voxels of the 148 skull-on IXI-HH scans lie below it). */
  double fit_floor_fraction{0.15};
  /* The options below up to `kmeans` are the Gaussian mixture's (kGaussianMixture only). */
  /** Histogram bins over the brain's intensity range for the EM fit. Default = 512. */
  int histogram_bins{512};
  /** Upper bound on EM iterations. Default = 200. */
  int max_iterations{200};
  /** EM stops when the mean log-likelihood per voxel changes less than this. Default = 1e-7. */
  double tolerance{1e-7};
  /** Mixed classes CSF/GM and GM/WM (partial volume); false = a plain 3-class mixture.
      Default = true (closer volumes than the plain mixture on the exact partial-volume
      phantom of tests/preprocessing/tissue_probability_test.cpp; not yet compared on the
      VBM study). */
  bool partial_volume{true};
  /** Fractions α of the darker tissue in a mixed voxel (each strictly between 0 and 1).
      Default = {0.25, 0.5, 0.75}. */
  std::array<double, 3> mixing_fractions{0.25, 0.5, 0.75};
  /** K-means of both models: the unmixing's class means, the EM's start (its median
      smoothing of the labels is not used). */
  TissueClassificationOptions kmeans{};
};

struct TissueProbabilityResult {
  /// CSF, GM, WM fractions (kLinearUnmixing) or posteriors (kGaussianMixture) on the
  /// input's grid; they sum to 1 inside the mask, 0 outside.
  std::array<ImageType::Pointer, 3> probabilities;
  std::array<double, 3> means{};      // pure-class intensity means (input units), CSF, GM, WM
  std::array<double, 3> sds{};        // pure-class standard deviations (input units)
  std::array<double, 3> volumes_ml{};  // Σ P × voxel volume, CSF, GM, WM
  int iterations = 0;                 // EM iterations run (0 for kLinearUnmixing)
  double log_likelihood = 0;          // final mean log-likelihood per voxel (histogram; EM only)
};

/// Fits the tissue model to `image` inside `brain_mask` (same grid, > 0 = brain) and
/// returns the maps. Throws ProcessingError when the mask holds fewer than 100 voxels or
/// the grids differ, when the brain's intensities have no spread, and when the three
/// class means are not distinct and ordered CSF < GM < WM.
TissueProbabilityResult estimate_tissue_probabilities(const ImageType* image, const MaskType* brain_mask,
                                                      const TissueProbabilityOptions& options = {});

/// The native maps on the model grid plus their modulated versions.
struct ModelGridTissueMaps {
  std::array<ImageType::Pointer, 3> probabilities;  // model grid, linear interpolation, CSF/GM/WM
  std::array<ImageType::Pointer, 3> modulated;      // model grid, mL of native tissue per voxel
  double jacobian_determinant = 1;  // |det A|: native mm³ per MNI mm³ (A: linear part of mni_to_native)
  std::array<double, 3> modulated_totals_ml{};  // Σ modulated over the grid (≈ native volumes)
};

/// Carries `native` (probabilities on any grid in the native physical space) to the model
/// grid through `mni_to_native` (MNI points -> native points, ITK convention) and
/// modulates them. Throws ProcessingError when a map is missing or the affine is singular.
ModelGridTissueMaps tissue_maps_to_model_grid(const std::array<ImageType::Pointer, 3>& native,
                                              const AffineTransformType* mni_to_native);

/// |det| of the linear part of `mni_to_native`: native volume per MNI volume. Never throws.
double affine_jacobian_determinant(const AffineTransformType* mni_to_native);

}  // namespace brainage::preprocessing
