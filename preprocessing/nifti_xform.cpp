#include "preprocessing/nifti_xform.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "preprocessing/scan_info.h"

namespace brainage::preprocessing {
namespace {

using Matrix4 = std::array<std::array<double, 4>, 4>;

/// Largest distance (mm) between where `a` and `b` put the 8 corner voxels of the box.
double corner_distance_mm(const Matrix4& a, const Matrix4& b, const NiftiHeader& header) {
  double worst = 0;
  for (int corner = 0; corner < 8; ++corner) {
    double v[3];
    for (int k = 0; k < 3; ++k) v[k] = (corner >> k & 1) ? static_cast<double>(header.dim[k] - 1) : 0.0;
    double d2 = 0;
    for (int r = 0; r < 3; ++r) {
      double pa = a[r][3], pb = b[r][3];
      for (int k = 0; k < 3; ++k) {
        pa += a[r][k] * v[k];
        pb += b[r][k] * v[k];
      }
      d2 += (pa - pb) * (pa - pb);
    }
    worst = std::max(worst, std::sqrt(d2));
  }
  return worst;
}

/// Largest |cosine| between two of the matrix's first three columns.
double worst_axis_cosine(const Matrix4& m) {
  double worst = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 3; ++j) {
      double dot = 0, ni = 0, nj = 0;
      for (int r = 0; r < 3; ++r) {
        dot += m[r][i] * m[r][j];
        ni += m[r][i] * m[r][i];
        nj += m[r][j] * m[r][j];
      }
      const double c = ni > 0 && nj > 0 ? std::abs(dot) / std::sqrt(ni * nj) : 1.0;
      worst = std::max(worst, c);
    }
  return worst;
}

std::string describe(const char* name, int code, const Matrix4& m) {
  char text[160];
  std::snprintf(text, sizeof text, "%s (code %d, axes %s, origin %.1f, %.1f, %.1f mm RAS)", name, code,
                affine_axis_codes(m).c_str(), m[0][3], m[1][3], m[2][3]);
  return text;
}

nlohmann::json matrix_json(const Matrix4& m) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : m) rows.push_back(row);
  return rows;
}

}  // namespace

VoxelPlacement placement_from_affine(const Matrix4& ras_affine) {
  VoxelPlacement p;
  static const double kRasToLps[3] = {-1.0, -1.0, 1.0};
  for (unsigned j = 0; j < 3; ++j) {
    double norm = 0;
    for (unsigned r = 0; r < 3; ++r) norm += ras_affine[r][j] * ras_affine[r][j];
    norm = std::sqrt(norm);
    p.spacing[j] = norm;
    for (unsigned r = 0; r < 3; ++r) p.direction[r][j] = norm > 0 ? kRasToLps[r] * ras_affine[r][j] / norm : 0.0;
  }
  for (unsigned r = 0; r < 3; ++r) p.origin[r] = kRasToLps[r] * ras_affine[r][3];
  return p;
}

std::string affine_axis_codes(const Matrix4& ras_affine) {
  return orientation_code(placement_from_affine(ras_affine).direction);
}

NiftiXformChoice choose_nifti_xform(const NiftiHeader& header, const NiftiXformOptions& options) {
  NiftiXformChoice choice;
  const bool has_q = header.qform_code > 0, has_s = header.sform_code > 0;
  if (!has_q && !has_s) {
    // nibabel's Nifti1Header.get_base_affine (FSL reads such a file the same way): the
    // voxel axes taken as L, A, S (radiological), pixdim apart, the grid centred on 0.
    Matrix4 base{};
    const double flip[3] = {-1.0, 1.0, 1.0};
    for (int a = 0; a < 3; ++a) {
      const double step = flip[a] * header.pixdim[a], n = static_cast<double>(header.dim[a]);
      base[a][a] = step;
      base[a][3] = -step * (n - 1) / 2;
    }
    base[3][3] = 1;
    choice.used = "base";
    choice.placement = placement_from_affine(base);
    choice.warnings.emplace_back(
        "qform_code and sform_code are both 0: the header gives no orientation, so the voxel axes are read as "
        "nibabel and FSL read them (left, anterior, superior; radiological) and the anatomy may be turned or "
        "mirrored (set the orientation, e.g. with fslorient or nibabel, if the registration fails)");
    return choice;
  }
  const Matrix4 q = header.qform_matrix(), s = header.sform_matrix();
  const double shear = has_s ? worst_axis_cosine(s) : 0.0;
  if (has_s && (shear <= options.max_shear_cosine || !has_q)) {
    choice.used = "sform";
    choice.placement = placement_from_affine(s);
  } else {
    choice.used = "qform";
    choice.placement = placement_from_affine(q);
  }
  if (has_s && has_q) {
    const double apart = corner_distance_mm(q, s, header);
    // Unit axis directions: any visible turn counts (a small box may move its corners by
    // under a millimetre); "axis order/direction" names turns beyond 60 degrees (swaps, flips).
    const VoxelPlacement pq = placement_from_affine(q), ps = placement_from_affine(s);
    double worst_dot = 1;
    bool turned = false;
    for (unsigned j = 0; j < 3; ++j) {
      double dot = 0;
      for (unsigned r = 0; r < 3; ++r) {
        dot += pq.direction[r][j] * ps.direction[r][j];
        turned = turned || std::abs(pq.direction[r][j] - ps.direction[r][j]) > options.max_direction_difference;
      }
      worst_dot = std::min(worst_dot, dot);
    }
    const bool axes_differ = worst_dot < 0.5;
    if (apart > options.disagreement_mm || turned) {
      char text[480];
      std::snprintf(text, sizeof text, "%s and %s disagree (voxels up to %.1f mm apart%s); following the %s",
                    describe("qform", header.qform_code, q).c_str(), describe("sform", header.sform_code, s).c_str(),
                    apart, axes_differ ? ", different axis order/direction" : "",
                    choice.used == "sform" ? "sform (sform_code > 0, as nibabel and FSL do)"
                                           : "qform (the sform shears the axes, see the next warning)");
      choice.warnings.emplace_back(text);
    }
  }
  if (has_s && shear > options.max_shear_cosine && has_q) {
    char text[240];
    std::snprintf(text, sizeof text,
                  "sform (code %d) shears the voxel axes (|cosine| %.4f between two axes), which ITK cannot represent; "
                  "following the qform (code %d)",
                  header.sform_code, shear, header.qform_code);
    choice.warnings.emplace_back(text);
  }
  return choice;
}

nlohmann::json nifti_xforms_json(const NiftiHeader& header) {
  return {{"qform", {{"code", header.qform_code}, {"matrix", matrix_json(header.qform_matrix())}}},
          {"sform", {{"code", header.sform_code}, {"matrix", matrix_json(header.sform_matrix())}}},
          {"used", choose_nifti_xform(header).used}};
}

}  // namespace brainage::preprocessing
