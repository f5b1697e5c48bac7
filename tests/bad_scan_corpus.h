#pragma once
// The bad-scan corpus of issue 9, generated at test time (no committed binaries): one file
// (or folder) per kind of broken input, each with the rule its rejection message must
// state. Good scans with an exactly known mean sit beside them. Used by the scan reader
// tests (each bad scan is refused by load_scan / check_scan_plausible) and by the cohort
// test that mixes good scans with every bad kind.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/nifti_fixture.h"

namespace brainage::testing {

struct BadScan {
  std::string kind;             // short name, also usable as a subject id
  std::filesystem::path path;   // the file or folder to open
  std::string rule;             // a substring the one-line rejection message contains
  bool plausibility = false;    // passes load_scan; refused by check_scan_plausible
};

/// Voxels of a smooth blob on `spec`'s 3D grid (x fastest): a T1-like intensity range,
/// strongly correlated neighbours, so it passes every plausibility rule.
inline std::vector<float> smooth_blob_voxels(const NiftiSpec& spec) {
  const int nx = spec.dims[0], ny = spec.dims[1], nz = spec.dims[2];
  std::vector<float> v(static_cast<std::size_t>(nx) * ny * nz);
  std::size_t i = 0;
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x, ++i) {
        const double dx = (x - 0.5 * nx) / (0.35 * nx), dy = (y - 0.5 * ny) / (0.4 * ny),
                     dz = (z - 0.5 * nz) / (0.35 * nz);
        v[i] = static_cast<float>(20.0 + 600.0 * std::exp(-(dx * dx + dy * dy + dz * dz)));
      }
  return v;
}

inline std::string float_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

/// A good 24x24x20 float scan (a smooth blob shifted by `offset`); returns its exact mean.
inline double write_good_scan(const std::filesystem::path& path, float offset) {
  NiftiSpec spec;
  spec.dims = {24, 24, 20};
  auto v = smooth_blob_voxels(spec);
  double sum = 0;
  for (auto& x : v) sum += (x += offset);
  write_bytes(path, nifti_bytes(spec, float_bytes(v)), path.extension() == ".gz");
  return sum / static_cast<double>(v.size());
}

/// Whether this process can be refused a read by file permissions (root reads anything).
inline bool permissions_apply() { return ::geteuid() != 0; }

/// Writes every bad kind into `dir` and returns them. The unreadable file (mode 000) is
/// only part of the corpus when permissions_apply().
inline std::vector<BadScan> write_bad_scan_corpus(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::vector<BadScan> c;
  auto add = [&](const std::string& kind, const fs::path& name, const std::string& rule, bool plausibility = false) {
    c.push_back({kind, dir / name, rule, plausibility});
    return dir / name;
  };
  NiftiSpec base;
  base.dims = {24, 24, 20};
  const std::string good_bytes = nifti_bytes(base, float_bytes(smooth_blob_voxels(base)));

  add("missing", "missing.nii.gz", "file does not exist");
  write_bytes(add("zero_bytes", "empty.nii", "empty"), "", false);
  {
    std::mt19937 rng(7);
    std::string junk(5000, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    write_bytes(add("random_bytes", "random.nii.gz", "not a NIfTI"), junk, false);
  }
  {
    const fs::path full = dir / ".full.nii.gz";  // hidden helper, not part of the corpus
    write_bytes(full, good_bytes, true);
    const std::string gz = read_file_bytes(full);
    fs::remove(full);
    write_bytes(add("truncated_gzip", "truncated.nii.gz", "corrupt or truncated gzip"), gz.substr(0, gz.size() / 2),
                false);
  }
  write_bytes(add("header_only", "header_only.nii", "truncated"), nifti_bytes(base, ""), false);
  {
    NiftiSpec s = base;
    s.dims = {24, 0, 20};
    write_bytes(add("zero_dim", "zero_dim.nii", "has size 0"), nifti_bytes(s, ""), false);
  }
  {
    NiftiSpec s;
    s.dims = {64, 64};
    s.pixdim = {1.f, 1.f};
    write_nifti(add("two_d", "slice.nii.gz", "2D"), s);
  }
  {
    NiftiSpec s = base;
    s.dims = {24, 24, 20, 3};
    write_nifti(add("four_d", "four_d.nii.gz", "4D with 3 volumes"), s);
    s.dims = {24, 24, 20, 1, 2};
    write_nifti(add("five_d", "five_d.nii.gz", "5D"), s);
  }
  {
    NiftiSpec s;
    s.dims = {1000, 1000, 1001};  // 1.001e9 voxels claimed, 1000 bytes present
    write_bytes(add("absurd_voxel_count", "absurd.nii.gz", "more than the limit"), nifti_bytes(s, std::string(1000, '\0')),
                true);
  }
  {
    NiftiSpec s = base;
    s.dims = {24, 24, 4};
    write_nifti(add("thin", "thin.nii", "axis 2 has only 4 voxels"), s);
  }
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    auto v = smooth_blob_voxels(base);
    v[v.size() / 2] = bad;
    const std::string kind = std::isnan(bad) ? "nan_voxel" : "inf_voxel";
    write_bytes(add(kind, kind + ".nii", "NaN or Inf"), nifti_bytes(base, float_bytes(v)), false);
  }
  {
    const float spacings[3] = {0.f, -1.f, std::numeric_limits<float>::quiet_NaN()};
    const char* names[3] = {"zero_spacing", "negative_spacing", "nan_spacing"};
    for (int axis = 0; axis < 3; ++axis) {
      NiftiSpec s = base;
      s.pixdim[static_cast<std::size_t>(axis)] = spacings[axis];
      write_bytes(add(names[axis], std::string(names[axis]) + ".nii.gz", "spacing along axis " + std::to_string(axis)),
                  nifti_bytes(s, float_bytes(smooth_blob_voxels(s))), true);
    }
  }
  {
    NiftiSpec s = base;
    s.srow[0][1] = 0.5f;  // sform shears x into y; no qform to fall back on
    write_bytes(add("non_orthonormal", "sheared.nii.gz", "orthonormal"), nifti_bytes(s, float_bytes(smooth_blob_voxels(s))),
                true);
  }
  {
    std::vector<float> zeros(24 * 24 * 20, 0.f), noise(zeros.size());
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> uniform(0.f, 1000.f);
    for (auto& x : noise) x = uniform(rng);
    write_bytes(add("all_zero", "zeros.nii.gz", "constant", true), nifti_bytes(base, float_bytes(zeros)), true);
    write_bytes(add("noise", "noise.nii.gz", "noise", true), nifti_bytes(base, float_bytes(noise)), true);
  }
  {
    auto v = smooth_blob_voxels(base);
    v[v.size() / 2 + 7] = 1e30f;  // one corrupt voxel in a normal image: a range of 1e27
    write_bytes(add("huge_dynamic_range", "hot_voxel.nii.gz", "intensity range", true), nifti_bytes(base, float_bytes(v)),
                true);
  }
  write_bytes(dir / "scan.txt", good_bytes, false);
  add("not_nifti_name", "scan.txt", "not a NIfTI file name");
  fs::create_directories(add("empty_folder", "not_dicom", "no DICOM series"));
  if (permissions_apply()) {
    const fs::path p = add("unreadable", "unreadable.nii.gz", "cannot be opened for reading");
    write_bytes(p, good_bytes, true);
    fs::permissions(p, fs::perms::none);
  }
  return c;
}

}  // namespace brainage::testing
