#pragma once
// The statistics of predicted against chronological age that more than one stage needs:
// the Pearson correlation and the linear bias correction. One copy, used by training
// (validation r, the checkpoint's correction), `predict` and `evaluate`.
//
// Bias correction (Beheshti et al. 2019; Cole et al. 2018; de Lange & Cole 2020): on
// held-out predictions fit  predicted = slope · age + intercept  by least squares; a
// prediction is corrected as (predicted − intercept) / slope. A slope ≤ kMinBiasSlope is
// not usable (predictions barely follow age; dividing would multiply errors by more than
// 10): apply() then leaves predictions unchanged, in `predict` and `evaluate` alike.
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace brainage {

/// Pearson correlation of x and y. NaN (not 0) when the sizes differ, n < 2, or either side
/// has no spread: "no correlation measurable" is not "no correlation". Never throws.
double pearson(const std::vector<double>& x, const std::vector<double>& y);

/** The smallest usable bias-correction slope. = 0.1. */
inline constexpr double kMinBiasSlope = 0.1;

struct BiasCorrection {
  /** Slope a of predicted = a·age + b. Default = 1 (identity). */
  double slope{1.0};
  /** Intercept b, years. Default = 0 (identity). */
  double intercept{0.0};
  /** Predictions the fit used; 0 = not fitted (identity). Default = 0. */
  std::size_t n{0};

  /// Fitted (n > 0) with a slope > kMinBiasSlope.
  bool usable() const { return n > 0 && slope > kMinBiasSlope; }
  /// (predicted − intercept) / slope when usable(), else `predicted` unchanged (years).
  double apply(double predicted) const { return usable() ? (predicted - intercept) / slope : predicted; }

  /// Least-squares fit on paired ages and predictions (years). Returns the identity (n = 0)
  /// for fewer than 3 pairs, sizes that differ or no spread in age; a fit whose slope is
  /// ≤ kMinBiasSlope is returned as fitted (n > 0, recorded in checkpoints) but is not
  /// usable(). In every case but a usable fit the reason goes to `*why_not` (when given).
  /// Never throws.
  static BiasCorrection fit(const std::vector<double>& ages, const std::vector<double>& predictions,
                            std::string* why_not = nullptr);
};

/// {"slope", "intercept", "n", "applied": usable()} (checkpoints, prediction.json).
nlohmann::json to_json(const BiasCorrection& correction);

}  // namespace brainage
