#pragma once
// The cohort flow behind `brainage evaluate` and `brainage merge`, with the per-subject
// work injected: read the cohort, run the subjects (parallel, journaled, sharded),
// assemble the results and write the outputs. Returns the exit code: 0 when every row
// succeeded, 7 (ExitCode::kPartialFailure) when the cohort completed with failures.
// Fatal problems (unreadable cohort table, output folder not writable) throw.
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/cohort/cohort_outputs.h"
#include "app/cohort/cohort_results.h"
#include "app/cohort/cohort_runner.h"

namespace brainage::cohort {

struct EvaluateSettings {
  /** Cohort CSV/TSV or BIDS folder. Required. */
  std::filesystem::path cohort;
  /** Output folder. Required. */
  std::filesystem::path out_dir;
  /** Subjects in parallel. Default = 1. */
  int jobs{1};
  /** Default = 0/1 (whole cohort). */
  ShardSpec shard{};
  /** Re-run subjects whose journal entry is a failure. Default = false. */
  bool retry_failed{false};
  /** RunOptions::processing_key: journal entries made otherwise are processed again. Default = "". */
  std::string processing_key{};
  /** Default = none (no correction, noted in the outputs). */
  CalibrationChoice calibration{};
  OutputOptions outputs{};
  /** Progress bar on stderr. Default = true. */
  bool show_progress{true};
  /** Redraw the progress line in place. Default = false (one line per subject). */
  bool progress_interactive{false};
  /** Summary lines; Default = std::cerr. */
  std::ostream* log{nullptr};
  /** Written into run.json (command line, versions, threads). Default = {}. */
  nlohmann::json provenance = nlohmann::json::object();
};

struct EvaluateReport {
  int exit_code = 0;
  RunSummary run;
  OutputSummary outputs;
};

EvaluateReport evaluate_cohort(const EvaluateSettings& settings, const SubjectProcessor& process);

/// Merges shard output folders (each holding results.json) into `out_dir`. Throws
/// InvalidInputError when the shards' run.json processing keys differ (shards of another
/// model, build or --include-qc-failed) or their results' cohort digests do (a cohort table
/// edited between shards), or a shard is missing or repeated.
OutputSummary merge_cohort(const std::vector<std::filesystem::path>& shard_dirs, const std::filesystem::path& out_dir,
                           const OutputOptions& outputs = {});

/// 0 without failures, 7 with.
int exit_code_for(std::size_t failures);

}  // namespace brainage::cohort
