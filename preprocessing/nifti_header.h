#pragma once
// A NIfTI-1/2 header reader that checks a file before ITK touches it. ITK's own reader
// accepts truncated gzip streams and impossible headers with a stack dump or silently
// zero-filled voxels; this reads only the header and the stream length and names the
// broken rule instead. No ITK here, so it can be fuzzed on its own.
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>

namespace brainage::preprocessing {

struct NiftiHeaderLimits {
  /** Largest voxel count accepted. Default = 1'000'000'000 (a 1000^3 volume). */
  std::int64_t max_voxels{1'000'000'000};
  /** Verify that the (decompressed) file holds every voxel the header promises. Default = true. */
  bool check_data_length{true};
};

struct NiftiHeader {
  int version{1};                       // 1 or 2
  int ndim{0};                          // dim[0]
  std::array<std::int64_t, 7> dim{};    // dim[1..7], 1 where unused
  std::array<double, 7> pixdim{};       // pixdim[1..7]
  int datatype{0};                      // NIFTI_TYPE_* code
  int bitpix{0};
  double vox_offset{0};
  double scl_slope{0};
  double scl_inter{0};
  bool byte_swapped{false};
  std::int64_t data_bytes_available{0}; // bytes after vox_offset in the (decompressed) file
  std::int64_t non_finite_voxels{0};    // NaN/Inf among float voxels (counted when the data is read)

  // Where the voxels lie: the two transforms of the NIfTI standard, as stored (NIfTI-1
  // stores them as float32, NIfTI-2 as float64). Codes: 0 unknown, 1 scanner, 2 aligned,
  // 3 Talairach, 4 MNI152, 5 template.
  int qform_code{0};
  int sform_code{0};
  std::array<double, 3> quatern{};      // quatern_b, quatern_c, quatern_d
  std::array<double, 3> qoffset{};      // qoffset_x, qoffset_y, qoffset_z (mm, RAS)
  double qfac{1};                       // pixdim[0] as stored (-1 flips the third axis; 0 is read as 1)
  std::array<std::array<double, 4>, 3> srow{};  // srow_x, srow_y, srow_z: rows of the sform (mm, RAS)

  /// Spatial dimensionality: 2 when the third axis has one slice, else min(ndim, 5).
  int spatial_dims() const;
  /// Number of volumes along the 4th and higher axes (1 for a 3D image).
  std::int64_t volumes() const;
  std::int64_t voxel_count() const;
  /// "uint8", "int16", "float32", ... ("unknown(N)" for codes NIfTI does not define).
  std::string datatype_name() const;
  /// The qform as a 4x4 voxel-index -> RAS mm matrix, by the standard's method 2 (quaternion,
  /// pixdim[1..3], qfac, qoffset; nifti1_io's nifti_quatern_to_mat44). Meaningful when
  /// qform_code > 0.
  std::array<std::array<double, 4>, 4> qform_matrix() const;
  /// The sform (method 3) as a 4x4 matrix; meaningful when sform_code > 0.
  std::array<std::array<double, 4>, 4> sform_matrix() const;
};

/// Reads and checks the header of a .nii / .nii.gz file. Throws InvalidInputError, whose
/// message starts with the path and states the broken rule, for: a missing or unreadable
/// file, a file that is not NIfTI, a corrupt or truncated gzip stream, an unknown data
/// type, non-positive dimensions, an absurd voxel count, and data shorter than the header
/// promises. Does not judge dimensionality or spacing (see validate_for_processing).
NiftiHeader read_nifti_header(const std::filesystem::path& path, const NiftiHeaderLimits& limits = {});

/// Same rules, on bytes already in memory (what the fuzzer drives). `name` is used in messages.
NiftiHeader parse_nifti_bytes(const std::string& name, const std::string& bytes,
                              const NiftiHeaderLimits& limits = {});

/// Same rules on the first bytes of a file (at least the header) and the total length of
/// its decompressed stream.
NiftiHeader parse_nifti_header(const std::string& name, const std::string& header_bytes, std::int64_t total_size,
                               const NiftiHeaderLimits& limits = {});

/// True for names ending in .nii or .nii.gz (case-insensitive).
bool has_nifti_extension(const std::filesystem::path& path);

}  // namespace brainage::preprocessing
