#pragma once
// Affine registration of a scan to the MNI template (Colin27): moments-initialised rigid
// (versor) then affine, Mattes mutual information, multi-resolution, with a fixed seed for
// the metric's random sampling so that the same input gives the same transform.
// Convention (ITK's): the result maps points of the fixed (template/MNI) space to points
// of the moving (native scan) space.
#include <array>
#include <string>
#include <vector>

#include <itkAffineTransform.h>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

using AffineTransformType = itk::AffineTransform<double, 3>;

struct RegistrationStageOptions {
  /** Shrink factors of the pyramid levels, relative to working_spacing_mm. */
  std::vector<unsigned> shrink_factors;
  /** Gaussian smoothing sigma (mm) at each level. */
  std::vector<double> smoothing_sigmas_mm;
  /** Maximum optimiser iterations at each level. */
  std::vector<unsigned> iterations;
  /** Initial optimiser step (in physical-shift units, mm). */
  double learning_rate{1.0};
  /** The optimiser stops when its step (≈ mm of shift) falls below this. Default = 0.02. */
  double minimum_step{0.02};
};

/// A rigid starting pose, relative to the head-centroid alignment.
struct RigidStart {
  std::array<double, 3> rotation_deg{0, 0, 0};  // about the L-R, A-P, S-I axes, applied in that order
  std::array<double, 3> shift_mm{0, 0, 0};      // added to the centroid translation (LPS mm)
};

/// The rigid stage's default start poses: the head-centroid alignment unrotated and
/// rotated by ±20° about the L-R (pitch), A-P (roll) and S-I (yaw) axes, 7 in all. Each
/// costs one coarse `start_search` (8 mm, at most 40 iterations); the best is refined.
std::vector<RigidStart> default_rigid_starts();

struct RegistrationOptions {
  /** Both images are resampled (smoothed) to this isotropic voxel size before registration. Default = 2.0 mm. */
  double working_spacing_mm{2.0};
  /** Rigid stage. Default = shrink {4, 2}, sigmas {4, 2} mm, iterations {200, 100}, learning rate 2, minimum step 0.02. */
  RegistrationStageOptions rigid{{4, 2}, {4.0, 2.0}, {200, 100}, 2.0};
  /** Affine stage. Default = shrink {2, 1}, sigmas {2, 1} mm, iterations {100, 50}, learning rate 1,
      minimum step 0.02 (0.005 narrowed the age spread of header-rotated copies but made
      `--threads 1` and `2` end 0.6 y apart on IXI012; docs/ROBUSTNESS.md, ninth session). */
  RegistrationStageOptions affine{{2, 1}, {2.0, 1.0}, {100, 50}, 1.0};
  /** Mattes MI histogram bins. Default = 32. */
  unsigned histogram_bins{32};
  /** Before registering, both images on the working grid are replaced by the ranks of
      their intensities (head voxels, above `rank_floor_fraction` of the image's 99th
      percentile, get their mid-rank scaled to (0, 1]; the rest 0). The metric then sees
      only the order of the tissues' intensities, so a monotone change of the scan's
      contrast curve (gain, gamma, another scanner's T1 weighting) leaves the registration
      the same. Without it a gamma 0.7 contrast change scaled the affine by up to 7 % of
      brain volume (docs/ROBUSTNESS.md, eleventh session). The outputs are resampled from
      the scan itself, never from the ranks. Ranks in every stage, the head centroids
      included: ranks in the affine stages only let 3 of the 149 IXI-HH scans fail QC
      (1 with ranks everywhere, as with intensities), though more header rotations of
      45-90 deg registered. Default = false: with it on, `--threads 1` and `2` gave IXI012
      ages 0.20 y apart (mask Dice 0.995; N4's thread-dependent last digits take another
      optimiser path) and the retrained default moved ch2bet 1.56 y from Colin27 (tolerance
      1.5): both field-case tests failed, found at the end of the eleventh session. */
  bool rank_intensities{false};
  /** Head voxels for rank_intensities: above this fraction of the 99th percentile. Default = 0.1. */
  double rank_floor_fraction{0.1};
  /** Random (seeded) metric samples per pyramid level, at most all voxels of the level. Default = 20000. */
  double max_samples{20000};
  /** Seed of the metric's random sampling. Default = 20240917. */
  int seed{20240917};
  /** Threads for the registration's resampling and smoothing (0 = ITK's default). The
      Mattes metric itself always runs as one work unit (ITK 5.2 sums its per-thread
      derivative histograms under a lock in finishing order), so the transform is
      bit-identical whatever this is. Default = 0. */
  int threads{0};
  /** Initialise the translation from head centroids (true) or from image centres (false). Default = true. */
  bool moments_initialisation{true};
  /** Height (mm) below the top of the head used for the centroid, so a neck in the field of view does not pull it down. Default = 180. */
  double head_centroid_depth_mm{180.0};
  /** Starting poses of the rigid stage. With more than one, each start runs the short
      `start_search` stage and only the best-scoring one (lowest Mattes MI) is refined: a
      head tilted or placed far from the template's pose otherwise lands in a wrong local
      optimum. Default = default_rigid_starts() (the head centroids, unrotated and ±20°
      about each axis: a header rolled by 30° converged 11 mm off with a QC-passing metric
      from the unrotated start alone; docs/ROBUSTNESS.md). */
  std::vector<RigidStart> rigid_starts = default_rigid_starts();
  /** Another start replaces the first one only when its start_search Mattes MI is lower by
      more than this. Coarse scores of normal IXI scans: the best rotated start beats the
      unrotated one by 0.01-0.03; headers rolled/yawed 30-45 deg by 0.03-0.08 (docs/ROBUSTNESS.md).
      Default = 0.02. */
  double start_margin{0.02};
  /** The stage that ranks several starts. Default = shrink {4}, sigma {4} mm, 40 iterations, learning rate 2. */
  RegistrationStageOptions start_search{{4}, {4.0}, {40}, 2.0};
};

