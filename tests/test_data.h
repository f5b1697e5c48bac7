#pragma once
// Where the tests find real data, and how they skip cleanly when it is absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace brainage::testing {

/// ../shared/data beside the repository (or $BRAINAGE_SHARED_DATA).
inline std::filesystem::path shared_data_dir() {
  if (const char* env = std::getenv("BRAINAGE_SHARED_DATA")) return env;
  return std::filesystem::path(BRAINAGE_SOURCE_DIR) / ".." / "shared" / "data";
}

/// The Debian mricron-data templates (Colin27, ch2bet, AAL).
inline std::filesystem::path mricron_templates_dir() { return "/usr/share/mricron/templates"; }

/// A fresh, empty scratch folder for one test. The process id keeps tests that ctest runs
/// in parallel (one process per test case) out of each other's folders.
inline std::filesystem::path scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("brainage-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace brainage::testing

/// Skips the current test with a clear message when `path` does not exist.
#define BRAINAGE_REQUIRE_PATH(path)                                                       \
  do {                                                                                    \
    if (!std::filesystem::exists(path))                                                   \
      GTEST_SKIP() << "needs " << (path) << " (../shared/data or mricron-data absent)";   \
  } while (0)
