#pragma once
// Shared by the cohort tests: small real NIfTI scans whose mean intensity encodes a
// "predicted age", and a real processor that reads each scan through
// preprocessing::load_scan (validation included) and returns that mean.
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "app/cohort/cohort_runner.h"
#include "preprocessing/scan_reader.h"
#include "tests/nifti_fixture.h"

namespace brainage::testing {

/// A 16³ float scan whose voxels alternate v − 1 and v + 1: mean exactly v.
inline std::filesystem::path write_scan_with_mean(const std::filesystem::path& path, float v) {
  NiftiSpec spec;
  std::vector<float> voxels(16 * 16 * 16);
  for (std::size_t i = 0; i < voxels.size(); ++i) voxels[i] = (i % 2) ? v + 1.f : v - 1.f;
  write_bytes(path, nifti_bytes(spec, std::string(reinterpret_cast<const char*>(voxels.data()), voxels.size() * 4)),
              path.extension() == ".gz");
  return path;
}

/// Mean voxel intensity of a scan read through load_scan.
inline double scan_mean(const std::filesystem::path& scan) {
  const auto loaded = preprocessing::load_scan(scan);
  const auto* image = loaded.image.GetPointer();
  const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  const float* p = image->GetBufferPointer();
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += p[i];
  return sum / static_cast<double>(n);
}

/// The processor: prediction = mean intensity; writes a marker file into the workspace.
inline cohort::SubjectProcessor mean_processor(std::atomic<int>* calls = nullptr) {
  return [calls](const cohort::Subject& s, const cohort::SubjectWorkspace& ws) {
    if (calls) ++*calls;
    cohort::SubjectOutcome out;
    out.predicted_age = scan_mean(s.scan);
    if (out.predicted_age > 90) out.qc_flags.push_back("prediction above 90");
    out.details["processor"] = "mean-intensity";
    std::ofstream(ws.dir / "done.txt") << out.predicted_age << "\n";
    return out;
  };
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace brainage::testing
