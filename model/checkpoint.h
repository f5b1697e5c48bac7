#pragma once
// Checkpoints: `<stem>.pt` (the weights, torch::save archive) + `<stem>.json` (metadata):
//   { "format": "brainage-checkpoint", "format_version": 1,
//     "weights_file": "<stem>.pt", "weights_bytes": N, "weights_sha256": "<hex>",
//     "model_id": "ermoe-ba-<first 12 hex of the sha256>" (with "test_time_flip": true in the
//                 options, of the SHA-256 of "<sha256>test_time_flip": the same weights read
//                 differently get another id),
//     "model": {ModelOptions}, "grid": [Z,Y,X], "preprocessing_version": "...",
//     "intensity_normalisation": "...", "training": {...}, "metrics": {...},
//     "bias_correction": { "slope": a, "intercept": b, "fitted_on": "validation", "n": n } }
// Bias correction: common/age_statistics.h (BiasCorrection), fitted on the validation
// predictions of the final weights.
// A pair renamed together (model.{pt,json} -> brainage-default.{pt,json}) still loads: when
// weights_file is absent, the .pt with the JSON's stem is used (same SHA-256 check).
// Loading checks format, version, size, SHA-256 and that the weights fit the options;
// anything wrong throws ModelError with one line naming the file and the rule.
// Model kinds: "model_kind" is "neural" (the transformer family above; a checkpoint
// without the field, written before it existed, is neural), "vbm" (model/vbm_model.h:
// "model" holds the VBM hyperparameters, the .pt its tensors as a torch archive) or
// "ensemble" (model/ensemble.h: K transformers averaged). An ensemble has no weights_file
// of its own; its JSON lists the members, each verified like a single checkpoint's .pt:
//   { "format": "brainage-checkpoint", "format_version": 1, "model_kind": "ensemble",
//     "model_id": "ermoe-ba-ensemble-<12 hex of the SHA-256 of the members' SHA-256s, each
//                 followed by "test_time_flip" when that member's options set it>",
//     "members": [ { "weights_file": "<stem>.member0.pt", "weights_bytes": N,
//                    "weights_sha256": "<hex>", "model": {ModelOptions of member 0},
//                    "training": { "seed": s, "folds": K, "fold": 0, "source": "...", ... } }, ... ],
//     "model": {member 0's ModelOptions}, "grid": [Z,Y,X], "preprocessing_version": "...",
//     "intensity_normalisation": "...", "training": {...}, "metrics": {OOF metrics},
//     "bias_correction": { ..., "fitted_on": "out-of-fold (K-fold inner CV)" } }
// Members share grid, channels and global input; their age normalisation (age_mean, bins,
// global_mean) differs with their training folds, so each member carries its own options.
// A member file named by weights_file but absent is looked for as `<JSON stem>.member<k>.pt`
// (an ensemble renamed with its member files: model.json -> brainage-default.json and
// model.member<k>.pt -> brainage-default.member<k>.pt still loads, same SHA-256 checks).
// An ensemble may also hold one VBM model (model/vbm_model.h) averaged with the transformers
// ("stacking" of two model families, Wolpert 1992; Breiman 1996), stored as
//   "vbm_member": { "weights_file": "<stem>.vbm.pt", "weights_bytes": N, "weights_sha256": "<hex>",
//                   "model": {VbmModel::to_json()}, "weight": w, "training": {...} }
// and predicting age = (1 − w) · mean(transformer ages) + w · VBM age (raw ages; the
// checkpoint's bias correction applies to that combination). Its file, when absent under
// weights_file, is looked for as `<JSON stem>.vbm.pt`.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/age_statistics.h"
#include "model/brain_age_model.h"

