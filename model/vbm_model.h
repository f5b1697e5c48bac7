#pragma once
// A voxel-based-morphometry brain-age model (as brainageR: Cole et al. 2018, and the
// "modulated GM + ridge" baselines of Franke et al. 2010), behind the same checkpoint
// interface as the neural models (model/checkpoint.h, model_kind "vbm"):
//   modulated CSF/GM/WM densities on the model grid [N, 3, Z, Y, X] (mL per voxel;
//   preprocessing/tissue_probability.h), optionally scaled per subject (VbmScaling) and
//   averaged with its left-right mirror image (left_right_symmetric)
//   -> Gaussian smoothing (FWHM chosen by inner CV among fwhm_mm)
//   -> sampled every `stride` voxels (4 mm by default) inside a brain mask (voxels where the
//      training subjects' mean total tissue, smoothed, exceeds mask_fraction of its maximum)
//   -> each feature centred and scaled by the training subjects' mean / sd
//   -> ridge regression of age, λ chosen by inner CV (age-stratified folds of
//      trainer.h's split_subjects), solved in the dual (N × N Gram matrix) by
//      torch::linalg::eigh (one decomposition serves every λ), then stored as primal
//      weights so prediction needs no training data;
//   -> bias correction (checkpoint.h BiasCorrection) fitted on the inner-CV out-of-fold
//      predictions at the chosen (FWHM, λ).
// CPU, double precision for the linear algebra; deterministic for a given seed.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "model/checkpoint.h"

namespace brainage::model {

/// How each subject's maps are scaled before smoothing (VbmOptions::scaling).
enum class VbmScaling { kNone, kTotalTissue, kParenchyma };
/// "none" | "proportional" (kTotalTissue) | "parenchyma". Throws ModelError on any other name.
VbmScaling vbm_scaling_from_string(const std::string& name);
std::string to_string(VbmScaling scaling);

struct VbmOptions {
  /** Candidate smoothing FWHMs in mm, chosen by inner CV. Default = {4, 6, 8}. */
  std::vector<double> fwhm_mm{4.0, 6.0, 8.0};
  /** Candidate ridge penalties, relative: λ = value × trace(K) / n for the n × n Gram
      matrix K of the standardised training features. Default = {1e-3, 3e-3, ..., 10, 30}
      (half-decades). */
  std::vector<double> lambdas{1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0};
  /** Channels of the input maps used (0 CSF, 1 GM, 2 WM). Default = {0, 1, 2}. */
  std::vector<int64_t> channels{0, 1, 2};
  /** Sampling step on the model grid, in voxels (2 = 4 mm). Default = 2. */
  int64_t stride{2};
  /** Model-grid voxel edge in mm (converts FWHM to voxels). Default = 2. */
  double voxel_mm{2.0};
  /** Mask: mean smoothed total tissue (the sum of the maps' first three channels, CSF+GM+WM,
      whichever channels are read) above this fraction of its maximum. Default = 0.1. */
  double mask_fraction{0.1};
  /** Scale each feature by its training sd, floored at 1 % of the mean sd so a feature
      constant in training cannot dominate a new subject (true), or only centre it (false).
      Default = true. */
  bool standardize{true};
  /** Global normalisation (SPM's term): kTotalTissue ("proportional scaling") multiplies each
      subject's maps by 1500 mL / its CSF+GM+WM total, kParenchyma by 1200 mL / its GM+WM
      total, so head size, which does not follow age, stops being the largest source of
      variance. kParenchyma leaves out the CSF, whose outer rim follows the brain mask
      (a skull-on scan and its skull-stripped copy differ by 50-120 mL there,
      docs/ROBUSTNESS.md). Default = kNone. */
  VbmScaling scaling{VbmScaling::kNone};
  /** Average each subject's maps with their left-right mirror image (about the model grid's
      X centre, the MNI midline: the grid is symmetric) before smoothing, so a mirrored brain
      (a header with a wrong left-right flip) gets exactly the same age. Without it, a VBM
      model read mirrored IXI scans 6 y older on average, up to 15 y (eighteenth session,
      docs/ROBUSTNESS.md); with it the 5-fold CV MAE is the same (6.15 against 6.16 y).
      Default = false (`train --model-kind vbm` sets it). */
  bool left_right_symmetric{false};
  /** Inner CV folds for FWHM / λ and for the bias correction. Default = 5. */
  int64_t inner_folds{5};
  /** Seed of the inner folds. Default = 42. */
  uint64_t seed{42};
};

/// A fitted VBM model: everything prediction needs (no training data).
struct VbmModel {
  std::vector<int64_t> channels{0, 1, 2};
  std::array<int64_t, 3> grid{80, 96, 80};  // input [Z, Y, X]
  double fwhm_mm = 6.0;
  double voxel_mm = 2.0;
  int64_t stride = 2;
  double lambda_relative = 1.0;  // the chosen λ / (trace(K)/n)
  VbmScaling scaling = VbmScaling::kNone;  // VbmOptions::scaling (older checkpoints: their proportional_scaling flag)
  bool left_right_symmetric = false;       // VbmOptions::left_right_symmetric (absent in older checkpoints: false)
  torch::Tensor mask;            // bool [z, y, x] on the sampled grid
  torch::Tensor feature_mean;    // double [P], P = channels × mask voxels
  torch::Tensor feature_scale;   // double [P] (sd; 1 where the sd is 0)
  torch::Tensor weights;         // double [P]
  double intercept = 0;          // mean training age
  BiasCorrection bias_correction;

