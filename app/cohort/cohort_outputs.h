#pragma once
// Writes the outputs of a cohort (or of one shard, or of merged shards) into a folder,
// every file atomically: results.json, predictions.csv, metrics.json,
// predicted_vs_age.png, gap_vs_age.png and report.html. The same results give the same
// bytes, so a resumed run and a shard merge reproduce an uninterrupted single run.
#include <filesystem>
#include <string>

#include "app/cohort/cohort_metrics.h"
#include "app/cohort/cohort_results.h"

namespace brainage::cohort {

struct OutputOptions {
  /** Render the VTK plots (needs an X display; skipped with a note otherwise). Default = true. */
  bool plots{true};
  /** Write report.html. Default = true. */
  bool report{true};
};

struct OutputSummary {
  std::size_t rows = 0, failures = 0, evaluated = 0;  // evaluated = succeeded with an age
  CohortMetrics metrics;
  std::string calibration_warning;
  std::string plots_note;
};

/// predictions.csv text (header + one line per row, ascending row): subject_id, age,
/// predicted_age, brain_age_gap, corrected_predicted_age, corrected_gap, age_sd_years (the
/// sd of an ensemble's member ages; 0 for one model, empty when not known)[, transformer_age,
/// vbm_age: the raw ages of the two parts of an ensemble with a VBM model, when any subject
/// has them], qc_flags, error, path[, sex][, site], the cohort's extra columns.
std::string predictions_csv(const CohortResults& results, const std::optional<Calibration>& calibration);

/// metrics.json content.
nlohmann::json metrics_json(const CohortResults& results, const CohortMetrics& metrics,
                            const std::string& calibration_warning);

/// The metrics of the rows that succeeded and have an age.
CohortMetrics cohort_metrics(const CohortResults& results, const std::optional<Calibration>& calibration);

OutputSummary write_cohort_outputs(const std::filesystem::path& out_dir, const CohortResults& results,
                                   const OutputOptions& options = {});

}  // namespace brainage::cohort
