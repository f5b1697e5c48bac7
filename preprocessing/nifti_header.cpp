#include "preprocessing/nifti_header.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/errors.h"

namespace brainage::preprocessing {
namespace {

constexpr std::size_t kNifti1HeaderSize = 348;
constexpr std::size_t kNifti2HeaderSize = 540;

[[noreturn]] void fail(const std::string& name, const std::string& rule) {
  throw InvalidInputError(name + ": " + rule);
}

template <typename T>
T load(const std::string& bytes, std::size_t offset, bool swap) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  if (swap) {
    auto* p = reinterpret_cast<unsigned char*>(&value);
    std::reverse(p, p + sizeof(T));
  }
  return value;
}

/// qfac (pixdim[0], at `qfac_at`) and the transform fields, laid out alike in NIfTI-1
/// (Code int16, Real float) and NIfTI-2 (int32, double): qform_code and sform_code at
/// `codes_at`, then quatern_b/c/d, qoffset_x/y/z and srow_x/y/z, all Real.
template <typename Code, typename Real>
void load_xforms(const std::string& bytes, bool swap, std::size_t qfac_at, std::size_t codes_at, NiftiHeader& h) {
  h.qfac = load<Real>(bytes, qfac_at, swap);
  h.qform_code = load<Code>(bytes, codes_at, swap);
  h.sform_code = load<Code>(bytes, codes_at + sizeof(Code), swap);
  const std::size_t at = codes_at + 2 * sizeof(Code), r = sizeof(Real);
  for (std::size_t i = 0; i < 3; ++i) {
    h.quatern[i] = load<Real>(bytes, at + r * i, swap);
    h.qoffset[i] = load<Real>(bytes, at + r * (3 + i), swap);
  }
  for (std::size_t row = 0; row < 3; ++row)
    for (std::size_t c = 0; c < 4; ++c) h.srow[row][c] = load<Real>(bytes, at + r * (6 + 4 * row + c), swap);
}

/// Bits per voxel for each NIfTI datatype code, 0 for unknown codes.
int bits_for_datatype(int code) {
  switch (code) {
    case 2: case 256: return 8;                 // uint8, int8
    case 4: case 512: return 16;                // int16, uint16
    case 8: case 16: case 768: return 32;       // int32, float32, uint32
    case 64: case 1024: case 1280: case 32: return 64;  // float64, int64, uint64, complex64
    case 128: return 24;                        // rgb24
    case 1536: case 1792: return 128;           // float128, complex128
    case 2304: return 32;                       // rgba32
    case 2048: return 256;                      // complex256
    default: return 0;
  }
}

/// Opens a (possibly gzipped) file for streaming, naming why it cannot be opened.
gzFile open_stream(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(name, "file does not exist");
  if (std::filesystem::is_directory(path, ec)) fail(name, "is a directory, not a NIfTI file");
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) fail(name, "file cannot be opened for reading (check permissions)");
  }
  gzFile file = gzopen(name.c_str(), "rb");
  if (!file) fail(name, "file cannot be opened for reading");
  gzbuffer(file, 1 << 17);
  return file;
}

/// Reads up to `n` bytes; throws on a corrupt or truncated gzip stream. Returns bytes read.
std::size_t read_chunk(gzFile file, const std::string& name, char* buffer, std::size_t n) {
  const int got = gzread(file, buffer, static_cast<unsigned>(n));
  int err = Z_OK;
  const char* msg = gzerror(file, &err);
  if (got < 0 || (err != Z_OK && err != Z_STREAM_END)) {
    const std::string text = msg ? msg : "unknown";
    fail(name, "corrupt or truncated gzip stream (" + text + ")");
  }
  return static_cast<std::size_t>(got);
}

struct GzCloser {
  gzFile file;
  ~GzCloser() { gzclose(file); }
};

