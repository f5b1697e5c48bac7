#pragma once
// Load + validate: the one entry point every stage uses to open a scan. A scan is a
// .nii / .nii.gz file or a folder holding one DICOM series. Anything that breaks a rule
// throws InvalidInputError with one line naming the file and the rule.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "preprocessing/image_types.h"
#include "preprocessing/nifti_header.h"

namespace brainage::preprocessing {

struct ScanValidationOptions {
  /** Accept 4D/5D files and use their first volume (for `info`). Default = false. */
  bool allow_multivolume{false};
  /** Reject images containing NaN or Inf voxels. Default = true. */
  bool reject_non_finite{true};
  /** Tolerance on |DᵀD − I| for the direction matrix. Default = 1e-3. */
  double direction_tolerance{1e-3};
  /** Smallest number of voxels along any axis of a 3D scan. Default = 8. */
  std::int64_t min_axis_voxels{8};
  /** Refuse a scan whose processing would need more memory than this, in MiB, estimated
      up front from its header as 32 bytes per voxel (the float image and the pipeline's
      working copies), instead of swapping or being killed. 0 disables. Default = 4096. */
  std::int64_t memory_budget_mib{4096};
  /** Header checks (voxel-count limit, data length). */
  NiftiHeaderLimits header{};
};

struct LoadedScan {
  ImageType::Pointer image;          // the first (or only) 3D volume, scaling applied
  std::filesystem::path source;      // what the user gave
  std::string format;                // "NIfTI-1" or "DICOM series (N files)" (NIfTI-2 is refused)
  std::string datatype;              // stored voxel type, e.g. "uint8 (scl_slope 13.7)"
  int spatial_dims{3};               // 2..5 as stored
  std::int64_t volumes{1};           // volumes along axes 4..7
  std::vector<std::string> warnings; // things a user should know, e.g. "4D: 3 volumes, first used"
  bool orientation_known{true};      // false for a NIfTI whose qform_code and sform_code are both 0
};

/// Reads and validates a scan. See the header comment for what is rejected. A NIfTI's voxels
/// are placed by the rule of nifti_xform.h (the sform when sform_code > 0, else the
/// qform), whatever ITK chose; a qform/sform disagreement or an unusable sform adds a
/// line to `warnings`. The returned image carries the file's header (native_header.h's
/// attached_nifti_header), so native outputs can be written with the input's qform/sform.
LoadedScan load_scan(const std::filesystem::path& path, const ScanValidationOptions& options = {});

}  // namespace brainage::preprocessing
