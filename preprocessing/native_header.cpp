#include "preprocessing/native_header.h"

#include <itkMetaDataObject.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "preprocessing/model_grid.h"

namespace brainage::preprocessing {
namespace {

constexpr const char* kHeaderKey = "brainage.nifti_header";

template <typename T>
void store(std::string& bytes, std::size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

/// The whole (decompressed) content of a .nii or .nii.gz file.
std::string read_stream(const std::filesystem::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw OutputError(path.string() + ": cannot reopen the written image to set its header");
  std::string bytes, chunk(1 << 20, '\0');
  int got;
  while ((got = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()))) > 0) bytes.append(chunk.data(), got);
  gzclose(file);
  if (got < 0) throw OutputError(path.string() + ": cannot read back the written image to set its header");
  return bytes;
}

void write_stream(const std::filesystem::path& path, const std::string& bytes) {
  const bool gzip = path.extension() == ".gz";
  gzFile file = gzopen(path.c_str(), gzip ? "wb6" : "wbT");
  if (!file) throw OutputError(path.string() + ": cannot rewrite the image with the input's header");
  const int put = gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  if (gzclose(file) != Z_OK || put != static_cast<int>(bytes.size()))
    throw OutputError(path.string() + ": cannot rewrite the image with the input's header (disk full?)");
}

void require_same_grid(const itk::ImageBase<3>* image, const itk::ImageBase<3>* reference,
                       const std::filesystem::path& path) {
  bool same = image->GetLargestPossibleRegion().GetSize() == reference->GetLargestPossibleRegion().GetSize();
  for (unsigned i = 0; i < 3 && same; ++i) {
    same = std::abs(image->GetSpacing()[i] - reference->GetSpacing()[i]) <= 1e-5 * reference->GetSpacing()[i] &&
           std::abs(image->GetOrigin()[i] - reference->GetOrigin()[i]) <= 1e-4;
    for (unsigned j = 0; j < 3; ++j)
      same = same && std::abs(image->GetDirection()[i][j] - reference->GetDirection()[i][j]) <= 1e-5;
  }
  if (!same)
    throw ProcessingError(path.string() +
                          ": image is not on the input scan's voxel grid, so the input's qform/sform would misplace it");
}

void itk_write(const MaskType* image, const std::filesystem::path& path) { write_mask(image, path); }
void itk_write(const ImageType* image, const std::filesystem::path& path) { write_image(image, path); }

template <typename TImage>
void write_like(const TImage* image, const std::filesystem::path& path, const itk::ImageBase<3>* native_reference) {
  if (image == nullptr) throw OutputError(path.string() + ": no image to write");
  const auto header = native_reference ? attached_nifti_header(native_reference) : std::nullopt;
  if (!header) {
    itk_write(image, path);
    return;
  }
  require_same_grid(image, native_reference, path);
  write_via_temp(path, [&](const std::filesystem::path& tmp) {
    itk_write(image, tmp);
    std::string bytes = read_stream(tmp);
    copy_xforms_into(bytes, *header, path.string());
    write_stream(tmp, bytes);
  });
}

}  // namespace

void attach_nifti_header(itk::ImageBase<3>* image, const NiftiHeader& header) {
  itk::EncapsulateMetaData<NiftiHeader>(image->GetMetaDataDictionary(), kHeaderKey, header);
}

std::optional<NiftiHeader> attached_nifti_header(const itk::ImageBase<3>* image) {
  NiftiHeader header;
  if (!itk::ExposeMetaData<NiftiHeader>(image->GetMetaDataDictionary(), kHeaderKey, header)) return std::nullopt;
  return header;
}

void copy_xforms_into(std::string& bytes, const NiftiHeader& from, const std::string& name) {
  std::int32_t sizeof_hdr = 0;
  if (bytes.size() >= 348) std::memcpy(&sizeof_hdr, bytes.data(), 4);
  if (sizeof_hdr != 348 || std::memcmp(bytes.data() + 344, "n+1", 3) != 0)
    throw OutputError(name + ": the written image is not a single-file NIfTI-1 in this machine's byte order");
  for (int i = 0; i < 3; ++i) {
    std::int16_t dim = 0;
    std::memcpy(&dim, bytes.data() + 42 + 2 * i, 2);
    if (dim != from.dim[i])
      throw OutputError(name + ": written dimension " + std::to_string(i + 1) + " is " + std::to_string(dim) +
                        ", the input's is " + std::to_string(from.dim[i]));
  }
  store<float>(bytes, 76, static_cast<float>(from.qfac));
  for (int i = 0; i < 3; ++i) store<float>(bytes, 80 + 4 * i, static_cast<float>(from.pixdim[i]));
  store<std::int16_t>(bytes, 252, static_cast<std::int16_t>(from.qform_code));
  store<std::int16_t>(bytes, 254, static_cast<std::int16_t>(from.sform_code));
  for (int i = 0; i < 3; ++i) store<float>(bytes, 256 + 4 * i, static_cast<float>(from.quatern[i]));
  for (int i = 0; i < 3; ++i) store<float>(bytes, 268 + 4 * i, static_cast<float>(from.qoffset[i]));
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) store<float>(bytes, 280 + 16 * r + 4 * c, static_cast<float>(from.srow[r][c]));
}

void write_like_input(const MaskType* image, const std::filesystem::path& path,
                      const itk::ImageBase<3>* native_reference) {
  write_like(image, path, native_reference);
}

void write_like_input(const ImageType* image, const std::filesystem::path& path,
                      const itk::ImageBase<3>* native_reference) {
  write_like(image, path, native_reference);
}

}  // namespace brainage::preprocessing
