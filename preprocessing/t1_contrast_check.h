#pragma once
// Is the scan T1-weighted? In a T1-weighted image white matter is brighter than grey
// matter, which is brighter than CSF. T2-weighted, PD, FLAIR and inverted images all put
// grey matter above white matter. A model trained on T1 contrast gives a confident but
// meaningless age for those, so they are refused.
//
// Method: three regions defined once on the model grid from the template (Colin27),
// independent of the subject's own (intensity-sorted, so contrast-blind) tissue classes:
//   white matter  = brain (ch2bet > 0) eroded by 4 mm, outside every AAL label, in the
//                   brightest 30 % of ch2bet's brain intensities;
//   grey matter   = AAL cortical labels (1-70, 79-90: the cerebral cortex), inside the brain;
//   CSF           = the darkest 10 % of ch2bet's brain intensities at least 15 mm inside
//                   the brain surface (the lateral ventricles).
// The subject's median intensity in each region (after the affine registration; only
// voxels inside its own brain mask) is measured; the rule is median(WM) / median(GM)
// above a bound. The CSF median is reported but not judged: after an affine registration
// the template's ventricles overlap the subject's deep grey matter and white matter by an
// amount that follows ventricle size (age), so GM/CSF of a normal T1 can be near 1.
//
// CSF/WM contrast: the 1st percentile of the CSF region (the darkest ventricle voxels,
// pure CSF even in a young brain with small ventricles) over median(WM). A quantile of a
// region fixed by the registration follows any monotone change of the intensities, so this
// measures the scanner's CSF-to-WM contrast and not the brain's tissue classes (the K-means
// means of tissue_classification.h move only ~30 % of a change of the CSF level, which is
// why the model's tissue maps follow the scanner: docs/ROBUSTNESS.md, "Another scanner's
// contrast"). A model records its training scans' range (app/prediction/contrast_domain_check.h).
#include <filesystem>
// AAL: Tzourio-Mazoyer et al., NeuroImage 15:273 (2002), as shipped by mricron-data.
#include <string>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

struct T1ContrastOptions {
  /** Smallest median(WM) / median(GM) of a T1. Default = 1.05 (measured: 33 IXI-HH 1.26-1.46, Colin27 1.29, MRISnapshot 1.41, inverted field case 0.92). */
  double min_wm_gm_ratio{1.05};
  /** Quantile of the CSF region's intensities taken as the CSF level of csf_wm_ratio.
      Default = 0.01 (147 IXI-HH scans: CSF/WM 0.32-0.41, sd 0.017; correlation with age
      -0.41 against -0.58 for the 10th percentile, which reaches into the tissue around
      small ventricles). */
  double csf_level_quantile{0.01};
};

/// The template's three regions on the model grid (1 = in the region).
struct ContrastRegions {
  MaskType::Pointer white_matter, grey_matter, csf;
};

/// Builds the regions from ch2bet and AAL, both already on the model grid (make once per
/// process). Throws ProcessingError when a region comes out empty (wrong template files).
ContrastRegions make_contrast_regions(const ImageType* ch2bet_model, const MaskType* aal_model);

/// The regions of `template_dir`'s ch2bet.nii.gz and aal.nii.gz, carried to the model grid
/// once per process and folder (thread-safe; the reference stays valid). Throws
/// InvalidInputError naming a missing template file, ProcessingError as make_contrast_regions.
const ContrastRegions& template_contrast_regions(const std::filesystem::path& template_dir);

struct T1ContrastResult {
  double wm_median{0}, gm_median{0}, csf_median{0};  // subject intensities (the image's units)
  double csf_level{0};     // csf_level_quantile of the CSF region (the image's units)
  double wm_gm_ratio{0}, gm_csf_ratio{0};
  double csf_wm_ratio{0};  // csf_level / wm_median (0 when wm_median <= 0)
  bool t1_weighted{false};
  std::string rule;  // empty when t1_weighted; else the broken rule with the measured values
};

/// Measures `image` (model grid) in `regions` ∩ `brain_mask` (model grid). Never throws;
/// a region with no voxel inside the brain mask counts as failing its rule.
T1ContrastResult check_t1_contrast(const ImageType* image, const MaskType* brain_mask, const ContrastRegions& regions,
                                   const T1ContrastOptions& options = {});

/// The same on a brain-only model-grid T1 (t1_mni2mm.nii.gz: the brain is its voxels > 0),
/// with `template_dir`'s regions: what `train` records and `predict` compares, from the one
/// image every prediction path has. Throws as template_contrast_regions.
T1ContrastResult check_model_grid_t1_contrast(const ImageType* t1_model, const std::filesystem::path& template_dir,
                                              const T1ContrastOptions& options = {});

}  // namespace brainage::preprocessing
