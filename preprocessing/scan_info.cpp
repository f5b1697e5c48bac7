#include "preprocessing/scan_info.h"

#include <itkMinimumMaximumImageCalculator.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "preprocessing/canonical_orientation.h"
#include "preprocessing/native_header.h"
#include "preprocessing/nifti_xform.h"

namespace brainage::preprocessing {

std::string orientation_code(const ImageType::DirectionType& direction) {
  // LPS world: +x = Left, +y = Posterior, +z = Superior. The axis assignment is the
  // canonical re-indexing's (one world axis per voxel axis, ties broken the same way), so
  // an oblique header never gets a code that repeats an axis ("PPR").
  static const char kPositive[3] = {'L', 'P', 'S'};
  static const char kNegative[3] = {'R', 'A', 'I'};
  const AxisReindexing re = canonical_axis_reindexing(direction);
  std::string code(3, '?');
  for (unsigned w = 0; w < 3; ++w) {
    const unsigned axis = re.source_axis[w];
    code[axis] = direction[w][axis] >= 0 ? kPositive[w] : kNegative[w];
  }
  return code;
}

ScanInfo describe_scan(const LoadedScan& scan, double anisotropy_warning_ratio) {
  ScanInfo info;
  const auto& image = *scan.image;
  info.path = scan.source.string();
  info.format = scan.format;
  info.datatype = scan.datatype;
  info.spatial_dims = scan.spatial_dims;
  info.volumes = scan.volumes;
  info.warnings = scan.warnings;
  const auto size = image.GetLargestPossibleRegion().GetSize();
  for (unsigned i = 0; i < 3; ++i) {
    info.size[i] = size[i];
    info.spacing[i] = image.GetSpacing()[i];
    info.origin[i] = image.GetOrigin()[i];
    info.extent_mm[i] = size[i] * info.spacing[i];
    for (unsigned j = 0; j < 3; ++j) info.direction[i][j] = image.GetDirection()[i][j];
  }
  info.orientation = orientation_code(image.GetDirection());
  if (const auto header = attached_nifti_header(scan.image)) info.nifti_xforms = nifti_xforms_json(*header);
  auto calc = itk::MinimumMaximumImageCalculator<ImageType>::New();
  calc->SetImage(scan.image);
  calc->Compute();
  info.min_intensity = calc->GetMinimum();
  info.max_intensity = calc->GetMaximum();

  const double smin = *std::min_element(info.spacing.begin(), info.spacing.end());
  const double smax = *std::max_element(info.spacing.begin(), info.spacing.end());
  if (smax / smin > anisotropy_warning_ratio) {
    std::ostringstream w;
    w << "anisotropic voxels (" << smin << " to " << smax << " mm, ratio " << std::setprecision(3) << smax / smin
      << "): resampling to 2 mm blurs the thin axis less than the thick one";
    info.warnings.push_back(w.str());
  }
  if (info.max_intensity <= info.min_intensity) info.warnings.push_back("image is constant (no contrast)");
  return info;
}

nlohmann::json to_json(const ScanInfo& info) {
  nlohmann::json j;
  j["path"] = info.path;
  j["format"] = info.format;
  j["datatype"] = info.datatype;
  j["size"] = info.size;
  j["spacing_mm"] = info.spacing;
  j["origin_mm_lps"] = info.origin;
  j["direction_lps"] = info.direction;
  j["orientation"] = info.orientation;
  j["extent_mm"] = info.extent_mm;
  j["intensity_range"] = {info.min_intensity, info.max_intensity};
  j["spatial_dims"] = info.spatial_dims;
  j["volumes"] = info.volumes;
  if (!info.nifti_xforms.is_null()) j["nifti_xforms"] = info.nifti_xforms;
  j["warnings"] = info.warnings;
  return j;
}

std::string to_text(const ScanInfo& info) {
  std::ostringstream o;
  auto triple = [&](const auto& a, const char* sep, const char* unit) {
    std::ostringstream t;
    t << a[0] << sep << a[1] << sep << a[2] << unit;
    return t.str();
  };
  o << "file         " << info.path << "\n"
    << "format       " << info.format << "\n"
    << "datatype     " << info.datatype << "\n"
    << "size         " << triple(info.size, "x", " voxels") << "\n"
    << "spacing      " << triple(info.spacing, " x ", " mm") << "\n"
    << "origin       " << triple(info.origin, ", ", " mm (LPS)") << "\n"
    << "orientation  " << info.orientation << "\n";
  if (!info.nifti_xforms.is_null())
    o << "transforms   qform code " << info.nifti_xforms["qform"]["code"] << ", sform code "
      << info.nifti_xforms["sform"]["code"] << "; placed by "
      << (info.nifti_xforms["used"] == "base" ? std::string("pixdim alone (axes read as LAS, as nibabel does)")
                                              : "the " + info.nifti_xforms["used"].get<std::string>())
      << "\n";
  o << "extent       " << triple(info.extent_mm, " x ", " mm") << "\n"
    << "intensities  " << info.min_intensity << " .. " << info.max_intensity << "\n";
  if (info.volumes > 1) o << "volumes      " << info.volumes << "\n";
  for (const auto& w : info.warnings) o << "warning      " << w << "\n";
  return o.str();
}

}  // namespace brainage::preprocessing
