#pragma once
// Everything one evaluate run (or one shard of it) knows about its rows, as written to
// <out>/results.json: the cohort's description, how bias correction was chosen, and per
// row the subject and its journaled outcome. `brainage merge` reads these files back.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/cohort/cohort_metrics.h"
#include "app/cohort/cohort_table.h"
#include "app/cohort/shard.h"
#include "app/cohort/subject_record.h"

namespace brainage::cohort {

/// How the bias-correction parameters are chosen.
struct CalibrationChoice {
  enum class Mode { kNone, kGiven, kFitOnCohort };
  Mode mode = Mode::kNone;
  std::optional<Calibration> given;  // kGiven: from the checkpoint or --calibration
  std::string note;                  // kNone: why there is none
};

struct ResultRow {
  Subject subject;
  std::optional<SubjectRecord> record;  // absent for a row error

  bool failed() const { return !subject.row_error.empty() || !record || !record->ok; }
  /// The row's failure reason ("" when it succeeded).
  std::string error() const;
};

struct CohortResults {
  std::string cohort_source;
  std::string cohort_format;
  std::size_t cohort_rows = 0;  // rows in the whole cohort (all shards)
  std::string cohort_sha256;    // cohort_digest() of the table as read ("" in results written before it)
  std::vector<std::string> extra_columns;
  bool has_sex = false, has_site = false;
  ShardSpec shard;
  CalibrationChoice calibration;
  std::vector<ResultRow> rows;  // this run's rows, ascending by subject.row

  std::size_t failure_count() const;
  /// Rows predicted although a QC check failed (evaluate --include-qc-failed: a qc_flags
  /// line "QC failed: ..."); they count in the metrics.
  std::size_t qc_failed_included_count() const;
};

/// Rows of `cohort` that belong to `shard`, matched with `records` (by subject id).
CohortResults assemble_results(const Cohort& cohort, const ShardSpec& shard, const CalibrationChoice& calibration,
                               const std::vector<SubjectRecord>& records);

nlohmann::json to_json(const CohortResults& results);
/// Throws InvalidInputError naming `source` for a file that is not a results.json.
CohortResults results_from_json(const nlohmann::json& json, const std::string& source);
CohortResults read_results(const std::filesystem::path& results_json);

/// SHA-256 (hex) of the cohort's rows as read (id, absolute scan path, age — its value when
/// valid, else the cell —, sex, site, extra columns, row error, in file order): shards of
/// one evaluate command share it, so `merge` notices a cohort edited between shards and
/// accepts the same table at another path or in another encoding (common/content_hash.h).
std::string cohort_digest(const Cohort& cohort);

/// Combines the results of the shards 0/N .. N-1/N of one cohort. Throws InvalidInputError
/// when they come from different cohorts or calibration choices, a shard is missing or
/// given twice.
CohortResults merge_results(const std::vector<CohortResults>& shards, const std::vector<std::string>& sources);

/// The calibration in effect: the given one, none, or (kFitOnCohort) fitted on the rows
/// with age and prediction. `warning` receives why none could be fitted.
std::optional<Calibration> resolve_calibration(const CohortResults& results, std::string* warning);

}  // namespace brainage::cohort
