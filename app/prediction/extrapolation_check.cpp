#include "app/prediction/extrapolation_check.h"

#include <cstdio>

namespace brainage::prediction {

std::optional<TrainingAgeRange> training_age_range(const nlohmann::json& training) {
  if (!training.is_object()) return std::nullopt;
  const auto data = training.find("data");
  if (data == training.end() || !data->is_object()) return std::nullopt;
  const auto lo = data->find("age_min"), hi = data->find("age_max");
  if (lo == data->end() || hi == data->end() || !lo->is_number() || !hi->is_number()) return std::nullopt;
  TrainingAgeRange range{lo->get<double>(), hi->get<double>()};
  if (!(range.min_years <= range.max_years)) return std::nullopt;
  return range;
}

std::optional<std::string> extrapolation_flag(double predicted_age, double bias_corrected_age,
                                              const TrainingAgeRange& range) {
  auto outside = [&](double age) { return age < range.min_years || age > range.max_years; };
  if (!outside(predicted_age) && !outside(bias_corrected_age)) return std::nullopt;
  char line[200];
  if (predicted_age == bias_corrected_age) {  // no bias correction applied: one age to name
    std::snprintf(line, sizeof line, "age outside the training range %.1f-%.1f y (%.1f y): the model extrapolates",
                  range.min_years, range.max_years, predicted_age);
    return std::string(line);
  }
  std::snprintf(line, sizeof line,
                "age outside the training range %.1f-%.1f y (raw %.1f y, bias-corrected %.1f y): the model extrapolates",
                range.min_years, range.max_years, predicted_age, bias_corrected_age);
  return std::string(line);
}

}  // namespace brainage::prediction
