#pragma once
// Writes a real DICOM series (one MR file per slice, ITK's GDCM writer) from a NIfTI scan,
// with the geometry tags a scanner writes (image position and orientation per slice, pixel
// spacing, slice thickness, one series UID). Voxels are stored as int16 with the NIfTI's
// scaling as DICOM's rescale slope/intercept (0028,1053 / 0028,1052), as a scanner export
// does: the stored integers are the NIfTI's own (for integer NIfTI data), so both give the
// same intensities.
#include <itkExtractImageFilter.h>
#include <itkGDCMImageIO.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "preprocessing/nifti_header.h"

namespace brainage::testing {

/// The series of `nifti` into the (new) folder `dir`, files IM0001.dcm ... Returns `dir`.
/// `uid_root` keeps the study/series/instance UIDs of different series apart.
inline std::filesystem::path write_dicom_series(const std::filesystem::path& nifti, const std::filesystem::path& dir,
                                                const std::string& uid_root) {
  // The intensities as read (scaled); GDCM's writer stores (value - intercept) / slope as
  // int16 when the rescale tags are set: the NIfTI's own stored integers.
  using Volume = itk::Image<float, 3>;
  using Slice = itk::Image<float, 2>;
  const auto header = brainage::preprocessing::read_nifti_header(nifti);
  const bool scaled = header.scl_slope != 0 && std::isfinite(header.scl_slope);
  const double slope = scaled ? header.scl_slope : 1.0, intercept = scaled ? header.scl_inter : 0.0;
  auto reader = itk::ImageFileReader<Volume>::New();
  reader->SetFileName(nifti.string());
  reader->Update();
  const Volume::Pointer volume = reader->GetOutput();
  std::filesystem::create_directories(dir);
  const auto size = volume->GetLargestPossibleRegion().GetSize();
  const auto spacing = volume->GetSpacing();
  const auto direction = volume->GetDirection();
  char text[256];
  std::snprintf(text, sizeof text, "%.6f\\%.6f\\%.6f\\%.6f\\%.6f\\%.6f", direction(0, 0), direction(1, 0),
                direction(2, 0), direction(0, 1), direction(1, 1), direction(2, 1));
  const std::string orientation = text;
  std::snprintf(text, sizeof text, "%.6f\\%.6f", spacing[1], spacing[0]);  // row spacing \ column spacing
  const std::string pixel_spacing = text;
  for (unsigned k = 0; k < size[2]; ++k) {
    Volume::RegionType region = volume->GetLargestPossibleRegion();
    region.SetIndex(2, k);
    region.SetSize(2, 0);
    auto extract = itk::ExtractImageFilter<Volume, Slice>::New();
    extract->SetInput(volume);
    extract->SetExtractionRegion(region);
    extract->SetDirectionCollapseToIdentity();  // the geometry travels in the tags below
    extract->Update();
    Volume::IndexType first{{0, 0, static_cast<Volume::IndexValueType>(k)}};
    Volume::PointType position;
    volume->TransformIndexToPhysicalPoint(first, position);
    auto io = itk::GDCMImageIO::New();
    io->KeepOriginalUIDOn();
    // ImageFileWriter hands the image's dictionary to the IO: the tags go on the slice.
    Slice::Pointer slice = extract->GetOutput();
    slice->DisconnectPipeline();
    itk::MetaDataDictionary tags;
    auto set = [&](const char* tag, const std::string& value) { itk::EncapsulateMetaData<std::string>(tags, tag, value); };
    set("0008|0060", "MR");
    set("0008|0008", "ORIGINAL\\PRIMARY");
    set("0008|0016", "1.2.840.10008.5.1.4.1.1.4");
    set("0020|000d", uid_root + ".1");
    set("0020|000e", uid_root + ".2");
    set("0008|0018", uid_root + ".3." + std::to_string(k + 1));
    set("0020|0013", std::to_string(k + 1));
    std::snprintf(text, sizeof text, "%.6f\\%.6f\\%.6f", position[0], position[1], position[2]);
    set("0020|0032", text);
    set("0020|0037", orientation);
    set("0028|0030", pixel_spacing);
    std::snprintf(text, sizeof text, "%.6f", spacing[2]);
    set("0018|0050", text);
    std::snprintf(text, sizeof text, "%.10g", slope);
    set("0028|1053", text);
    std::snprintf(text, sizeof text, "%.10g", intercept);
    set("0028|1052", text);
    set("0028|0100", "16");  // stored as signed 16-bit integers
    set("0028|0101", "16");
    set("0028|0102", "15");
    set("0028|0103", "1");
    slice->SetMetaDataDictionary(tags);
    auto writer = itk::ImageFileWriter<Slice>::New();
    writer->SetInput(slice);
    writer->SetImageIO(io);
    std::snprintf(text, sizeof text, "IM%04u.dcm", k + 1);
    writer->SetFileName((dir / text).string());
    writer->Update();
  }
  return dir;
}

}  // namespace brainage::testing
