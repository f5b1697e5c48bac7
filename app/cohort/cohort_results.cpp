#include "app/cohort/cohort_results.h"

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "common/content_hash.h"
#include "common/csv.h"
#include "common/errors.h"

namespace brainage::cohort {
namespace fs = std::filesystem;

std::string ResultRow::error() const {
  if (!subject.row_error.empty()) return "row error: " + subject.row_error;
  if (!record) return "not processed";
  return record->ok ? std::string() : record->error;
}

std::size_t CohortResults::failure_count() const {
  return static_cast<std::size_t>(std::count_if(rows.begin(), rows.end(), [](const ResultRow& r) { return r.failed(); }));
}

std::size_t CohortResults::qc_failed_included_count() const {
  return static_cast<std::size_t>(std::count_if(rows.begin(), rows.end(), [](const ResultRow& r) {
    return !r.failed() && std::any_of(r.record->qc_flags.begin(), r.record->qc_flags.end(),
                                      [](const std::string& f) { return f.rfind("QC failed: ", 0) == 0; });
  }));
}

std::string cohort_digest(const Cohort& cohort) {
  std::vector<std::string> header{"subject_id", "scan", "age", "sex", "site"};
  header.insert(header.end(), cohort.extra_columns.begin(), cohort.extra_columns.end());
  header.push_back("row_error");
  std::string rows = csv_record(header);
  for (const auto& s : cohort.subjects) {
    // A valid age by its value (38.78 and 38.780 are one age), anything else as written.
    std::ostringstream age;
    if (s.age) age << std::setprecision(17) << *s.age;
    else age << s.age_text;
    std::vector<std::string> fields{s.id, s.scan.string(), age.str(), s.sex, s.site};
    fields.insert(fields.end(), s.extra.begin(), s.extra.end());
    fields.push_back(s.row_error);
    rows += csv_record(fields);
  }
  return sha256_hex(rows);
}

CohortResults assemble_results(const Cohort& cohort, const ShardSpec& shard, const CalibrationChoice& calibration,
                               const std::vector<SubjectRecord>& records) {
  CohortResults out;
  out.cohort_source = cohort.source.string();
  out.cohort_format = cohort.format;
  out.cohort_rows = cohort.subjects.size();
  out.cohort_sha256 = cohort_digest(cohort);
  out.extra_columns = cohort.extra_columns;
  out.has_sex = cohort.has_sex;
  out.has_site = cohort.has_site;
  out.shard = shard;
  out.calibration = calibration;
  std::map<std::string, const SubjectRecord*> by_id;
  for (const auto& r : records) by_id[r.subject_id] = &r;
  for (const Subject& s : cohort.subjects) {
    const std::string key = s.id.empty() ? "#row" + std::to_string(s.row) : s.id;
    if (shard.active() && !in_shard(key, shard)) continue;
    ResultRow row{s, std::nullopt};
    if (s.row_error.empty())
      if (auto it = by_id.find(s.id); it != by_id.end()) row.record = *it->second;
    out.rows.push_back(std::move(row));
  }
  return out;
}

namespace {

nlohmann::json subject_json(const Subject& s) {
  return {{"row", s.row},          {"subject_id", s.id}, {"scan", s.scan.string()},
          {"age", s.age ? nlohmann::json(*s.age) : nlohmann::json(nullptr)},
          {"age_text", s.age_text}, {"sex", s.sex},       {"site", s.site},
          {"extra", s.extra},       {"row_error", s.row_error}};
}

Subject subject_from_json(const nlohmann::json& j) {
  Subject s;
  s.row = j.at("row").get<std::size_t>();
  s.id = j.at("subject_id").get<std::string>();
  s.scan = j.at("scan").get<std::string>();
  if (!j.at("age").is_null()) s.age = j.at("age").get<double>();
  s.age_text = j.at("age_text").get<std::string>();
  s.sex = j.at("sex").get<std::string>();
  s.site = j.at("site").get<std::string>();
  s.extra = j.at("extra").get<std::vector<std::string>>();
  s.row_error = j.at("row_error").get<std::string>();
  return s;
}

const char* mode_name(CalibrationChoice::Mode m) {
  switch (m) {
    case CalibrationChoice::Mode::kGiven: return "given";
    case CalibrationChoice::Mode::kFitOnCohort: return "fit_on_cohort";
    default: return "none";
  }
}

nlohmann::json choice_json(const CalibrationChoice& c) {
  nlohmann::json j = {{"mode", mode_name(c.mode)}, {"note", c.note}};
  j["calibration"] = c.given ? to_json(*c.given) : nlohmann::json(nullptr);
  return j;
}

CalibrationChoice choice_from_json(const nlohmann::json& j) {
  CalibrationChoice c;
  const std::string mode = j.at("mode").get<std::string>();
  c.mode = mode == "given" ? CalibrationChoice::Mode::kGiven
           : mode == "fit_on_cohort" ? CalibrationChoice::Mode::kFitOnCohort
                                     : CalibrationChoice::Mode::kNone;
  c.note = j.value("note", std::string());
  if (!j.at("calibration").is_null()) {
    const auto& k = j.at("calibration");
    Calibration cal;
    cal.correction.slope = k.at("slope").get<double>();
    cal.correction.intercept = k.at("intercept").get<double>();
    cal.source = k.at("source").get<std::string>();
    cal.fitted_on_evaluated_cohort = k.at("fitted_on_evaluated_cohort").get<bool>();
    cal.correction.n = k.at("n").get<std::size_t>();
    c.given = cal;
  }
  return c;
}

}  // namespace

nlohmann::json to_json(const CohortResults& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows) {
    nlohmann::json j = {{"subject", subject_json(row.subject)}};
    j["record"] = row.record ? to_json(*row.record) : nlohmann::json(nullptr);
    if (row.record) j["record"].erase("seconds");  // timings live in run.json: results stay reproducible
    rows.push_back(std::move(j));
  }
  return {{"format", "brainage-cohort-results-1"},
          {"cohort", {{"source", r.cohort_source},
                      {"format", r.cohort_format},
                      {"rows", r.cohort_rows},
                      {"sha256", r.cohort_sha256},
                      {"extra_columns", r.extra_columns},
                      {"has_sex", r.has_sex},
                      {"has_site", r.has_site}}},
          {"shard", {{"index", r.shard.index}, {"count", r.shard.count}}},
          {"calibration_choice", choice_json(r.calibration)},
          {"rows", rows}};
}

