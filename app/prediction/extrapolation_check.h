#pragma once
// Whether a predicted age lies outside the ages the model was trained on. A regression
// model (ridge or network) trained on 20–79-year-olds extrapolates beyond them, and the
// bias correction (common/age_statistics.h) stretches such ages further: Colin27's raw
// 20.4 y became 11 y corrected. The tool reports the age and says so, in qc_flags
// (prediction.json, the cohort CSV and report); the scan stays in cohort metrics.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace brainage::prediction {

/// The ages (years) of a checkpoint's training subjects.
struct TrainingAgeRange {
  double min_years = 0;
  double max_years = 0;
};

/// The checkpoint's `training.data.age_min` / `age_max` (years), written by `train` and
/// `ensemble`; nullopt when the checkpoint does not record them (VBM-only checkpoints,
/// older files) or they are not numbers. Never throws.
std::optional<TrainingAgeRange> training_age_range(const nlohmann::json& training);

/// One line for qc_flags when the raw or the bias-corrected age (years) lies outside
/// `range`, e.g. "age outside the training range 20.2-79.4 y (raw 20.4 y, bias-corrected
/// 11.3 y): the model extrapolates" (one age when they are equal: no bias correction);
/// nullopt inside it. Never throws.
std::optional<std::string> extrapolation_flag(double predicted_age, double bias_corrected_age,
                                              const TrainingAgeRange& range);

}  // namespace brainage::prediction