/// Counts non-finite values among float32/float64 voxels streamed in arbitrary chunks.
class NonFiniteCounter {
 public:
  NonFiniteCounter(int datatype, bool swapped) : width_(datatype == 16 ? 4 : datatype == 64 ? 8 : 0), swap_(swapped) {}
  void feed(const char* data, std::size_t n) {
    if (width_ == 0) return;
    for (std::size_t i = 0; i < n; ++i) {
      pending_[filled_++] = data[i];
      if (filled_ == static_cast<std::size_t>(width_)) {
        if (swap_) std::reverse(pending_, pending_ + width_);
        double v;
        if (width_ == 4) {
          float f;
          std::memcpy(&f, pending_, 4);
          v = f;
        } else {
          std::memcpy(&v, pending_, 8);
        }
        if (!std::isfinite(v)) ++count_;
        filled_ = 0;
      }
    }
  }
  std::int64_t count() const { return count_; }

 private:
  int width_;
  bool swap_;
  char pending_[8]{};
  std::size_t filled_{0};
  std::int64_t count_{0};
};

}  // namespace

int NiftiHeader::spatial_dims() const {
  if (ndim <= 2 || dim[2] <= 1) return 2;
  return std::min(ndim, 5);
}

std::int64_t NiftiHeader::volumes() const {
  std::int64_t v = 1;
  for (int i = 3; i < std::min(ndim, 7); ++i) v *= std::max<std::int64_t>(dim[i], 1);
  return v;
}

std::int64_t NiftiHeader::voxel_count() const {
  std::int64_t n = 1;
  for (int i = 0; i < std::min(ndim, 7); ++i) n *= std::max<std::int64_t>(dim[i], 1);
  return n;
}

std::string NiftiHeader::datatype_name() const {
  switch (datatype) {
    case 2: return "uint8";
    case 4: return "int16";
    case 8: return "int32";
    case 16: return "float32";
    case 32: return "complex64";
    case 64: return "float64";
    case 128: return "rgb24";
    case 256: return "int8";
    case 512: return "uint16";
    case 768: return "uint32";
    case 1024: return "int64";
    case 1280: return "uint64";
    default: return "unknown(" + std::to_string(datatype) + ")";
  }
}

std::array<std::array<double, 4>, 4> NiftiHeader::qform_matrix() const {
  // nifti1_io.c, nifti_quatern_to_mat44: a from b, c, d (renormalised when |(b,c,d)| > 1),
  // non-positive voxel sizes read as 1, qfac 0 read as 1.
  double b = quatern[0], c = quatern[1], d = quatern[2];
  double a = 1.0 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    a = 1.0 / std::sqrt(b * b + c * c + d * d);
    b *= a;
    c *= a;
    d *= a;
    a = 0.0;
  } else {
    a = std::sqrt(a);
  }
  const double xd = pixdim[0] > 0 ? pixdim[0] : 1.0, yd = pixdim[1] > 0 ? pixdim[1] : 1.0;
  const double zd = (pixdim[2] > 0 ? pixdim[2] : 1.0) * (qfac < 0 ? -1.0 : 1.0);
  const double r[3][3] = {{a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)},
                          {2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)},
                          {2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b}};
  std::array<std::array<double, 4>, 4> m{};
  for (int i = 0; i < 3; ++i) {
    m[i] = {r[i][0] * xd, r[i][1] * yd, r[i][2] * zd, qoffset[i]};
  }
  m[3] = {0, 0, 0, 1};
  return m;
}

std::array<std::array<double, 4>, 4> NiftiHeader::sform_matrix() const {
  return {srow[0], srow[1], srow[2], std::array<double, 4>{0, 0, 0, 1}};
}

bool has_nifti_extension(const std::filesystem::path& path) {
  std::string name = path.filename().string();
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with(".nii") || ends_with(".nii.gz");
}

NiftiHeader parse_nifti_bytes(const std::string& name, const std::string& bytes, const NiftiHeaderLimits& limits) {
  return parse_nifti_header(name, bytes, static_cast<std::int64_t>(bytes.size()), limits);
}

