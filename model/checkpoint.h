#pragma once
// Checkpoints: `<stem>.pt` (the weights, torch::save archive) + `<stem>.json` (metadata):
//   { "format": "brainage-checkpoint", "format_version": 1,
//     "weights_file": "<stem>.pt", "weights_bytes": N, "weights_sha256": "<hex>",
//     "model_id": "ermoe-ba-<first 12 hex of the sha256>",
//     "model": {ModelOptions}, "grid": [Z,Y,X], "preprocessing_version": "...",
//     "intensity_normalisation": "...", "training": {...}, "metrics": {...},
//     "bias_correction": { "slope": a, "intercept": b, "fitted_on": "validation", "n": n } }
// Bias correction: common/age_statistics.h (BiasCorrection), fitted on the validation
// predictions of the final weights.
// A pair renamed together (model.{pt,json} -> brainage-default.{pt,json}) still loads: when
// weights_file is absent, the .pt with the JSON's stem is used (same SHA-256 check).
// Loading checks format, version, size, SHA-256 and that the weights fit the options;
// anything wrong throws ModelError with one line naming the file and the rule.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "common/age_statistics.h"
#include "model/brain_age_model.h"

namespace brainage::model {

inline constexpr int kCheckpointFormatVersion = 1;
inline constexpr const char* kCheckpointFormat = "brainage-checkpoint";

struct CheckpointInfo {
  ModelOptions model;
  std::string preprocessing_version = "unknown";  // what produced the training inputs
  std::string intensity_normalisation = "unknown";
  BiasCorrection bias_correction;  // common/age_statistics.h; identity when not fitted
  nlohmann::json training = nlohmann::json::object();  // data summary, options, history
  nlohmann::json metrics = nlohmann::json::object();   // final/best metrics
  std::string model_id;  // filled on save/load: "ermoe-ba-<sha256 prefix>"
};

struct LoadedModel {
  BrainAgeModel model{nullptr};  // in eval mode
  CheckpointInfo info;
};

/// `path` may name the .json or the .pt (or the stem); returns the .json path.
std::filesystem::path checkpoint_json_path(const std::filesystem::path& path);

/// Writes `<stem>.pt` then `<stem>.json` atomically (JSON last: a checkpoint without its
/// JSON is incomplete and never loaded). Returns the model id. Throws OutputError.
std::string save_checkpoint(const std::filesystem::path& stem, BrainAgeModel& model, CheckpointInfo info);

/// Loads and verifies. Throws ModelError (missing, corrupt JSON, wrong format/version,
/// size or checksum mismatch, weights that do not fit the options).
LoadedModel load_checkpoint(const std::filesystem::path& path);

/// Only the JSON part (verified format/version), without loading weights.
CheckpointInfo read_checkpoint_info(const std::filesystem::path& path);

}  // namespace brainage::model
