#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace brainage::app {

struct InfoOptions {
  std::filesystem::path scan;  // .nii, .nii.gz or a DICOM folder
  bool json = false;           // print JSON instead of text (default: text)
};

/// Prints the scan summary to stdout; throws InvalidInputError for a broken scan.
int run_info(const InfoOptions& options);
int info_main(const std::vector<std::string>& args);

}  // namespace brainage::app
