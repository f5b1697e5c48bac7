#pragma once
// report.html: one self-contained file (no external links): the model (and, for an
// ensemble with a VBM model, how its age is made and each part's mean), the metrics, the bias
// correction and where it came from (a warning box when fitted on the evaluated cohort
// or absent), the VTK plots embedded as base64 PNG, the failed rows with their reasons,
// and the preprocessing QC image of the subjects with the largest gaps.
#include <filesystem>
#include <string>
#include <vector>

#include "app/cohort/cohort_metrics.h"
#include "app/cohort/cohort_results.h"

namespace brainage::cohort {

struct ReportOptions {
  /** Subjects with the largest |gap| shown with their QC image. Default = 6. */
  int worst_cases{6};
};

struct ReportInputs {
  const CohortResults* results = nullptr;
  const CohortMetrics* metrics = nullptr;
  std::string calibration_warning;               // "" when a calibration is in effect
  std::vector<std::filesystem::path> plots;      // PNGs to embed (missing ones are skipped)
  std::string plots_note;                        // why plots are missing, if they are
};

/// Standard base64 (RFC 4648) of `bytes`.
std::string base64(const std::string& bytes);

/// The HTML text. Deterministic: the same inputs give the same bytes.
std::string render_report_html(const ReportInputs& inputs, const ReportOptions& options = {});

}  // namespace brainage::cohort