NiftiHeader parse_nifti_header(const std::string& name, const std::string& bytes, std::int64_t total_size,
                               const NiftiHeaderLimits& limits) {
  if (bytes.empty()) fail(name, "file is empty (0 bytes)");
  if (bytes.size() < kNifti1HeaderSize)
    fail(name, "not a NIfTI file: " + std::to_string(bytes.size()) + " bytes is shorter than a NIfTI header (348)");

  NiftiHeader h;
  const auto size_le = load<std::int32_t>(bytes, 0, false);
  const auto size_be = load<std::int32_t>(bytes, 0, true);
  if (size_le == 348 || size_be == 348) {
    h.version = 1;
    h.byte_swapped = size_le != 348;
    if (std::memcmp(bytes.data() + 344, "n+1\0", 4) != 0 && std::memcmp(bytes.data() + 344, "ni1\0", 4) != 0)
      fail(name, "not a NIfTI-1 file: magic string is missing (Analyze 7.5 is not supported)");
    const bool s = h.byte_swapped;
    h.ndim = load<std::int16_t>(bytes, 40, s);
    for (int i = 0; i < 7; ++i) h.dim[i] = load<std::int16_t>(bytes, 42 + 2 * i, s);
    h.datatype = load<std::int16_t>(bytes, 70, s);
    h.bitpix = load<std::int16_t>(bytes, 72, s);
    for (int i = 0; i < 7; ++i) h.pixdim[i] = load<float>(bytes, 80 + 4 * i, s);
    h.vox_offset = load<float>(bytes, 108, s);
    h.scl_slope = load<float>(bytes, 112, s);
    h.scl_inter = load<float>(bytes, 116, s);
    load_xforms<std::int16_t, float>(bytes, s, 76, 252, h);
  } else if (load<std::int32_t>(bytes, 0, false) == 540 || load<std::int32_t>(bytes, 0, true) == 540) {
    if (bytes.size() < kNifti2HeaderSize) fail(name, "NIfTI-2 header truncated (" + std::to_string(bytes.size()) + " of 540 bytes)");
    h.version = 2;
    h.byte_swapped = load<std::int32_t>(bytes, 0, false) != 540;
    if (std::memcmp(bytes.data() + 4, "n+2\0", 4) != 0 && std::memcmp(bytes.data() + 4, "ni2\0", 4) != 0)
      fail(name, "not a NIfTI-2 file: magic string is missing");
    const bool s = h.byte_swapped;
    h.datatype = load<std::int16_t>(bytes, 12, s);
    h.bitpix = load<std::int16_t>(bytes, 14, s);
    h.ndim = static_cast<int>(load<std::int64_t>(bytes, 16, s));
    for (int i = 0; i < 7; ++i) h.dim[i] = load<std::int64_t>(bytes, 24 + 8 * i, s);
    for (int i = 0; i < 7; ++i) h.pixdim[i] = load<double>(bytes, 112 + 8 * i, s);
    h.vox_offset = static_cast<double>(load<std::int64_t>(bytes, 168, s));
    h.scl_slope = load<double>(bytes, 176, s);
    h.scl_inter = load<double>(bytes, 184, s);
    load_xforms<std::int32_t, double>(bytes, s, 104, 344, h);
  } else {
    fail(name, "not a NIfTI file: header size field is neither 348 (NIfTI-1) nor 540 (NIfTI-2)");
  }

  if (h.ndim < 1 || h.ndim > 7) fail(name, "header dim[0] = " + std::to_string(h.ndim) + " is outside 1..7");
  for (int i = 0; i < h.ndim; ++i)
    if (h.dim[i] < 1)
      fail(name, "dimension " + std::to_string(i + 1) + " has size " + std::to_string(h.dim[i]) + " (must be >= 1)");
  for (int i = h.ndim; i < 7; ++i) h.dim[i] = 1;

  const int bits = bits_for_datatype(h.datatype);
  if (bits == 0) fail(name, "unknown NIfTI datatype code " + std::to_string(h.datatype));

  // Voxel count, guarding the multiplication itself against overflow.
  long double voxels = 1;
  for (int i = 0; i < h.ndim; ++i) voxels *= static_cast<long double>(h.dim[i]);
  if (voxels > static_cast<long double>(limits.max_voxels)) {
    std::ostringstream msg;
    msg << "header claims " << static_cast<double>(voxels) << " voxels, more than the limit of " << limits.max_voxels;
    fail(name, msg.str());
  }
  if (!std::isfinite(h.vox_offset) || h.vox_offset < (h.version == 1 ? 348 : 540) ||
      h.vox_offset > static_cast<double>(total_size) + 1e12)
    fail(name, "header vox_offset " + std::to_string(h.vox_offset) + " is invalid");

  const auto offset = static_cast<std::int64_t>(h.vox_offset);
  h.data_bytes_available = total_size - offset;
  if (limits.check_data_length) {
    const auto needed = static_cast<std::int64_t>(voxels) * bits / 8;
    if (h.data_bytes_available < needed) {
      std::ostringstream msg;
      msg << "file is truncated: the header's " << h.dim[0];
      for (int i = 1; i < h.ndim; ++i) msg << "x" << h.dim[i];
      msg << " " << h.datatype_name() << " voxels need " << needed << " bytes after offset " << offset
          << ", but only " << std::max<std::int64_t>(h.data_bytes_available, 0) << " are present";
      fail(name, msg.str());
    }
  }
  return h;
}

