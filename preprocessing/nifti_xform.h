#pragma once
// Which of a NIfTI header's two transforms places the voxels in space, and the ITK
// geometry that follows from it. The rule is nibabel's (Nifti1Header.get_best_affine)
// and FSL's: the sform when sform_code > 0, else the qform when qform_code > 0, else
// nibabel's base affine (radiological axes, a warning that the orientation is a guess). ITK
// holds only a rotation, so an sform that shears the voxel axes cannot be followed: the
// qform is, with a warning. When the two transforms disagree (some corner of the voxel
// box placed more than 1 mm apart, or an axis turned: a different order/direction), a
// warning names both. ITK 5.2's NiftiImageIO makes its own choice (measured in nifti_xform_test.cpp);
// scan_reader imposes this one on what ITK read.
#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "preprocessing/image_types.h"
#include "preprocessing/nifti_header.h"

namespace brainage::preprocessing {

struct NiftiXformOptions {
  /** qform and sform disagree when they place a corner of the voxel box more than this
      many mm apart. Default = 1.0. */
  double disagreement_mm{1.0};
  /** qform and sform also disagree when a unit axis direction differs by more than this
      in any component (about 0.06 degrees). Default = 1e-3. */
  double max_direction_difference{1e-3};
  /** Largest |cosine| between two sform axes still taken as perpendicular; above it the
      sform shears the axes. Default = 1e-4. */
  double max_shear_cosine{1e-4};
};

/// Voxel grid placement in ITK's terms: spacing (mm), origin (mm) and direction (column j
/// = voxel axis j, unit length) in ITK's LPS world.
struct VoxelPlacement {
  ImageType::SpacingType spacing;
  ImageType::PointType origin;
  ImageType::DirectionType direction;
};

struct NiftiXformChoice {
  /// "sform", "qform", or "base" when both codes are 0: nibabel's base affine
  /// (Nifti1Header.get_base_affine; FSL alike): voxel axes L, A, S at pixdim, centred on 0.
  std::string used{"none"};
  VoxelPlacement placement;           // valid unless used == "none" (a default-constructed choice)
  std::vector<std::string> warnings;  // one line each: disagreement, unusable sform, no orientation
};

/// Applies the rule above to `header`. Never throws; a sheared sform with no qform to fall
/// back to is followed (the caller's orthonormality check then refuses the scan).
NiftiXformChoice choose_nifti_xform(const NiftiHeader& header, const NiftiXformOptions& options = {});

/// Spacing (column norms), origin and unit directions of a voxel-index -> RAS mm matrix,
/// converted to ITK's LPS world (x and y negated). Columns are normalised, not
/// orthogonalised: a shear stays visible in the direction.
VoxelPlacement placement_from_affine(const std::array<std::array<double, 4>, 4>& ras_affine);

/// The three-letter axis code of a voxel-index -> RAS mm matrix (nibabel's aff2axcodes),
/// e.g. "PSR" for IXI's sagittal storage.
std::string affine_axis_codes(const std::array<std::array<double, 4>, 4>& ras_affine);

/// Both transforms as stored, for records: {"qform": {"code", "matrix" (4x4, RAS mm)},
/// "sform": {...}, "used": "sform" | "qform" | "none"}.
nlohmann::json nifti_xforms_json(const NiftiHeader& header);

}  // namespace brainage::preprocessing
