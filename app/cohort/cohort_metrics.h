#pragma once
// Accuracy of predicted against chronological age, and the bias correction.
//
// Bias correction: common/age_statistics.h (the same BiasCorrection `predict` applies, so
// both give the same corrected age for the same checkpoint). The parameters must come from
// data other than the evaluated cohort (the model checkpoint's validation split, or another
// cohort's predictions.csv); fitting them on the evaluated cohort is possible but always
// marked.
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/age_statistics.h"

namespace brainage::cohort {

/// A bias correction with where it came from.
struct Calibration {
  /** The correction. Default = identity (not fitted). */
  BiasCorrection correction{};
  std::string source;                       // where the numbers come from, in words
  bool fitted_on_evaluated_cohort = false;  // true only with --fit-calibration-on-cohort

  double correct(double predicted) const { return correction.apply(predicted); }
};

/// BiasCorrection::fit with the reason it refuses thrown: ProcessingError naming `source`
/// with fewer than 3 subjects, no spread in age, or a slope ≤ kMinBiasSlope.
Calibration fit_calibration(const std::vector<double>& ages, const std::vector<double>& predicted,
                            const std::string& source);

/// Reads age and predicted_age columns of a predictions.csv (from `brainage evaluate`)
/// and fits a calibration on its rows that have both. Throws InvalidInputError naming the
/// file when it lacks the columns.
Calibration calibration_from_predictions_csv(const std::filesystem::path& csv);

struct MetricSubject {
  double age = 0;
  double predicted = 0;
  std::string sex;
  std::string site;
};

struct ErrorStats {
  std::size_t n = 0;
  double mae = 0, rmse = 0, mean_gap = 0;   // gap = predicted − age
  double pearson_r = 0, r2 = 0;             // r of predicted with age (NaN below 3 subjects); R² = 1 − SSres/SStot
  double gap_age_r = 0;                     // correlation of the gap with age (NaN below 3 subjects)
};

struct GroupStats {
  std::string group;  // "20-29", "F", "HH", ...
  std::size_t n = 0;
  double mae = 0, mean_gap = 0;
  double mae_corrected = 0, mean_gap_corrected = 0;  // equal to the raw ones without calibration
};

struct CohortMetrics {
  ErrorStats raw;
  std::optional<ErrorStats> corrected;  // with a calibration
  std::optional<Calibration> calibration;
  std::vector<GroupStats> by_age_bin;   // decades: "20-29", "30-39", ...
  std::vector<GroupStats> by_sex;       // when the cohort has a sex column
  std::vector<GroupStats> by_site;      // when the cohort has a site column
};

ErrorStats error_stats(const std::vector<double>& ages, const std::vector<double>& predicted);

/// When a cohort's gaps sit systematically off zero: with at least `min_subjects` subjects,
/// |mean gap| ≥ `min_offset_years` and ≥ 3 standard errors (sd of the gaps / √n), a
/// warning in words (years, n, the reading for healthy controls: a scanner or protocol
/// unlike the training data, docs/ROBUSTNESS.md "Contrast"); otherwise "". A patient cohort
/// may carry a real mean gap: the text says so. Never throws.
std::string systematic_offset_warning(const ErrorStats& stats, std::size_t min_subjects = 10,
                                      double min_offset_years = 4.0);

/// Everything metrics.json reports about accuracy. Groups are sorted by name (age bins by
/// age); empty sex/site values are grouped as "unknown".
CohortMetrics compute_metrics(const std::vector<MetricSubject>& subjects, const std::optional<Calibration>& calibration,
                              bool by_sex, bool by_site);

nlohmann::json to_json(const ErrorStats& stats);
nlohmann::json to_json(const Calibration& calibration);
nlohmann::json to_json(const CohortMetrics& metrics);

}  // namespace brainage::cohort
