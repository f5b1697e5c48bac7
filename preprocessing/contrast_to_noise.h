#pragma once
// Contrast-to-noise ratio of a T1 on the model grid: (median WM − median GM) / σ_noise, with
// σ_noise from the differences of neighbouring voxels inside the eroded white matter
// (1.4826 · MAD of the differences / √2: the "difference" noise estimate, Dietrich et al.
// 2007, JMRI 26:375, taken within one tissue so that anatomy adds little). Needs no
// background (a skull-stripped or cropped input has none, unlike MRIQC's air-based CNR).
// The 147 IXI-HH training scans: 9.7-17.2; Colin27 20.2; MRISnapshot 1 mm 15.3; IXI012 with
// Gaussian noise at SNR 5: 3.2, which read 7.3 y younger (eighteenth session).
#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

/// CNR of `t1` (model grid, normalised) with `labels` (same grid; tissue_classification.h:
/// 2 GM, 3 WM). 0 when there are too few eroded-WM voxel pairs (< 100) or no noise.
double contrast_to_noise_ratio(const ImageType* t1, const MaskType* labels);

}  // namespace brainage::preprocessing