namespace brainage::model {

inline constexpr int kCheckpointFormatVersion = 1;
inline constexpr const char* kCheckpointFormat = "brainage-checkpoint";
inline constexpr const char* kNeuralModelKind = "neural";
inline constexpr const char* kVbmModelKind = "vbm";
inline constexpr const char* kEnsembleModelKind = "ensemble";

struct VbmModel;  // model/vbm_model.h

/// One member of an ensemble checkpoint (model_kind "ensemble").
struct EnsembleMemberInfo {
  ModelOptions model;            // its architecture and age normalisation
  std::string weights_file;      // "<stem>.member<k>.pt", beside the JSON
  int64_t weights_bytes = 0;
  std::string weights_sha256;    // hex
  nlohmann::json training = nlohmann::json::object();  // seed, folds, fold, source, val metrics
};

/// The VBM model of an ensemble checkpoint ("vbm_member"), averaged with the transformers.
struct EnsembleVbmInfo {
  std::string weights_file;      // "<stem>.vbm.pt", beside the JSON
  int64_t weights_bytes = 0;
  std::string weights_sha256;    // hex
  nlohmann::json model = nlohmann::json::object();     // VbmModel::to_json(): hyperparameters and sizes
  double weight = 0;             // w in [0, 1]: age = (1 − w) · transformer mean + w · VBM age
  nlohmann::json training = nlohmann::json::object();  // source, source_model_id, inner-CV metrics
};

struct CheckpointInfo {
  std::string model_kind = kNeuralModelKind;  // "neural" | "vbm" | "ensemble"
  ModelOptions model;  // neural: the architecture; vbm: only `grid` is meaningful; ensemble: member 0's
  std::string preprocessing_version = "unknown";  // what produced the training inputs
  std::string intensity_normalisation = "unknown";
  BiasCorrection bias_correction;  // common/age_statistics.h; identity when not fitted
  /** Which predictions the correction was fitted on. Default = "validation" (the trainer's
      held-out split); an ensemble's: "out-of-fold (K-fold inner CV)". */
  std::string bias_correction_fitted_on = "validation";
  std::vector<EnsembleMemberInfo> members;  // "ensemble": K >= 2 members; empty otherwise
  std::optional<EnsembleVbmInfo> vbm_member;  // "ensemble": the VBM model averaged with the members, if any
  /** "ensemble": index of the member whose routing records and expert maps are reported
      (expert indices are not aligned across members, so routing is never averaged).
      assemble_ensemble picks the member whose validation routing was most balanced.
      Default = 0 (ensembles written before the sixteenth session). */
  int64_t routing_member = 0;
  nlohmann::json training = nlohmann::json::object();  // data summary, options, history
  nlohmann::json metrics = nlohmann::json::object();   // final/best metrics
  std::string model_id;  // filled on save/load: "ermoe-ba-<sha256 prefix>"
};

struct LoadedModel {
  BrainAgeModel model{nullptr};  // in eval mode; null for a VBM checkpoint; an ensemble's routing member
  std::vector<BrainAgeModel> members;  // "ensemble": all K members (members[info.routing_member] is `model`); else empty
  std::filesystem::path weights;  // the verified .pt a single checkpoint was loaded from (empty for an ensemble)
  /** Set for a VBM checkpoint (its bias correction = info's) and for an ensemble with a
      VBM member (info.vbm_member: its weight; the member's own bias correction unused). */
  std::shared_ptr<const VbmModel> vbm;
  CheckpointInfo info;
};

/// `path` may name the .json or the .pt (or the stem), or the folder `train` / `ensemble`
/// wrote (its model.json; a path ending in "/" is always a folder); returns the .json path.
/// Throws UsageError when a folder DIR holds model.json and DIR.json exists too (ambiguous).
std::filesystem::path checkpoint_json_path(const std::filesystem::path& path);

/// Writes `<stem>.pt` then `<stem>.json` atomically (JSON last: a checkpoint without its
/// JSON is incomplete and never loaded). Returns the model id. Throws OutputError.
std::string save_checkpoint(const std::filesystem::path& stem, BrainAgeModel& model, CheckpointInfo info);

/// The same for a fitted VBM model (model/vbm_model.h): model_kind "vbm", id "vbm-<sha prefix>";
/// info.bias_correction is replaced by the model's own.
std::string save_checkpoint(const std::filesystem::path& stem, const VbmModel& model, CheckpointInfo info);

/// An ensemble of already verified member checkpoints: copies each member's weights file
/// (members_weights[k], the .pt of info.members[k]) to `<stem>.member<k>.pt` and, when
/// info.vbm_member is set, `vbm_weights` (the VBM checkpoint's verified .pt) to
/// `<stem>.vbm.pt`, then writes `<stem>.json` (last) with their sizes and SHA-256s.
/// info.members[k].model and .training must be filled; info.model becomes member 0's.
/// Returns the model id ("<kind>-ensemble-<hex>", "<kind>-vbm-ensemble-<hex>" with a VBM
/// member). Throws ModelError (fewer than 2 members, sizes differ, a VBM member without
/// its file) or OutputError.
std::string save_ensemble_checkpoint(const std::filesystem::path& stem,
                                     const std::vector<std::filesystem::path>& members_weights, CheckpointInfo info,
                                     const std::filesystem::path& vbm_weights = {});

/// Loads and verifies any kind (info.model_kind says which member is set). A VBM
/// checkpoint is refused unless `accept_vbm` (callers that only run neural models: a
/// ModelError naming the file, never a null model). Throws ModelError (missing, corrupt
/// JSON, wrong format/version, size or checksum mismatch, weights that do not fit the options).
LoadedModel load_checkpoint(const std::filesystem::path& path, bool accept_vbm = false);

/// Only the JSON part (verified format/version), without loading weights.
CheckpointInfo read_checkpoint_info(const std::filesystem::path& path);

}  // namespace brainage::model
