#include "app/cohort/cohort_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "app/cohort/cohort_table.h"
#include "common/csv.h"
#include "common/errors.h"

namespace brainage::cohort {

namespace {

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? std::nan("") : s / static_cast<double>(v.size());
}

/// NaN and infinities become JSON null.
nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace

Calibration fit_calibration(const std::vector<double>& ages, const std::vector<double>& predicted,
                            const std::string& source) {
  std::string why_not;
  Calibration c;
  c.correction = BiasCorrection::fit(ages, predicted, &why_not);
  if (!c.correction.usable()) throw ProcessingError(source + ": " + why_not);
  c.source = source;
  return c;
}

Calibration calibration_from_predictions_csv(const std::filesystem::path& csv) {
  const CsvTable table = read_delimited_file(csv);
  const int age = column_index(table.header, "age");
  const int pred = column_index(table.header, "predicted_age");
  if (age < 0 || pred < 0)
    throw InvalidInputError(csv.string() + ": calibration table needs age and predicted_age columns "
                            "(a predictions.csv written by brainage evaluate)");
  std::vector<double> ages, preds;
  for (const auto& row : table.rows) {
    if (static_cast<std::size_t>(std::max(age, pred)) >= row.size()) continue;
    const std::string a = trim(row[static_cast<std::size_t>(age)]), p = trim(row[static_cast<std::size_t>(pred)]);
    if (a.empty() || p.empty()) continue;
    try {
      const auto parsed = parse_age(a);
      std::size_t used = 0;
      const double pv = std::stod(p, &used);
      if (!parsed || used != p.size() || !std::isfinite(pv)) continue;
      ages.push_back(*parsed);
      preds.push_back(pv);
    } catch (const std::exception&) {
      continue;
    }
  }
  const std::string abs = std::filesystem::absolute(csv).lexically_normal().string();
  Calibration c = fit_calibration(ages, preds, abs);
  c.source = "fitted on " + abs + " (--calibration, N=" + std::to_string(c.correction.n) + ")";
  return c;
}

ErrorStats error_stats(const std::vector<double>& ages, const std::vector<double>& predicted) {
  ErrorStats s;
  s.n = ages.size();
  if (s.n == 0) {
    s.mae = s.rmse = s.mean_gap = s.pearson_r = s.r2 = s.gap_age_r = std::nan("");
    return s;
  }
  std::vector<double> gaps(s.n);
  double abs_sum = 0, sq_sum = 0;
  for (std::size_t i = 0; i < s.n; ++i) {
    gaps[i] = predicted[i] - ages[i];
    abs_sum += std::abs(gaps[i]);
    sq_sum += gaps[i] * gaps[i];
  }
  const double n = static_cast<double>(s.n);
  s.mae = abs_sum / n;
  s.rmse = std::sqrt(sq_sum / n);
  s.mean_gap = mean(gaps);
  // With 2 subjects any correlation is ±1: reported as not defined (NaN, null in JSON).
  const bool correlations_defined = s.n >= 3;
  s.pearson_r = correlations_defined ? pearson(ages, predicted) : std::nan("");
  const double ma = mean(ages);
  double ss_tot = 0;
  for (double a : ages) ss_tot += (a - ma) * (a - ma);
  s.r2 = ss_tot > 0 ? 1.0 - sq_sum / ss_tot : std::nan("");
  s.gap_age_r = correlations_defined ? pearson(gaps, ages) : std::nan("");
  return s;
}

std::string systematic_offset_warning(const ErrorStats& s, std::size_t min_subjects, double min_offset_years) {
  if (s.n < min_subjects || !std::isfinite(s.mean_gap)) return "";
  const double n = static_cast<double>(s.n);
  const double sd = std::sqrt(std::max(0.0, s.rmse * s.rmse - s.mean_gap * s.mean_gap) * n / (n - 1.0));
  const double standard_error = sd / std::sqrt(n);
  if (std::abs(s.mean_gap) < min_offset_years || std::abs(s.mean_gap) < 3.0 * standard_error) return "";
  char text[512];
  std::snprintf(text, sizeof text,
                "mean brain-age gap %+.1f y over %zu subjects (standard error %.1f y): in healthy controls "
                "this is a systematic offset, most likely a scanner or protocol unlike the model's training "
                "scans (tissue contrast moves the age, docs/ROBUSTNESS.md \"Contrast\"); check the model on "
                "local controls before reading individual gaps",
                s.mean_gap, s.n, standard_error);
  return text;
}

namespace {

std::string age_bin(double age) {
  const int lo = static_cast<int>(std::floor(age / 10.0)) * 10;
  return std::to_string(lo) + "-" + std::to_string(lo + 9);
}

std::vector<GroupStats> group_stats(const std::vector<MetricSubject>& subjects,
                                    const std::optional<Calibration>& calibration,
                                    const std::function<std::string(const MetricSubject&)>& key,
                                    bool sort_numeric) {
  std::map<std::string, std::vector<const MetricSubject*>> groups;
  for (const auto& s : subjects) groups[key(s)].push_back(&s);
  std::vector<GroupStats> out;
  for (const auto& [name, members] : groups) {
    GroupStats g;
    g.group = name;
    g.n = members.size();
    for (const auto* m : members) {
      const double gap = m->predicted - m->age;
      const double cgap = (calibration ? calibration->correct(m->predicted) : m->predicted) - m->age;
      g.mae += std::abs(gap);
      g.mean_gap += gap;
      g.mae_corrected += std::abs(cgap);
      g.mean_gap_corrected += cgap;
    }
    const double n = static_cast<double>(g.n);
    g.mae /= n;
    g.mean_gap /= n;
    g.mae_corrected /= n;
    g.mean_gap_corrected /= n;
    out.push_back(g);
  }
  if (sort_numeric)
    std::sort(out.begin(), out.end(),
              [](const GroupStats& a, const GroupStats& b) { return std::stoi(a.group) < std::stoi(b.group); });
  return out;
}

}  // namespace

CohortMetrics compute_metrics(const std::vector<MetricSubject>& subjects, const std::optional<Calibration>& calibration,
                              bool by_sex, bool by_site) {
  CohortMetrics m;
  m.calibration = calibration;
  std::vector<double> ages, preds, corrected;
  for (const auto& s : subjects) {
    ages.push_back(s.age);
    preds.push_back(s.predicted);
    if (calibration) corrected.push_back(calibration->correct(s.predicted));
  }
  m.raw = error_stats(ages, preds);
  if (calibration) m.corrected = error_stats(ages, corrected);
  m.by_age_bin = group_stats(subjects, calibration, [](const MetricSubject& s) { return age_bin(s.age); }, true);
  auto or_unknown = [](const std::string& v) { return v.empty() ? std::string("unknown") : v; };
  if (by_sex) m.by_sex = group_stats(subjects, calibration, [&](const MetricSubject& s) { return or_unknown(s.sex); }, false);
  if (by_site)
    m.by_site = group_stats(subjects, calibration, [&](const MetricSubject& s) { return or_unknown(s.site); }, false);
  return m;
}

nlohmann::json to_json(const ErrorStats& s) {
  return {{"n", s.n},           {"mae", number(s.mae)},     {"rmse", number(s.rmse)},
          {"mean_gap", number(s.mean_gap)}, {"pearson_r", number(s.pearson_r)}, {"r2", number(s.r2)},
          {"gap_age_correlation", number(s.gap_age_r)}};
}

nlohmann::json to_json(const Calibration& c) {
  return {{"slope", number(c.correction.slope)},
          {"intercept", number(c.correction.intercept)},
          {"model", "predicted = slope * age + intercept; corrected = (predicted - intercept) / slope"},
          {"source", c.source},
          {"fitted_on_evaluated_cohort", c.fitted_on_evaluated_cohort},
          {"n", c.correction.n}};
}

nlohmann::json to_json(const CohortMetrics& m) {
  auto groups = [&](const std::vector<GroupStats>& gs) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& g : gs) {
      nlohmann::json j = {{"group", g.group}, {"n", g.n}, {"mae", number(g.mae)}, {"mean_gap", number(g.mean_gap)}};
      if (m.calibration) {
        j["mae_corrected"] = number(g.mae_corrected);
        j["mean_gap_corrected"] = number(g.mean_gap_corrected);
      }
      arr.push_back(j);
    }
    return arr;
  };
  nlohmann::json j;
  j["uncorrected"] = to_json(m.raw);
  j["corrected"] = m.corrected ? to_json(*m.corrected) : nlohmann::json(nullptr);
  j["bias_correction"] = m.calibration ? to_json(*m.calibration) : nlohmann::json(nullptr);
  j["mae_by_age_bin"] = groups(m.by_age_bin);
  if (!m.by_sex.empty()) j["mae_by_sex"] = groups(m.by_sex);
  if (!m.by_site.empty()) j["mae_by_site"] = groups(m.by_site);
  return j;
}

}  // namespace brainage::cohort
