#include "app/cohort/cohort_evaluation.h"

#include <cmath>
#include <fstream>
#include <iostream>
#include <optional>

#include "common/progress_bar.h"
#include "common/atomic_file.h"
#include "common/errors.h"

namespace brainage::cohort {
namespace fs = std::filesystem;

int exit_code_for(std::size_t failures) {
  return static_cast<int>(failures ? ExitCode::kPartialFailure : ExitCode::kSuccess);
}

EvaluateReport evaluate_cohort(const EvaluateSettings& s, const SubjectProcessor& process) {
  std::ostream& log = s.log ? *s.log : std::cerr;
  const Cohort cohort = load_cohort(s.cohort);
  ensure_writable_directory(s.out_dir);

  RunOptions run;
  run.out_dir = s.out_dir;
  run.jobs = s.jobs;
  run.shard = s.shard;
  run.retry_failed = s.retry_failed;
  run.processing_key = s.processing_key;
  run.show_progress = s.show_progress;
  run.progress_interactive = s.progress_interactive;
  run.progress_stream = &log;

  EvaluateReport report;
  report.run = run_cohort(cohort, run, process);
  const CohortResults results = assemble_results(cohort, s.shard, s.calibration, report.run.records);
  report.outputs = write_cohort_outputs(s.out_dir, results, s.outputs);
  report.exit_code = exit_code_for(report.outputs.failures);

  nlohmann::json info = s.provenance;
  info["cohort"] = cohort.source.string();
  info["shard"] = s.shard.text();
  info["jobs"] = s.jobs;
  info["rows"] = results.rows.size();
  info["processed"] = report.run.processed;
  info["resumed_from_journal"] = report.run.resumed;
  info["journal_entries_processed_again"] = report.run.stale;  // made with another model, build or options
  info["processing_key"] = s.processing_key;
  info["failed"] = report.outputs.failures;
  info["wall_seconds"] = report.run.seconds;
  double subject_seconds = 0;
  for (const auto& r : report.run.records) subject_seconds += r.seconds;
  info["subject_seconds_total"] = subject_seconds;
  write_file_atomic(s.out_dir / "run.json", info.dump(2) + "\n");

  const auto& m = report.outputs.metrics;
  log << "brainage evaluate: " << results.rows.size() << " rows, " << report.run.processed << " processed, "
      << report.run.resumed << " from the journal, " << report.outputs.failures << " failed, in "
      << format_duration(report.run.seconds) << "\n";
  if (report.run.stale > 0)
    log << "  " << report.run.stale
        << " journal entries were made with another model, build or options: processed again\n";
  if (m.raw.n > 0) {
    log << "  N=" << m.raw.n << "  MAE " << m.raw.mae;
    if (std::isfinite(m.raw.pearson_r)) log << "  r " << m.raw.pearson_r;
    else log << "  r not defined (fewer than 3 subjects)";
    if (m.corrected) log << "  corrected MAE " << m.corrected->mae;
    log << "\n";
  }
  if (!report.outputs.calibration_warning.empty()) log << "  " << report.outputs.calibration_warning << "\n";
  if (const auto offset = systematic_offset_warning(m.raw); !offset.empty()) log << "  warning: " << offset << "\n";
  if (!report.outputs.plots_note.empty()) log << "  " << report.outputs.plots_note << "\n";
  log << "  outputs in " << s.out_dir.string() << " (predictions.csv, metrics.json, report.html)\n";
  if (report.exit_code) log << "  completed with " << report.outputs.failures << " failures (exit code 7)\n";
  return report;
}

namespace {

/// The processing_key of a shard's run.json; nullopt when it records none (older folders:
/// not checked).
std::optional<std::string> shard_processing_key(const fs::path& dir) {
  std::ifstream in(dir / "run.json");
  if (!in) return std::nullopt;
  try {
    const auto run = nlohmann::json::parse(in);
    const auto key = run.find("processing_key");
    if (key == run.end() || !key->is_string()) return std::nullopt;
    return key->get<std::string>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

/// Throws InvalidInputError when two shards were made with different processing keys
/// (another model, build or --include-qc-failed): their ages must not share one set of metrics.
void require_one_processing_key(const std::vector<fs::path>& dirs) {
  std::optional<std::string> key;
  fs::path first;
  for (const auto& d : dirs) {
    const auto k = shard_processing_key(d);
    if (!k) continue;
    if (!key) {
      key = k;
      first = d;
    } else if (*k != *key) {
      throw InvalidInputError(d.string() + ": made with another model, build or options than " + first.string() +
                              " (run.json processing_key '" + *k + "' vs '" + *key +
                              "'): merge only the shards of one evaluate command");
    }
  }
}

}  // namespace

OutputSummary merge_cohort(const std::vector<fs::path>& dirs, const fs::path& out_dir, const OutputOptions& outputs) {
  require_one_processing_key(dirs);
  std::vector<CohortResults> shards;
  std::vector<std::string> sources;
  for (const auto& d : dirs) {
    shards.push_back(read_results(d / "results.json"));
    sources.push_back((d / "results.json").string());
  }
  const CohortResults merged = merge_results(shards, sources);
  return write_cohort_outputs(out_dir, merged, outputs);
}

}  // namespace brainage::cohort
