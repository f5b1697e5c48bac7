#include "preprocessing/scan_reader.h"

#include <itkGDCMImageIO.h>
#include <itkGDCMSeriesFileNames.h>
#include <itkImageFileReader.h>
#include <itkImageRegionConstIterator.h>
#include <itkImageSeriesReader.h>

#include <cmath>
#include <sstream>

#include "common/errors.h"
#include "preprocessing/dicom_file_check.h"
#include "preprocessing/itk_error_text.h"
#include "preprocessing/itk_factories.h"
#include "preprocessing/native_header.h"
#include "preprocessing/nifti_xform.h"

namespace brainage::preprocessing {
namespace {

constexpr std::int64_t kBytesPerVoxelEstimate = 32;
/// A DICOM file may be this much shorter than its parsed content before it counts as
/// truncated (odd-length padding and similar encoder quirks; a cut slice misses thousands).
constexpr std::int64_t kDicomSlackBytes = 16;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& rule) {
  throw InvalidInputError(path.string() + ": " + rule);
}

LoadedScan read_dicom_folder(const std::filesystem::path& dir) {
  ensure_itk_factories();  // also silences GDCM's and ITK's own messages (library_messages.h)
  LoadedScan scan;
  auto names = itk::GDCMSeriesFileNames::New();
  names->SetUseSeriesDetails(true);
  names->SetDirectory(dir.string());
  const auto& series = names->GetSeriesUIDs();
  if (series.empty()) fail(dir, "folder holds no DICOM series (a scan is a .nii/.nii.gz file or a DICOM folder)");
  if (series.size() > 1)
    fail(dir, "folder holds " + std::to_string(series.size()) + " DICOM series; point to a folder with exactly one");
  const auto files = names->GetFileNames(series.front());
  for (const auto& file : files)  // GDCM pads a file cut short without an error (dicom_file_check.h)
    if (const auto missing = dicom_bytes_missing(file); missing > kDicomSlackBytes)
      fail(dir, "DICOM file " + std::filesystem::path(file).filename().string() + " is truncated: " +
                    std::to_string(missing) + " bytes of its data are missing (copy the series again)");
  auto reader = itk::ImageSeriesReader<ImageType>::New();
  auto io = itk::GDCMImageIO::New();
  reader->SetImageIO(io);
  reader->SetFileNames(files);
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    fail(dir, "DICOM series cannot be read (" + itk_error_text(e.GetDescription()) + ")");
  }
  scan.image = reader->GetOutput();
  scan.format = "DICOM series (" + std::to_string(files.size()) + " files)";
  scan.datatype = io->GetComponentTypeAsString(io->GetComponentType());
  scan.spatial_dims = files.size() > 1 ? 3 : 2;
  return scan;
}

/// Sets `image`'s spacing, origin and direction to `placement` where ITK placed it
/// differently (beyond 1e-4 mm, 1e-5 relative spacing, 1e-5 in a cosine), so scans ITK
/// already reads by the rule keep ITK's values bit for bit.
void impose_placement(ImageType& image, const VoxelPlacement& placement) {
  bool same = true;
  for (unsigned i = 0; i < kDim; ++i) {
    same = same && std::abs(image.GetSpacing()[i] - placement.spacing[i]) <= 1e-5 * placement.spacing[i] &&
           std::abs(image.GetOrigin()[i] - placement.origin[i]) <= 1e-4;
    for (unsigned j = 0; j < kDim; ++j)
      same = same && std::abs(image.GetDirection()[i][j] - placement.direction[i][j]) <= 1e-5;
  }
  if (same) return;
  image.SetSpacing(placement.spacing);
  image.SetOrigin(placement.origin);
  image.SetDirection(placement.direction);
}