/// The starts a failed registration is retried from: head pitch (nodding) of ±10…±40°,
/// roll and yaw of ±12°, ±45° and ±90° (a header that swaps two axes: a head lying on its
/// side), the centroid shifted ±15/±30 mm along S-I and ±15 mm along A-P (a neck or
/// shoulders in the field of view move the centroid), and pitch of ±45° and ±90° (a header
/// that swaps A-P and S-I), besides the identity.
std::vector<RigidStart> retry_rigid_starts();

struct RegistrationResult {
  AffineTransformType::Pointer mni_to_native;  // fixed (MNI) points -> moving (native) points
  double rigid_metric{0};                      // final Mattes MI of the rigid stage (more negative = better)
  RigidStart start;                            // the rigid start that was refined
  double final_metric{0};                      // final Mattes MI of the affine stage
  unsigned rigid_iterations{0}, affine_iterations{0};
  std::string stop_condition;
};

/// True when `image` has isotropic voxels of `spacing_mm`: the registration then uses it as it is.
bool is_on_working_grid(const itk::ImageBase<3>* image, double spacing_mm);

/// `image` on an isotropic grid of `spacing_mm` covering the same extent with the same
/// direction: block means where every axis's spacing divides `spacing_mm` (a 1 mm scan at
/// 2 mm), else smoothed (sigma from the spacing ratio, where finer) and resampled. What
/// the registration compares. An image already on such a grid comes back as it is, so a
/// caller registering the same image several times (the template in a cohort, a scan's
/// retries and refinement passes) converts it once and passes the result.
ImageType::ConstPointer to_working_grid(const ImageType* image, double spacing_mm);

/// Registers `moving` (a scan in any orientation, physical geometry intact) to `fixed`
/// (the template). `fixed_mask` (optional, template space) restricts the metric. Either
/// image may already be on the working grid (to_working_grid); the mask is used as it is
/// when it shares the working fixed image's grid.
RegistrationResult register_to_template(const ImageType* fixed, const ImageType* moving,
                                        const RegistrationOptions& options = {},
                                        const MaskType* fixed_mask = nullptr);

/// `image` cut to the voxel planes, along its voxel axis closest to superior-inferior,
/// whose centres lie within `height_mm` below the top of the head (the most superior voxel
/// above 10 % of the 99th percentile), as FSL's robustfov cuts the neck (170 mm there).
/// Physical geometry is kept (a transform found on the cut image applies to the whole).
/// The image itself when nothing would be cut or no head is found. Never throws.
ImageType::ConstPointer cut_below_head_top(const ImageType* image, double height_mm);

/// Continues from `initial` (fixed -> moving) with the affine stage only: no centroid
/// initialisation, no rigid search. With `moving_cut` (moving space), the moving image is
/// zeroed outside that mask dilated by `cut_dilation_mm`, on the working grid (cheap at
/// any input resolution). The pipeline's refinement passes use it.
RegistrationResult refine_affine(const ImageType* fixed, const ImageType* moving, const AffineTransformType* initial,
                                 const RegistrationOptions& options = {}, const MaskType* fixed_mask = nullptr,
                                 const MaskType* moving_cut = nullptr, double cut_dilation_mm = 0.0);

/// Mean displacement (mm) between two transforms over the voxels of `mask` > 0 (in the
/// fixed space): the registration-accuracy measure used by tests and benchmarks.
double mean_displacement_mm(const AffineTransformType* a, const AffineTransformType* b, const MaskType* mask);

/// `mni_to_native` applied after an isotropic scaling of the fixed (template) space by
/// `scale` about `centre`: the same pose with the template `scale` times its size.
AffineTransformType::Pointer scaled_about(const AffineTransformType* mni_to_native, const itk::Point<double, 3>& centre,
                                          double scale);

}  // namespace brainage::preprocessing