CohortResults results_from_json(const nlohmann::json& j, const std::string& source) {
  try {
    if (j.at("format").get<std::string>() != "brainage-cohort-results-1")
      throw InvalidInputError(source + ": not a brainage cohort results file (format field)");
    CohortResults r;
    const auto& c = j.at("cohort");
    r.cohort_source = c.at("source").get<std::string>();
    r.cohort_format = c.at("format").get<std::string>();
    r.cohort_rows = c.at("rows").get<std::size_t>();
    r.cohort_sha256 = c.value("sha256", std::string());
    r.extra_columns = c.at("extra_columns").get<std::vector<std::string>>();
    r.has_sex = c.at("has_sex").get<bool>();
    r.has_site = c.at("has_site").get<bool>();
    r.shard = {j.at("shard").at("index").get<int>(), j.at("shard").at("count").get<int>()};
    r.calibration = choice_from_json(j.at("calibration_choice"));
    for (const auto& row : j.at("rows")) {
      ResultRow rr{subject_from_json(row.at("subject")), std::nullopt};
      if (!row.at("record").is_null()) rr.record = record_from_json(row.at("record"));
      r.rows.push_back(std::move(rr));
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw InvalidInputError(source + ": malformed cohort results (" + std::string(e.what()) + ")");
  }
}

CohortResults read_results(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw InvalidInputError(path.string() + ": file does not exist (not an evaluate output folder?)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InvalidInputError(path.string() + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  return results_from_json(j, path.string());
}

CohortResults merge_results(const std::vector<CohortResults>& shards, const std::vector<std::string>& sources) {
  if (shards.empty()) throw UsageError("brainage merge: no shard folders given");
  const CohortResults& first = shards.front();
  CohortResults out = first;
  out.rows.clear();
  out.shard = {};
  std::set<int> seen;
  const auto first_choice = to_json(first).at("calibration_choice").dump();
  for (std::size_t i = 0; i < shards.size(); ++i) {
    const auto& s = shards[i];
    const std::string& where = sources[i];
    // One cohort: the same rows as read (wherever the table lay: a copy, a symlinked path,
    // TSV or CSV); results without a digest (older folders) by the table's path and size.
    if (!s.cohort_sha256.empty() && !first.cohort_sha256.empty()) {
      if (s.cohort_sha256 != first.cohort_sha256)
        throw InvalidInputError(where + ": made from another version of the cohort table than " + sources[0] + " (" +
                                s.cohort_source + " vs " + first.cohort_source +
                                "): the table was edited between shards; evaluate every shard from one cohort file");
    } else if (s.cohort_source != first.cohort_source || s.cohort_rows != first.cohort_rows) {
      throw InvalidInputError(where + ": shard of cohort " + s.cohort_source + " (" + std::to_string(s.cohort_rows) +
                              " rows), the first shard is of " + first.cohort_source + " (" +
                              std::to_string(first.cohort_rows) + " rows)");
    }
    if (s.shard.count != first.shard.count)
      throw InvalidInputError(where + ": shard " + s.shard.text() + " does not split the cohort like " +
                              first.shard.text() + " (" + sources[0] + ")");
    if (!seen.insert(s.shard.index).second)
      throw InvalidInputError(where + ": shard " + s.shard.text() + " is given twice");
    if (to_json(s).at("calibration_choice").dump() != first_choice)
      throw InvalidInputError(where + ": shard used a different bias calibration than " + sources[0]);
    out.rows.insert(out.rows.end(), s.rows.begin(), s.rows.end());
  }
  std::string missing;
  for (int i = 0; i < first.shard.count; ++i)
    if (!seen.count(i)) missing += (missing.empty() ? "" : ", ") + std::to_string(i) + "/" + std::to_string(first.shard.count);
  if (!missing.empty())
    throw InvalidInputError(sources[0] + ": shards missing from the merge: " + missing);
  std::sort(out.rows.begin(), out.rows.end(),
            [](const ResultRow& a, const ResultRow& b) { return a.subject.row < b.subject.row; });
  for (std::size_t i = 1; i < out.rows.size(); ++i)
    if (out.rows[i].subject.row == out.rows[i - 1].subject.row)
      throw InvalidInputError("cohort row " + std::to_string(out.rows[i].subject.row) + " appears in two shards");
  return out;
}

std::optional<Calibration> resolve_calibration(const CohortResults& results, std::string* warning) {
  using Mode = CalibrationChoice::Mode;
  if (results.calibration.mode == Mode::kGiven) return results.calibration.given;
  if (results.calibration.mode == Mode::kNone) {
    if (warning) *warning = results.calibration.note;
    return std::nullopt;
  }
  std::vector<double> ages, preds;
  for (const auto& row : results.rows)
    if (!row.failed() && row.subject.age) {
      ages.push_back(*row.subject.age);
      preds.push_back(row.record->predicted_age);
    }
  try {
    Calibration c = fit_calibration(ages, preds, "the evaluated cohort");
    c.fitted_on_evaluated_cohort = true;
    c.source = "fitted on the evaluated cohort itself (--fit-calibration-on-cohort, N=" + std::to_string(c.correction.n) +
               "): corrected metrics are optimistic";
    return c;
  } catch (const Error& e) {
    if (warning) *warning = std::string("no bias correction: ") + e.what();
    return std::nullopt;
  }
}

}  // namespace brainage::cohort