LoadedScan read_nifti(const std::filesystem::path& path, const ScanValidationOptions& options) {
  const NiftiHeader header = read_nifti_header(path, options.header);
  if (header.version == 2)
    fail(path, "NIfTI-2 files cannot be read (ITK 5.2 reads NIfTI-1 only); convert it to NIfTI-1 first, e.g. "
               "nibabel.Nifti1Image(img.dataobj, img.affine, img.header)");
  LoadedScan scan;
  scan.format = header.version == 1 ? "NIfTI-1" : "NIfTI-2";
  scan.datatype = header.datatype_name();
  if (header.datatype == 32 || header.datatype == 1792 || header.datatype == 2048)  // complex64, 128, 256
    fail(path, "datatype " + scan.datatype + " is not supported: a magnitude image is required (store |value|, "
               "e.g. numpy.abs, as float32)");
  if (header.scl_slope != 0 && std::isfinite(header.scl_slope) &&
      (header.scl_slope != 1 || header.scl_inter != 0)) {
    std::ostringstream s;
    s << " (scl_slope " << header.scl_slope << ", scl_inter " << header.scl_inter << ")";
    scan.datatype += s.str();
  }
  scan.spatial_dims = header.spatial_dims();
  const std::int64_t volume_voxels = header.dim[0] * header.dim[1] * header.dim[2];
  const std::int64_t needed_mib = volume_voxels * kBytesPerVoxelEstimate / (1 << 20);
  if (options.memory_budget_mib > 0 && needed_mib > options.memory_budget_mib)
    fail(path, "processing this " + std::to_string(header.dim[0]) + "x" + std::to_string(header.dim[1]) + "x" +
                   std::to_string(header.dim[2]) + " volume needs about " + std::to_string(needed_mib) +
                   " MiB, over the memory budget of " + std::to_string(options.memory_budget_mib) +
                   " MiB (raise --memory-budget or downsample the scan)");
  if (options.reject_non_finite && header.non_finite_voxels > 0)
    fail(path, std::to_string(header.non_finite_voxels) +
                   " voxels are NaN or Inf; the image must hold finite intensities");
  scan.volumes = header.volumes();

  if (scan.spatial_dims == 2)
    fail(path, "image is 2D (" + std::to_string(header.dim[0]) + "x" + std::to_string(header.dim[1]) +
                   "); a 3D T1-weighted volume is required");
  if (scan.volumes > 1) {
    if (!options.allow_multivolume)
      fail(path, "image is " + std::to_string(header.ndim) + "D with " + std::to_string(scan.volumes) +
                     " volumes; a single 3D T1-weighted volume is required (extract one volume first)");
    scan.warnings.push_back(std::to_string(header.ndim) + "D image with " + std::to_string(scan.volumes) +
                            " volumes: only the first volume is used");
  }
  for (int i = 0; i < 3; ++i) {
    const double s = header.pixdim[i];
    if (!std::isfinite(s) || s <= 0) {
      std::ostringstream msg;
      msg << "voxel spacing along axis " << i << " is " << s << " (must be a positive finite number of mm)";
      fail(path, msg.str());
    }
  }

  ensure_itk_factories();
  auto reader = itk::ImageFileReader<ImageType>::New();
  reader->SetFileName(path.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    fail(path, "ITK cannot read the image (" + itk_error_text(e.GetDescription()) + ")");
  }
  scan.image = reader->GetOutput();
  // ITK 5.2 places the voxels by its own choice between qform and sform; impose the rule
  // of nifti_xform.h (nibabel's and FSL's) and keep the header for native outputs.
  const NiftiXformChoice xform = choose_nifti_xform(header);
  scan.warnings.insert(scan.warnings.end(), xform.warnings.begin(), xform.warnings.end());
  impose_placement(*scan.image, xform.placement);
  scan.orientation_known = xform.used != "base";
  attach_nifti_header(scan.image, header);
  return scan;
}

void check_geometry(const std::filesystem::path& path, const LoadedScan& scan, const ScanValidationOptions& options) {
  const auto& image = *scan.image;
  const auto size = image.GetLargestPossibleRegion().GetSize();
  for (unsigned i = 0; i < kDim; ++i) {
    if (static_cast<std::int64_t>(size[i]) < options.min_axis_voxels) {
      std::ostringstream msg;
      msg << "axis " << i << " has only " << size[i] << " voxels (" << size[0] << "x" << size[1] << "x" << size[2]
          << "); a 3D brain volume needs at least " << options.min_axis_voxels;
      fail(path, msg.str());
    }
    const double s = image.GetSpacing()[i];
    if (!std::isfinite(s) || s <= 0) {
      std::ostringstream msg;
      msg << "voxel spacing along axis " << i << " is " << s << " (must be a positive finite number of mm)";
      fail(path, msg.str());
    }
    if (!std::isfinite(image.GetOrigin()[i])) fail(path, "origin is not finite");
  }
  const auto& d = image.GetDirection().GetVnlMatrix();
  for (unsigned i = 0; i < kDim; ++i)
    for (unsigned j = 0; j < kDim; ++j) {
      double dot = 0;
      for (unsigned k = 0; k < kDim; ++k) dot += d(k, i) * d(k, j);
      if (!std::isfinite(dot) || std::abs(dot - (i == j ? 1.0 : 0.0)) > options.direction_tolerance)
        fail(path, "direction matrix is not orthonormal (sform/qform shears or scales the axes)");
    }
}

void check_voxels(const std::filesystem::path& path, const LoadedScan& scan, const ScanValidationOptions& options) {
  if (!options.reject_non_finite) return;
  std::int64_t bad = 0;
  itk::ImageRegionConstIterator<ImageType> it(scan.image, scan.image->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it)
    if (!std::isfinite(it.Get())) ++bad;
  if (bad > 0) fail(path, std::to_string(bad) + " voxels are NaN or Inf; the image must hold finite intensities");
}

}  // namespace

LoadedScan load_scan(const std::filesystem::path& path, const ScanValidationOptions& options) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(path, "file does not exist");
  LoadedScan scan = std::filesystem::is_directory(path, ec) ? read_dicom_folder(path) : read_nifti(path, options);
  scan.source = path;
  scan.image->DisconnectPipeline();
  check_geometry(path, scan, options);
  check_voxels(path, scan, options);
  return scan;
}

}  // namespace brainage::preprocessing