  /// Raw (uncorrected) ages [N] (double) for maps [N, C, Z, Y, X] with C ≥ max channel + 1
  /// and the model's grid. Throws ModelError on any other shape.
  torch::Tensor predict_raw(const torch::Tensor& maps) const;
  /// predict_raw, then the bias correction: [N] double.
  torch::Tensor predict(const torch::Tensor& maps) const;
  /// Hyperparameters and sizes (no tensors), for the checkpoint's JSON "model".
  nlohmann::json to_json() const;
  /// The tensors as a torch archive at `file` (not atomic: checkpoint.h writes via a temporary).
  void save_tensors(const std::filesystem::path& file) const;
  /// Inverse of to_json + save_tensors. Throws ModelError when a field or tensor is
  /// missing or the shapes disagree (mask voxels × channels ≠ P).
  static VbmModel load(const nlohmann::json& model_json, const std::filesystem::path& file);
};

/// Maps [N, 3, Z, Y, X] (CSF, GM, WM in mL per voxel) multiplied per subject so that its
/// CSF+GM+WM (kTotalTissue) sums to 1500 mL or its GM+WM (kParenchyma) to 1200 mL
/// (VbmOptions::scaling); the maps themselves (as float, any C) for kNone. Throws
/// ModelError when a subject's normalising total is not positive or the maps have < 3 channels.
torch::Tensor globally_scaled(const torch::Tensor& maps, VbmScaling scaling);

/// Maps [N, C, Z, Y, X] -> (maps + maps mirrored along X) / 2, float: the same for a brain
/// and its left-right mirror image (VbmOptions::left_right_symmetric).
torch::Tensor left_right_symmetrised(const torch::Tensor& maps);

/// Maps [N, C, Z, Y, X] (float) -> smoothed (Gaussian, FWHM in mm, truncated at 3σ, zero
/// outside the grid) and sampled every `stride` voxels (starting at voxel stride/2):
/// [N, C, ceil(Z/stride), ...] float. Throws ModelError unless maps are 5-D.
torch::Tensor smooth_and_sample(const torch::Tensor& maps, double fwhm_mm, double voxel_mm, int64_t stride);

/// Extra training scans of subjects already in the fit: augmentation copies, each made from a
/// subject's scan (e.g. its skull-stripped copy, or the scan times a random bias field) and
/// run through the same pipeline, so the ridge learns what such a change does to the maps
/// and that it does not change the age. A copy takes its subject's age and inner-CV fold: it
/// trains only where its subject trains and is never scored (every reported MAE, the
/// out-of-fold predictions and the bias correction are the subjects' own scans).
struct VbmAugmentation {
  torch::Tensor maps;                  // [M, C, Z, Y, X], as fit_vbm's maps (undefined or M = 0: none)
  std::vector<int64_t> subject_index;  // [M]: the row of fit_vbm's maps / ages each copy was made from
};

struct VbmFitResult {
  VbmModel model;
  std::vector<double> inner_oof_predictions;  // raw, per training subject, at the chosen setting
  nlohmann::json selection;  // {"fwhm_mm": [...], "lambdas": [...], "inner_cv_mae": [[...]...], chosen}
};

/// Fits on maps [N, C, Z, Y, X] (float, N = ages.size() ≥ 2 × inner_folds) and ages in
/// years, plus any augmentation copies (VbmAugmentation; the feature mask follows the N
/// subjects' own maps). Throws ModelError on shapes, too few subjects, empty candidates, an
/// empty mask or a copy whose subject_index is not a row of `maps`.
VbmFitResult fit_vbm(const torch::Tensor& maps, const std::vector<double>& ages, const VbmOptions& options = {},
                     const VbmAugmentation& augmentation = {});

/// Ridge fit of centred targets `y` [n] on standardised features `x` [n, P] (double) in
/// the dual: returns primal weights [P] for each relative λ (λ × trace(XXᵀ)/n), via one
/// torch::linalg::eigh of XXᵀ. Exposed for tests.
std::vector<torch::Tensor> ridge_dual_weights(const torch::Tensor& x, const torch::Tensor& y,
                                              const std::vector<double>& lambdas_relative);

}  // namespace brainage::model
