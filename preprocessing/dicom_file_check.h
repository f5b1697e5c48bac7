#pragma once
// A DICOM file cut short (a copy or transfer interrupted): GDCM reads such a file without
// an error and pads its pixel data, so ITK's series reader returns a volume whose cut slices
// are partly zero (a new-user pass, nineteenth session: 10 of 120 slices cut to 500 of
// 21 600 pixel bytes read 4.8 y younger, QC passed). The check compares the file's size
// with the length of what GDCM parsed, encoded again: the file meta information (preamble
// included) plus the data set, in the data set's transfer syntax (explicit or implicit VR).
#include <cstdint>
#include <filesystem>

namespace brainage::preprocessing {

/// Bytes by which `file` is shorter than its parsed DICOM content (0 for a complete file;
/// sizes in bytes). Parsing: gdcm::Reader (GDCM 3). Throws InvalidInputError naming the file
/// when GDCM cannot parse it as DICOM.
std::int64_t dicom_bytes_missing(const std::filesystem::path& file);

}  // namespace brainage::preprocessing
