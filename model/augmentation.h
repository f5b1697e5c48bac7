#pragma once
// Augmentation for brains already registered to the model grid, on tensors [B,C,Z,Y,X]:
// a small random affine (rotation, scale, translation; trilinear resampling), a
// left-right flip (the X axis: the model grid is symmetric about the MNI midline), and
// intensity jitter (a random gain and offset). Every channel of a sample gets the same
// affine and flip (the channels are images of one brain); intensity jitter only on the
// channels asked for (a T1, not tissue maps in mL). Deterministic given the generator:
// the draws per sample do not depend on C.
#include <torch/torch.h>

#include <random>
#include <vector>

namespace brainage::model {

struct AugmentationOptions {
  bool enabled = true;                /** Default = true. */
  double flip_probability = 0.5;      /** Default = 0.5. Probability of a left-right flip. */
  double max_rotation_deg = 4.0;      /** Default = 4. Uniform rotation about each axis in [-x, x] degrees. */
  double max_scale = 0.04;            /** Default = 0.04. Isotropic scale in [1-x, 1+x]. */
  double max_translation_vox = 3.0;   /** Default = 3. Shift per axis in [-x, x] voxels. */
  double affine_probability = 0.8;    /** Default = 0.8. Probability of applying the affine at all. */
  double intensity_scale = 0.1;       /** Default = 0.1. Gain in [1-x, 1+x]. */
  double intensity_shift = 0.1;       /** Default = 0.1. Offset in [-x, x] (intensity units of the input). */
};

/// Returns an augmented copy of `volumes` [B,C,Z,Y,X] (float32, CPU). Each sample draws its
/// own parameters from `rng`; the input is not modified. `jitter_channels` [C] says which
/// channels get the intensity jitter; empty (the default) = every channel.
torch::Tensor augment_batch(const torch::Tensor& volumes, const AugmentationOptions& options, std::mt19937_64& rng,
                            const std::vector<bool>& jitter_channels = {});

}  // namespace brainage::model
