// libFuzzer target: the cohort CSV reader. Any bytes must give a Cohort (with row errors
// recorded) or a brainage::Error; nothing else may escape. Built by scripts/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "app/cohort/cohort_table.h"
#include "common/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("brainage-fuzz-cohort-" + std::to_string(::getpid()) + ".csv");
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    const auto cohort = brainage::cohort::read_cohort_csv(path);
    (void)cohort.row_error_count();
  } catch (const brainage::Error&) {
  }
  return 0;
}
