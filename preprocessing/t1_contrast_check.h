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
// AAL: Tzourio-Mazoyer et al., NeuroImage 15:273 (2002), as shipped by mricron-data.
#include <string>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

struct T1ContrastOptions {
  /** Smallest median(WM) / median(GM) of a T1. Default = 1.05 (measured: 33 IXI-HH 1.26-1.46, Colin27 1.29, MRISnapshot 1.41, inverted field case 0.92). */
  double min_wm_gm_ratio{1.05};
};

/// The template's three regions on the model grid (1 = in the region).
struct ContrastRegions {
  MaskType::Pointer white_matter, grey_matter, csf;
};

/// Builds the regions from ch2bet and AAL, both already on the model grid (make once per
/// process). Throws ProcessingError when a region comes out empty (wrong template files).
ContrastRegions make_contrast_regions(const ImageType* ch2bet_model, const MaskType* aal_model);

struct T1ContrastResult {
  double wm_median{0}, gm_median{0}, csf_median{0};  // subject intensities (the image's units)
  double wm_gm_ratio{0}, gm_csf_ratio{0};
  bool t1_weighted{false};
  std::string rule;  // empty when t1_weighted; else the broken rule with the measured values
};

/// Measures `image` (model grid) in `regions` ∩ `brain_mask` (model grid). Never throws;
/// a region with no voxel inside the brain mask counts as failing its rule.
T1ContrastResult check_t1_contrast(const ImageType* image, const MaskType* brain_mask, const ContrastRegions& regions,
                                   const T1ContrastOptions& options = {});

}  // namespace brainage::preprocessing
