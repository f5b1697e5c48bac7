#pragma once
// Is the scan's tissue contrast one the model was trained on? The tissue maps a model reads
// (tissue_probability.h) are fractions between K-means class means, and those means follow
// only ~30 % of a change of the CSF level: a scanner whose CSF is brighter relative to white
// matter than the training scanner's (CSF/WM +0.15 of WM) made the default read 14-24 y
// younger on six IXI scans, with QC passed (docs/ROBUSTNESS.md, "Another scanner's
// contrast"). The CSF/WM contrast (preprocessing/t1_contrast_check.h: the darkest ventricle
// voxels over the white-matter median, measured in template regions, so it follows the
// scanner and not the subject's tissue classes) is compared with the training scans':
//
//   `train` records training.data.tissue_contrast.csf_wm_ratio = {min, max, mean, sd,
//   subjects}; a scan whose ratio exceeds max + max(margin_sds × sd, min_margin) fails QC
//   for that model (nothing is checked for a model trained on fewer than
//   min_training_scans scans: their range bounds nothing)
//   (predict: exit 5; evaluate: the subject is listed as failed and kept out of the
//   metrics; evaluate --include-qc-failed predicts it anyway, flagged).
//
// Also refused, though the age was right: copies of a young training scan with a brighter
// ratio (IXI146, 0.396) made by gamma 0.85 (0.450; age −0.2 y) or a 1 mm blur (0.441;
// −1.1 y). One ratio cannot tell a harmless global contrast curve from a CSF-only change;
// a refusal is the safe side of that (docs/ROBUSTNESS.md).
//
// Only brighter CSF is refused: darker CSF (a higher-contrast scanner, Colin27's average of
// 27 scans, the MRISnapshot 1.5 T scan: 0.26-0.27 against the IXI-HH scans' 0.32-0.41)
// moved the age by +1 to +8 y, not by tens of years, and refusing it would refuse the demo.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace brainage::prediction {

struct ContrastDomainOptions {
  /** A scan fails when its CSF/WM ratio exceeds the training maximum by more than this many
      training standard deviations (or min_margin, whichever is larger). Default = 2 (the
      147 IXI-HH training scans: max 0.406, sd 0.017, limit 0.440; six bright-CSF copies
      of IXI scans read 0.45-0.52). */
  double margin_sds{2.0};
  /** The smallest margin above the training maximum. Default = 0.035 (2 sd of the 147
      IXI-HH scans; about what a 1 mm blur adds): a model trained on a few similar scans
      (sd near 0) must not refuse everything brighter than its maximum. */
  double min_margin{0.035};
  /** Fewer training scans than this: no check (limit null). Default = 10. */
  int min_training_scans{10};
};

/// The CSF/WM ratios of a model's training scans.
struct TrainingContrastRange {
  double min = 0, max = 0, mean = 0, sd = 0;
  int subjects = 0;
};

/// {"csf_wm_ratio": {"min", "max", "mean", "sd", "subjects"}} over `csf_wm_ratios` (one
/// per training scan; sd with n - 1), what `train` writes as training.data.tissue_contrast.
/// Throws std::invalid_argument when `csf_wm_ratios` is empty.
nlohmann::json tissue_contrast_summary(const std::vector<double>& csf_wm_ratios);

/// The checkpoint's training.data.tissue_contrast.csf_wm_ratio; nullopt when there is no
/// training.data.tissue_contrast (older checkpoints: nothing is checked). Throws ModelError
/// naming the field when the record is there but malformed (a check must not switch itself
/// off silently).
std::optional<TrainingContrastRange> training_contrast_range(const nlohmann::json& training);

/// The highest CSF/WM ratio the model answers: max + max(margin_sds × sd, min_margin);
/// nullopt when the range comes from fewer than min_training_scans scans. Never throws.
std::optional<double> contrast_limit(const TrainingContrastRange& range, const ContrastDomainOptions& options = {});

/// The broken rule in one line, e.g. "CSF/WM contrast 0.480 above this model's training
/// scans (0.319-0.405, limit 0.440): with CSF brighter than the training scanner's the
/// tissue maps, and the age, can be years to decades off (...)"; nullopt when
/// `csf_wm_ratio` is within the limit or there is none (contrast_limit). Never throws.
std::optional<std::string> contrast_domain_failure(double csf_wm_ratio, const TrainingContrastRange& range,
                                                   const ContrastDomainOptions& options = {});

}  // namespace brainage::prediction
