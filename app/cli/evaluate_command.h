#pragma once
// `brainage evaluate`: a whole cohort (CSV or BIDS) through preprocessing and the model,
// with metrics, plots and a report. See docs/COHORTS.md.
#include <filesystem>
#include <string>
#include <vector>

#include "preprocessing/preprocess_pipeline.h"

namespace brainage::app {

struct EvaluateOptions {
  /** Cohort CSV/TSV (subject_id, path, age[, sex, site, ...]) or BIDS folder. Required. */
  std::filesystem::path cohort;
  /** Output folder. Required. */
  std::filesystem::path out;
  /** Checkpoint. Default = $BRAINAGE_MODEL, else data/model/brainage-default.json of the source tree. */
  std::filesystem::path model;
  /** Subjects processed in parallel. Default = 1. */
  int jobs{1};
  /** Total threads (0 = all cores); each subject gets max(1, threads / jobs). Default = 0. */
  int threads{0};
  /** "i/N": process the i-th of N deterministic parts (0-based). Default = "" (all). */
  std::string shard;
  /** predictions.csv of another cohort to fit the bias correction on. Default = "" (the checkpoint's). */
  std::filesystem::path calibration;
  /** Fit the bias correction on this cohort itself (marked in the outputs). Default = false. */
  bool fit_calibration_on_cohort{false};
  /** Preprocessing cache. Default = <out>/cache. */
  std::filesystem::path cache_dir;
  /** Per subject: the prediction folder (preprocessing outputs + prediction.json) and its expert maps. Default = false. */
  bool maps{false};
  /** Re-run subjects the journal records as failed. Default = false. */
  bool retry_failed{false};
  /** Render the VTK plots (needs an X display). Default = true. */
  bool plots{true};
  /** Progress on stderr. Default = true. */
  bool progress{true};
  /** Inputs are already skull-stripped. Default = false (detected automatically). */
  bool skull_stripped{false};
  /** Predict scans that fail a QC check too: flagged "QC failed: ..." in predictions.csv
      and the report, and counted in the metrics. Default = false (recorded as failed with
      the reason, listed, kept out of the metrics). */
  bool include_qc_failed{false};
  /** The command line, recorded in run.json. */
  std::vector<std::string> command_line;
};

/// Returns 0 (all rows succeeded) or 7 (completed with failures); throws for fatal errors.
int run_evaluate(const EvaluateOptions& options);
int evaluate_main(const std::vector<std::string>& args);


}  // namespace brainage::app
