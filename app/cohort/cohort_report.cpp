#include "app/cohort/cohort_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

namespace brainage::cohort {
namespace fs = std::filesystem;

std::string base64(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fmt(double v, int decimals = 2) {
  if (!std::isfinite(v)) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string img_tag(const fs::path& png, const std::string& alt, const std::string& style) {
  std::error_code ec;
  if (png.empty() || !fs::is_regular_file(png, ec)) return "";
  return "<img alt=\"" + escape(alt) + "\" style=\"" + style + "\" src=\"data:image/png;base64," +
         base64(read_bytes(png)) + "\">";
}

void stats_rows(std::ostringstream& o, const std::string& label, const ErrorStats& s) {
  o << "<tr><th>" << label << "</th><td>" << s.n << "</td><td>" << fmt(s.mae) << "</td><td>" << fmt(s.rmse)
    << "</td><td>" << fmt(s.mean_gap) << "</td><td>" << fmt(s.pearson_r, 3) << "</td><td>" << fmt(s.r2, 3)
    << "</td><td>" << fmt(s.gap_age_r, 3) << "</td></tr>\n";
}

void group_table(std::ostringstream& o, const std::string& title, const std::vector<GroupStats>& groups,
                 bool corrected) {
  if (groups.empty()) return;
  o << "<h3>MAE by " << escape(title) << "</h3>\n<table><tr><th>" << escape(title)
    << "</th><th>N</th><th>MAE</th><th>mean gap</th>";
  if (corrected) o << "<th>MAE (corrected)</th><th>mean gap (corrected)</th>";
  o << "</tr>\n";
  for (const auto& g : groups) {
    o << "<tr><td>" << escape(g.group) << "</td><td>" << g.n << "</td><td>" << fmt(g.mae) << "</td><td>"
      << fmt(g.mean_gap) << "</td>";
    if (corrected) o << "<td>" << fmt(g.mae_corrected) << "</td><td>" << fmt(g.mean_gap_corrected) << "</td>";
    o << "</tr>\n";
  }
  o << "</table>\n";
}

/// "Model": the checkpoint id(s) the rows were predicted with and, for an ensemble with a
/// VBM model, how its age is made and the mean age of each part over the cohort.
void model_section(std::ostringstream& o, const CohortResults& r) {
  std::set<std::string> ids;
  double members = 0, weight = -1, transformer_sum = 0, vbm_sum = 0;
  int with_parts = 0;
  for (const auto& row : r.rows) {
    if (row.failed()) continue;
    const auto& d = row.record->details;
    if (d.contains("model_id") && d["model_id"].is_string()) ids.insert(d["model_id"].get<std::string>());
    if (d.contains("ensemble_members") && d["ensemble_members"].is_number()) members = d["ensemble_members"].get<double>();
    if (d.contains("vbm_age") && d["vbm_age"].is_number() && d.contains("transformer_age")) {
      ++with_parts;
      transformer_sum += d["transformer_age"].get<double>();
      vbm_sum += d["vbm_age"].get<double>();
      if (d.contains("vbm_weight") && d["vbm_weight"].is_number()) weight = d["vbm_weight"].get<double>();
    }
  }
  if (ids.empty()) return;
  o << "<h2>Model</h2>\n<p>";
  for (const auto& id : ids) o << "<code>" << escape(id) << "</code> ";
  if (ids.size() > 1) o << "<b>(rows predicted by different models)</b>";
  if (members > 1) o << "&mdash; an ensemble of " << fmt(members, 0) << " transformers";
  o << ".</p>\n";
  if (with_parts > 0) {
    o << "<p>Each age is the weighted mean of the transformers' mean age and a VBM ridge model's age (tissue maps)";
    if (weight >= 0) o << ": (1 &minus; " << fmt(weight, 2) << ") &times; transformers + " << fmt(weight, 2) << " &times; VBM";
    o << ". Over the " << with_parts << " predicted rows the transformers give " << fmt(transformer_sum / with_parts, 1)
      << " y on average and the VBM model " << fmt(vbm_sum / with_parts, 1)
      << " y; predictions.csv has both parts per subject (transformer_age, vbm_age).</p>\n";
  }
}

}  // namespace

std::string render_report_html(const ReportInputs& in, const ReportOptions& options) {
  const CohortResults& r = *in.results;
  const CohortMetrics& m = *in.metrics;
  const auto& cal = m.calibration;
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>brainage cohort report</title>\n<style>"
       "body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}"
       "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
       "th{background:#eee}td:first-child,th:first-child{text-align:left}"
       ".warn{background:#fff3cd;border:1px solid #e0b000;padding:0.6em 1em;margin:1em 0}"
       ".fail td{background:#fde2e2}.case{display:inline-block;margin:0.5em;vertical-align:top;font-size:90%}"
       "</style></head><body>\n";
  o << "<h1>Brain-age cohort report</h1>\n<p>Cohort: <code>" << escape(r.cohort_source) << "</code> ("
    << escape(r.cohort_format) << ", " << r.cohort_rows << " rows)";
  if (r.shard.active()) o << ", shard " << r.shard.text() << " (" << r.rows.size() << " rows)";
  o << ". Failed rows: " << r.failure_count() << ".";
  if (const auto included = r.qc_failed_included_count())
    o << " Predicted although QC failed (--include-qc-failed; in the metrics when their age is known): " << included
      << ".";
  o << "</p>\n";

  model_section(o, r);
  o << "<h2>Bias correction</h2>\n";
  if (cal) {
    o << "<p>predicted = " << fmt(cal->correction.slope, 4) << " &times; age + " << fmt(cal->correction.intercept, 3)
      << "; corrected = (predicted &minus; intercept) / slope. Source: " << escape(cal->source) << ".</p>\n";
    if (cal->fitted_on_evaluated_cohort)
      o << "<div class=\"warn\"><b>Fitted on the evaluated cohort</b> (--fit-calibration-on-cohort): the corrected "
           "metrics use the cohort's own ages and are optimistic; they are not an independent evaluation.</div>\n";
  } else {
    o << "<div class=\"warn\"><b>No bias correction</b>: " << escape(in.calibration_warning) << "</div>\n";
  }
  if (const auto offset = systematic_offset_warning(m.raw); !offset.empty())
    o << "<div class=\"warn\"><b>Systematic offset</b>: " << escape(offset) << "</div>\n";

  o << "<h2>Accuracy</h2>\n<table><tr><th></th><th>N</th><th>MAE</th><th>RMSE</th><th>mean gap</th>"
       "<th>Pearson r</th><th>R&sup2;</th><th>r(gap, age)</th></tr>\n";
  stats_rows(o, "uncorrected", m.raw);
  if (m.corrected) stats_rows(o, "corrected", *m.corrected);
  o << "</table>\n<p>Ages and errors in years; gap = predicted &minus; chronological age.</p>\n";
  group_table(o, "age bin", m.by_age_bin, cal.has_value());
  group_table(o, "sex", m.by_sex, cal.has_value());
  group_table(o, "site", m.by_site, cal.has_value());

  o << "<h2>Plots</h2>\n";
  for (const auto& p : in.plots) o << img_tag(p, p.filename().string(), "max-width:49%") << "\n";
  if (!in.plots_note.empty()) o << "<p class=\"warn\">" << escape(in.plots_note) << "</p>\n";

  // Worst cases: the largest |gap| (corrected when a calibration is in effect).
  std::vector<std::pair<double, const ResultRow*>> cases;
  for (const auto& row : r.rows)
    if (!row.failed() && row.subject.age) {
      const double p = cal ? cal->correct(row.record->predicted_age) : row.record->predicted_age;
      cases.emplace_back(p - *row.subject.age, &row);
    }
  std::stable_sort(cases.begin(), cases.end(),
                   [](const auto& a, const auto& b) { return std::abs(a.first) > std::abs(b.first); });
  if (!cases.empty()) {
    o << "<h2>Largest gaps</h2>\n";
    for (std::size_t i = 0; i < cases.size() && static_cast<int>(i) < options.worst_cases; ++i) {
      const ResultRow& row = *cases[i].second;
      o << "<div class=\"case\"><b>" << escape(row.subject.id) << "</b><br>age " << fmt(*row.subject.age, 1)
        << ", predicted " << fmt(row.record->predicted_age, 1);
      if (cal) o << ", corrected " << fmt(cal->correct(row.record->predicted_age), 1);
      o << ", gap " << fmt(cases[i].first, 1) << (cal ? " (corrected)" : "");
      if (!row.record->qc_flags.empty()) {
        o << "<br>Flags:";
        for (const auto& f : row.record->qc_flags) o << " " << escape(f);
      }
      o << "<br>" << img_tag(row.record->qc_image, row.subject.id + " QC", "width:340px") << "</div>\n";
    }
  }

  o << "<h2>Failed rows</h2>\n";
  if (r.failure_count() == 0) {
    o << "<p>None.</p>\n";
  } else {
    o << "<table><tr><th>row</th><th>subject</th><th>reason</th></tr>\n";
    for (const auto& row : r.rows)
      if (row.failed())
        o << "<tr class=\"fail\"><td>" << row.subject.row << "</td><td>" << escape(row.subject.id)
          << "</td><td style=\"text-align:left\">" << escape(row.error()) << "</td></tr>\n";
    o << "</table>\n";
  }

  o << "<details><summary>All predictions (" << r.rows.size() - r.failure_count() << " of " << r.rows.size()
    << " rows; the failed ones are listed above)</summary>\n<table><tr><th>subject</th>"
       "<th>age</th><th>predicted</th><th>gap</th>"
    << (cal ? "<th>corrected</th><th>corrected gap</th>" : "") << "<th>QC flags</th></tr>\n";
  for (const auto& row : r.rows) {
    if (row.failed()) continue;
    const double p = row.record->predicted_age;
    const double age = row.subject.age.value_or(std::nan(""));
    std::string flags;
    for (const auto& f : row.record->qc_flags) flags += (flags.empty() ? "" : "; ") + f;
    o << "<tr><td>" << escape(row.subject.id) << "</td><td>" << fmt(age) << "</td><td>" << fmt(p) << "</td><td>"
      << fmt(p - age) << "</td>";
    if (cal) o << "<td>" << fmt(cal->correct(p)) << "</td><td>" << fmt(cal->correct(p) - age) << "</td>";
    o << "<td>" << escape(flags) << "</td></tr>\n";
  }
  o << "</table></details>\n<p style=\"color:#777\">Written by brainage evaluate. Machine-readable: "
       "predictions.csv, metrics.json, results.json.</p>\n</body></html>\n";
  return o.str();
}

}  // namespace brainage::cohort
