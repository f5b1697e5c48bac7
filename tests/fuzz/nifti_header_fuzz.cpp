// libFuzzer target: the NIfTI header validation layer. Any byte string must either parse
// or throw InvalidInputError; anything else (a crash, another exception, a sanitizer
// report) is a bug. Built and run by scripts/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/errors.h"
#include "preprocessing/nifti_header.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  brainage::preprocessing::NiftiHeaderLimits limits;
  limits.max_voxels = 1 << 24;
  try {
    brainage::preprocessing::parse_nifti_bytes("fuzz.nii", bytes, limits);
  } catch (const brainage::InvalidInputError&) {
  }
  // The file path: gzip detection, streaming, NaN counting.
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("brainage-fuzz-" + std::to_string(::getpid()) + ".nii.gz")).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(size));
  try {
    brainage::preprocessing::read_nifti_header(path, limits);
  } catch (const brainage::InvalidInputError&) {
  }
  return 0;
}
