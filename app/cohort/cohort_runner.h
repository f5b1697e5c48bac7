#pragma once
// Runs a per-subject processor over a cohort: in parallel (--jobs), journaled (resume),
// restricted to one shard, and tolerant of failures (a subject that throws is recorded
// with its reason; the others go on).
#include <filesystem>
#include <functional>
#include <ostream>
#include <vector>

#include "app/cohort/cohort_table.h"
#include "app/cohort/shard.h"
#include "app/cohort/subject_record.h"

namespace brainage::cohort {

/// Where a processor may write for one subject.
struct SubjectWorkspace {
  std::filesystem::path dir;  // <out>/subjects/<safe id>/, created before the call
};

/// Processes one subject; throws (typed errors of common/errors.h) when it fails.
/// Called concurrently from `jobs` threads.
using SubjectProcessor = std::function<SubjectOutcome(const Subject&, const SubjectWorkspace&)>;

struct RunOptions {
  /** Output folder; journal/ and subjects/ are created inside. Required. */
  std::filesystem::path out_dir;
  /** Subjects processed in parallel. Default = 1. */
  int jobs{1};
  /** The part of the cohort this run owns. Default = 0/1 (all). */
  ShardSpec shard{};
  /** Process subjects whose journal entry records a failure again. Default = false. */
  bool retry_failed{false};
  /** What a journal entry must have been made with to be reused: the model, the
      preprocessing and the options that change a subject's outcome (evaluate: its
      processing key). An entry made with another key is processed again, so resuming a
      folder with another model, build or --include-qc-failed never keeps stale ages.
      Default = "" (entries of older journals, which have none, match only ""). */
  std::string processing_key{};
  /** Draw progress on `progress_stream`. Default = true. */
  bool show_progress{true};
  /** Redraw one line (terminal) instead of one line per subject. Default = stderr is a tty. */
  bool progress_interactive{false};
  std::ostream* progress_stream{nullptr};  // Default = std::cerr
};

struct RunSummary {
  std::vector<SubjectRecord> records;  // one per valid subject of the shard, in row order
  std::size_t processed = 0;           // run now
  std::size_t resumed = 0;             // taken from the journal
  std::size_t stale = 0;               // journal entries made with another processing key, processed again
  std::size_t failed = 0;              // records with ok = false
  double seconds = 0;                  // wall time of this run
};

/// Whether `subject` belongs to `shard` (rows without an id are keyed by their row).
bool subject_in_shard(const Subject& subject, const ShardSpec& shard);

/// Runs `process` on every valid subject of `cohort` in the shard that has no usable
/// journal entry (same scan path and signature; failed entries too unless retry_failed).
RunSummary run_cohort(const Cohort& cohort, const RunOptions& options, const SubjectProcessor& process);

}  // namespace brainage::cohort