NiftiHeader read_nifti_header(const std::filesystem::path& path, const NiftiHeaderLimits& limits) {
  const std::string name = path.string();
  if (!has_nifti_extension(path) && !std::filesystem::is_directory(path))
    fail(name, "not a NIfTI file name (expected .nii or .nii.gz, or a DICOM folder)");
  GzCloser stream{open_stream(path)};
  std::string head(kNifti2HeaderSize, '\0');
  head.resize(read_chunk(stream.file, name, head.data(), head.size()));

  NiftiHeaderLimits header_only = limits;
  header_only.check_data_length = false;
  NiftiHeader h = parse_nifti_header(name, head, static_cast<std::int64_t>(head.size()), header_only);
  if (!limits.check_data_length) return h;

  // Stream the rest once: it is the only way to tell a truncated .nii.gz from a complete
  // one, and ITK's NIfTI reader silently turns NaN/Inf voxels into 0, so they are counted
  // here. Costs ~0.1 s for a 1 mm scan.
  const auto offset = static_cast<std::int64_t>(h.vox_offset);
  const std::int64_t needed = h.voxel_count() * bits_for_datatype(h.datatype) / 8;
  NonFiniteCounter counter(h.datatype, h.byte_swapped);
  std::int64_t total = static_cast<std::int64_t>(head.size());
  auto feed_voxels = [&](const char* data, std::int64_t begin, std::size_t n) {
    // [begin, begin + n) in file coordinates; keep the part inside the voxel data.
    const std::int64_t lo = std::max(begin, offset), hi = std::min(begin + static_cast<std::int64_t>(n), offset + needed);
    if (hi > lo) counter.feed(data + (lo - begin), static_cast<std::size_t>(hi - lo));
  };
  feed_voxels(head.data(), 0, head.size());
  std::string chunk(1 << 20, '\0');
  while (const std::size_t n = read_chunk(stream.file, name, chunk.data(), chunk.size())) {
    feed_voxels(chunk.data(), total, n);
    total += static_cast<std::int64_t>(n);
  }
  h = parse_nifti_header(name, head, total, limits);
  h.non_finite_voxels = counter.count();
  return h;
}

}  // namespace brainage::preprocessing
