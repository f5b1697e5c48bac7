#pragma once
// How much of the brain the scan's field of view holds. A scan whose field of view cuts
// off the vertex, the cerebellum or half of the brain still registers (the metric only
// sees what is there) and still gets a brain mask, but every tissue volume and every
// model input is then missing a part: such a scan must be flagged, not answered.
//
// Method: every voxel of the template brain (Colin27 ch2bet > 0, on any grid) is carried
// into the scan through the registration's MNI -> native affine; the fraction that lands
// outside the scan's voxel box (beyond half a voxel of its outermost centres) is the brain
// left out of the field of view. The same idea as MRIQC's/fMRIPrep's "brain coverage"
// checks, done with the affine the pipeline already has.
#include <string>

#include "preprocessing/image_types.h"
#include "preprocessing/template_registration.h"

namespace brainage::preprocessing {

struct BrainCoverage {
  double outside_fraction{0};  // 0..1 of the template brain's voxels outside the field of view
  double outside_ml{0};        // the same in template (MNI) mL
  std::string side;            // where the missing part is: "superior", "inferior", "anterior", ... ("" when none)
};

/// Coverage of `template_brain` (mask in MNI space, 1 = brain) by `scan`'s voxel box through
/// `mni_to_native` (ITK convention: MNI points -> scan points). Never throws; an empty
/// template mask gives outside_fraction 0.
BrainCoverage brain_coverage(const MaskType* template_brain, const AffineTransformType* mni_to_native,
                             const itk::ImageBase<3>* scan);

}  // namespace brainage::preprocessing
