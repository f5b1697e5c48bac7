#pragma once
// A human-readable summary of a loaded scan: what `brainage info` prints.
#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "preprocessing/scan_reader.h"

namespace brainage::preprocessing {

struct ScanInfo {
  std::string path;
  std::string format;
  std::string datatype;
  std::array<std::size_t, 3> size{};
  std::array<double, 3> spacing{};          // mm
  std::array<double, 3> origin{};           // mm, ITK's LPS world
  std::array<std::array<double, 3>, 3> direction{};  // rows of the direction matrix (LPS)
  std::string orientation;                  // e.g. "RAS": where each voxel axis points
  std::array<double, 3> extent_mm{};        // size × spacing
  double min_intensity{0}, max_intensity{0};
  int spatial_dims{3};
  std::int64_t volumes{1};
  nlohmann::json nifti_xforms;              // a NIfTI's qform and sform (nifti_xforms_json); null otherwise
  std::vector<std::string> warnings;
};

/// The three-letter orientation code of a direction matrix in ITK's LPS world, in the
/// convention of nibabel's aff2axcodes: letter i names the direction voxel axis i points
/// towards (R/L, A/P, S/I). A canonical NIfTI (identity sform) is "RAS". Each world axis
/// is named once: voxel axes are matched to world axes as canonical_axis_reindexing does
/// (largest summed |cosine|), so exact 45-degree obliques get a deterministic code.
std::string orientation_code(const ImageType::DirectionType& direction);

/// Summarises a loaded scan, adding warnings for anisotropic voxels (ratio > 1.5 by default).
ScanInfo describe_scan(const LoadedScan& scan, double anisotropy_warning_ratio = 1.5);

nlohmann::json to_json(const ScanInfo& info);
std::string to_text(const ScanInfo& info);

}  // namespace brainage::preprocessing
