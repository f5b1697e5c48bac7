#pragma once
// Builds NIfTI-1 files byte by byte so tests can produce every kind of broken input at
// test time (no committed binaries): wrong dims, bad spacing, truncation, NaN voxels, ...
#include <zlib.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace brainage::testing {

struct NiftiSpec {
  std::vector<std::int16_t> dims{16, 16, 16};  // dim[1..]
  std::vector<float> pixdim{1.f, 1.f, 1.f};    // pixdim[1..]
  std::int16_t datatype = 16;                  // float32
  std::int16_t bitpix = 32;
  float scl_slope = 1.f;
  // sform (rows of the 3x4 affine in RAS); identity by default
  float srow[3][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}};
  std::int16_t sform_code = 1;
  // qform: absent by default
  std::int16_t qform_code = 0;
  float quatern[3] = {0, 0, 0};  // b, c, d
  float qoffset[3] = {0, 0, 0};  // x, y, z (mm, RAS)
  float qfac = 1;                // pixdim[0]
};

/// 348-byte header + 4-byte extension flag + voxels (float32 or as given in `voxels`).
inline std::string nifti_bytes(const NiftiSpec& spec, const std::string& voxels) {
  std::string h(352, '\0');
  auto put = [&](std::size_t off, const void* p, std::size_t n) { std::memcpy(&h[off], p, n); };
  const std::int32_t sizeof_hdr = 348;
  put(0, &sizeof_hdr, 4);
  std::int16_t dim[8] = {static_cast<std::int16_t>(spec.dims.size()), 1, 1, 1, 1, 1, 1, 1};
  for (std::size_t i = 0; i < spec.dims.size(); ++i) dim[i + 1] = spec.dims[i];
  put(40, dim, 16);
  put(70, &spec.datatype, 2);
  put(72, &spec.bitpix, 2);
  float pixdim[8] = {spec.qfac, 1, 1, 1, 1, 1, 1, 1};
  for (std::size_t i = 0; i < spec.pixdim.size(); ++i) pixdim[i + 1] = spec.pixdim[i];
  put(76, pixdim, 32);
  const float vox_offset = 352;
  put(108, &vox_offset, 4);
  put(112, &spec.scl_slope, 4);
  put(252, &spec.qform_code, 2);
  put(254, &spec.sform_code, 2);
  put(256, spec.quatern, 12);
  put(268, spec.qoffset, 12);
  put(280, spec.srow[0], 16);
  put(296, spec.srow[1], 16);
  put(312, spec.srow[2], 16);
  put(344, "n+1\0", 4);
  return h + voxels;
}

/// The same image as a NIfTI-2 file: 540-byte header + 4-byte extension flag + voxels.
inline std::string nifti2_bytes(const NiftiSpec& spec, const std::string& voxels) {
  std::string h(544, '\0');
  auto put = [&](std::size_t off, const void* p, std::size_t n) { std::memcpy(&h[off], p, n); };
  const std::int32_t sizeof_hdr = 540;
  put(0, &sizeof_hdr, 4);
  put(4, "n+2\0\r\n\032\n", 8);
  put(12, &spec.datatype, 2);
  put(14, &spec.bitpix, 2);
  std::int64_t dim[8] = {static_cast<std::int64_t>(spec.dims.size()), 1, 1, 1, 1, 1, 1, 1};
  for (std::size_t i = 0; i < spec.dims.size(); ++i) dim[i + 1] = spec.dims[i];
  put(16, dim, 64);
  double pixdim[8] = {spec.qfac, 1, 1, 1, 1, 1, 1, 1};
  for (std::size_t i = 0; i < spec.pixdim.size(); ++i) pixdim[i + 1] = spec.pixdim[i];
  put(104, pixdim, 64);
  const std::int64_t vox_offset = 544;
  put(168, &vox_offset, 8);
  const double slope = spec.scl_slope;
  put(176, &slope, 8);
  const std::int32_t qform_code = spec.qform_code, sform_code = spec.sform_code;
  put(344, &qform_code, 4);
  put(348, &sform_code, 4);
  for (int i = 0; i < 3; ++i) {
    const double q = spec.quatern[i], o = spec.qoffset[i];
    put(352 + 8 * i, &q, 8);
    put(376 + 8 * i, &o, 8);
  }
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) {
      const double v = spec.srow[r][c];
      put(400 + 32 * r + 8 * c, &v, 8);
    }
  return h + voxels;
}

/// IXI's storage: voxel axes P, S, R at 2 mm (qfac -1), the same placement as a qform
/// (code 1) and an sform (code 1), voxel (0, 0, 0) at `origin_ras` (mm).
inline NiftiSpec psr_2mm_spec(std::vector<std::int16_t> dims, const std::array<float, 3>& origin_ras) {
  NiftiSpec spec;
  spec.dims = std::move(dims);
  spec.pixdim = {2.f, 2.f, 2.f};
  spec.qform_code = 1;
  spec.qfac = -1;
  spec.quatern[0] = 0.5f;
  spec.quatern[1] = -0.5f;
  spec.quatern[2] = -0.5f;
  const float srow[3][4] = {{0, 0, 2, 0}, {-2, 0, 0, 0}, {0, 2, 0, 0}};
  std::memcpy(spec.srow, srow, sizeof srow);
  for (int i = 0; i < 3; ++i) spec.qoffset[i] = spec.srow[i][3] = origin_ras[i];
  return spec;
}

/// Float voxels for `spec` (all its dims), filled with a smooth blob so the image is not constant.
inline std::string float_voxels(const NiftiSpec& spec, float fill_nan_at = -1) {
  std::size_t n = 1;
  for (auto d : spec.dims) n *= static_cast<std::size_t>(d > 0 ? d : 0);
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 97);
  if (fill_nan_at >= 0 && n > 0) v[static_cast<std::size_t>(fill_nan_at) % n] = std::nanf("");
  return std::string(reinterpret_cast<const char*>(v.data()), n * sizeof(float));
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
}

/// Writes a valid float32 NIfTI described by `spec`.
inline std::filesystem::path write_nifti(const std::filesystem::path& path, const NiftiSpec& spec = {}) {
  write_bytes(path, nifti_bytes(spec, float_voxels(spec)), path.extension() == ".gz");
  return path;
}

inline std::string read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace brainage::testing
