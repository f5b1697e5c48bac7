#include "app/prediction/contrast_domain_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>

#include "common/errors.h"

namespace brainage::prediction {

nlohmann::json tissue_contrast_summary(const std::vector<double>& csf_wm_ratios) {
  if (csf_wm_ratios.empty()) throw std::invalid_argument("tissue_contrast_summary: no ratios");
  const double n = static_cast<double>(csf_wm_ratios.size());
  const double mean = std::accumulate(csf_wm_ratios.begin(), csf_wm_ratios.end(), 0.0) / n;
  double ss = 0;
  for (double r : csf_wm_ratios) ss += (r - mean) * (r - mean);
  const auto [lo, hi] = std::minmax_element(csf_wm_ratios.begin(), csf_wm_ratios.end());
  return {{"csf_wm_ratio",
           {{"min", *lo},
            {"max", *hi},
            {"mean", mean},
            {"sd", csf_wm_ratios.size() > 1 ? std::sqrt(ss / (n - 1)) : 0.0},
            {"subjects", csf_wm_ratios.size()}}}};
}

std::optional<TrainingContrastRange> training_contrast_range(const nlohmann::json& training) {
  const auto* node = &training;
  for (const char* key : {"data", "tissue_contrast"}) {
    if (!node->is_object() || !node->contains(key)) return std::nullopt;
    node = &(*node)[key];
  }
  // The record exists: a malformed one is an error, not a check silently switched off.
  const auto malformed = [](const std::string& rule) {
    return ModelError("checkpoint training.data.tissue_contrast: " + rule);
  };
  if (!node->is_object() || !node->contains("csf_wm_ratio") || !(*node)["csf_wm_ratio"].is_object())
    throw malformed("csf_wm_ratio must be an object {min, max, mean, sd, subjects}");
  node = &(*node)["csf_wm_ratio"];
  TrainingContrastRange range;
  for (auto [key, field] : {std::pair{"min", &range.min}, {"max", &range.max}, {"mean", &range.mean}, {"sd", &range.sd}}) {
    const auto it = node->find(key);
    if (it == node->end() || !it->is_number()) throw malformed(std::string("csf_wm_ratio.") + key + " must be a number");
    *field = it->get<double>();
  }
  range.subjects = node->value("subjects", 0);
  if (!(range.min <= range.max) || !(range.sd >= 0)) throw malformed("csf_wm_ratio needs min <= max and sd >= 0");
  return range;
}

std::optional<double> contrast_limit(const TrainingContrastRange& range, const ContrastDomainOptions& options) {
  if (range.subjects < options.min_training_scans) return std::nullopt;
  return range.max + std::max(options.margin_sds * range.sd, options.min_margin);
}

std::optional<std::string> contrast_domain_failure(double csf_wm_ratio, const TrainingContrastRange& range,
                                                   const ContrastDomainOptions& options) {
  const auto limit = contrast_limit(range, options);
  if (!limit || !(csf_wm_ratio > *limit)) return std::nullopt;
  char line[300];
  std::snprintf(line, sizeof line,
                "CSF/WM contrast %.3f above this model's training scans (%.3f-%.3f, limit %.3f): with CSF brighter "
                "than the training scanner's the tissue maps, and the age, can be years to decades off (evaluate "
                "--include-qc-failed gives the age, flagged)",
                csf_wm_ratio, range.min, range.max, *limit);
  return std::string(line);
}

}  // namespace brainage::prediction
