#include "app/cohort/cohort_outputs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "app/cohort/cohort_charts.h"
#include "app/cohort/cohort_report.h"
#include "common/csv.h"
#include "common/atomic_file.h"

namespace brainage::cohort {
namespace fs = std::filesystem;

namespace {

std::string num(double v) {
  if (!std::isfinite(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

}  // namespace

std::string predictions_csv(const CohortResults& r, const std::optional<Calibration>& cal) {
  // An ensemble with a VBM model (model/ensemble.h) also gives its two parts' raw ages.
  const bool parts = std::any_of(r.rows.begin(), r.rows.end(), [](const auto& row) {
    return row.record && row.record->details.contains("vbm_age");
  });
  auto detail = [](const auto& row, const char* key) {
    const auto& d = row.record->details;
    return d.contains(key) && d[key].is_number() ? num(d[key].template get<double>()) : std::string();
  };
  std::vector<std::string> header = {"subject_id", "age", "predicted_age", "brain_age_gap", "corrected_predicted_age",
                                     "corrected_gap", "age_sd_years"};
  if (parts) header.insert(header.end(), {"transformer_age", "vbm_age"});
  header.insert(header.end(), {"qc_flags", "error", "path"});
  if (r.has_sex) header.push_back("sex");
  if (r.has_site) header.push_back("site");
  header.insert(header.end(), r.extra_columns.begin(), r.extra_columns.end());
  std::string out = csv_record(header);
  for (const auto& row : r.rows) {
    const Subject& s = row.subject;
    std::vector<std::string> f = {s.id, s.age_text};
    std::string flags;
    if (row.record)
      for (const auto& q : row.record->qc_flags) flags += (flags.empty() ? "" : ";") + q;
    if (!row.failed()) {
      const double p = row.record->predicted_age;
      const double age = s.age.value_or(std::nan(""));
      f.insert(f.end(), {num(p), num(p - age), cal ? num(cal->correct(p)) : "", cal ? num(cal->correct(p) - age) : "",
                         num(row.record->age_sd_years)});
      if (parts) f.insert(f.end(), {detail(row, "transformer_age"), detail(row, "vbm_age")});
    } else {
      f.insert(f.end(), {"", "", "", "", ""});
      if (parts) f.insert(f.end(), {"", ""});
    }
    f.push_back(flags);
    f.push_back(row.error());
    f.push_back(s.scan.string());
    if (r.has_sex) f.push_back(s.sex);
    if (r.has_site) f.push_back(s.site);
    for (std::size_t i = 0; i < r.extra_columns.size(); ++i) f.push_back(i < s.extra.size() ? s.extra[i] : "");
    out += csv_record(f);
  }
  return out;
}

CohortMetrics cohort_metrics(const CohortResults& r, const std::optional<Calibration>& cal) {
  std::vector<MetricSubject> subjects;
  for (const auto& row : r.rows)
    if (!row.failed() && row.subject.age)
      subjects.push_back({*row.subject.age, row.record->predicted_age, row.subject.sex, row.subject.site});
  return compute_metrics(subjects, cal, r.has_sex, r.has_site);
}

nlohmann::json metrics_json(const CohortResults& r, const CohortMetrics& m, const std::string& warning) {
  std::size_t row_errors = 0, subject_failures = 0, ok = 0, without_age = 0;
  for (const auto& row : r.rows) {
    if (!row.subject.row_error.empty())
      ++row_errors;
    else if (row.failed())
      ++subject_failures;
    else if (!row.subject.age)
      ++without_age, ++ok;
    else
      ++ok;
  }
  nlohmann::json j;
  j["cohort"] = {{"source", r.cohort_source}, {"format", r.cohort_format}, {"rows", r.cohort_rows}};
  if (r.shard.active()) j["cohort"]["shard"] = r.shard.text();
  j["counts"] = {{"rows", r.rows.size()},
                 {"succeeded", ok},
                 {"evaluated", m.raw.n},
                 {"predicted_without_age", without_age},
                 {"failed", row_errors + subject_failures},
                 {"row_errors", row_errors},
                 {"subject_failures", subject_failures},
                 {"predicted_despite_failed_qc", r.qc_failed_included_count()}};  // --include-qc-failed, in the metrics
  const nlohmann::json accuracy = to_json(m);
  for (const auto& [key, value] : accuracy.items()) j[key] = value;
  if (!warning.empty()) j["bias_correction_warning"] = warning;
  if (const auto offset = systematic_offset_warning(m.raw); !offset.empty()) j["systematic_offset_warning"] = offset;
  return j;
}

OutputSummary write_cohort_outputs(const fs::path& out_dir, const CohortResults& r, const OutputOptions& options) {
  ensure_writable_directory(out_dir);
  OutputSummary summary;
  const auto cal = resolve_calibration(r, &summary.calibration_warning);
  summary.metrics = cohort_metrics(r, cal);
  summary.rows = r.rows.size();
  summary.failures = r.failure_count();
  summary.evaluated = summary.metrics.raw.n;

  write_file_atomic(out_dir / "results.json", to_json(r).dump(1) + "\n");
  write_file_atomic(out_dir / "predictions.csv", predictions_csv(r, cal));
  write_file_atomic(out_dir / "metrics.json", metrics_json(r, summary.metrics, summary.calibration_warning).dump(2) + "\n");

  std::vector<fs::path> plots;
  if (options.plots && summary.evaluated > 0 && charts_available()) {
    ScatterSeries pred{"predicted", {}, {}, {31, 119, 180}};
    ScatterSeries corr{"bias-corrected", {}, {}, {214, 39, 40}};
    ScatterSeries gap{"gap", {}, {}, {31, 119, 180}};
    ScatterSeries cgap{"corrected gap", {}, {}, {214, 39, 40}};
    for (const auto& row : r.rows)
      if (!row.failed() && row.subject.age) {
        const double a = *row.subject.age, p = row.record->predicted_age;
        pred.x.push_back(a), pred.y.push_back(p);
        gap.x.push_back(a), gap.y.push_back(p - a);
        if (cal) {
          corr.x.push_back(a), corr.y.push_back(cal->correct(p));
          cgap.x.push_back(a), cgap.y.push_back(cal->correct(p) - a);
        }
      }
    plots = {out_dir / "predicted_vs_age.png", out_dir / "gap_vs_age.png"};
    render_predicted_vs_age({pred, corr}, plots[0]);
    render_gap_vs_age({gap, cgap}, plots[1]);
  } else if (options.plots && summary.evaluated > 0) {
    summary.plots_note = "plots not rendered: no X display could be opened or started (is Xvfb installed? Debian package xvfb)";
  }

  if (options.report) {
    ReportInputs in{&r, &summary.metrics, summary.calibration_warning, plots, summary.plots_note};
    write_file_atomic(out_dir / "report.html", render_report_html(in));
  }
  return summary;
}

}  // namespace brainage::cohort
