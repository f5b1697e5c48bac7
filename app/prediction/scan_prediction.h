#pragma once
// A scan in, a prediction out: the one path `predict`, `evaluate` (per subject) and `train`
// (its data loading) share. Read top to bottom:
//
//   predict_scan(predictor, scan, options)                     <- the function
//     1. preprocess_for_model(scan)      app/prediction/preprocessed_scan.h (cached or not),
//                                           then the scan's CSF/WM contrast against the
//                                           model's training scans (contrast_domain_check.h)
//     2. model_input(preprocessed, info) -> volumes [1, C, Z, Y, X] (+ global [1, G]): the
//                                           channels the checkpoint names (transformer: its
//                                           `channels`, T1 and/or tissue maps; VBM: C = 3,
//                                           modulated CSF/GM/WM)
//     3. predictor.forward(input)        -> ModelOutput (age, routing records)
//     4. PredictionRecord                -> age, bias-corrected age, QC flags, routing
//     5. write_prediction_folder(record) -> preprocessing outputs + prediction.json
//
// Adding input channels (tissue maps) changes model_input() only; adding ensemble members
// changes Predictor::forward() only (model/ensemble.h: the mean of the members). prediction.json is written by prediction_json() and
// nowhere else (its format: docs/ARCHITECTURE.md, "Prediction folder").
#include <torch/torch.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/prediction/preprocessed_scan.h"
#include "model/checkpoint.h"

namespace brainage::prediction {

/// The revision of the preprocessing's outputs: bumped whenever a change gives the same scan
/// and options other model inputs, so that a checkpoint trained on other inputs is
/// noticed (the build version alone did not change with them; the sixteenth session
/// measured the default's ages 5 y apart on two N4 settings). 16 = the fifteenth session's
/// N4 sampling plus the neck-cut rescue (which only changes scans that failed QC before);
/// checkpoints written before the revision existed record none.
constexpr int kPreprocessingRevision = 16;

/// What the preprocessing that produces model inputs is: "brainage-preprocess <version>
/// r<kPreprocessingRevision>". Recorded in checkpoints by `train`; `predict` warns when
/// its checkpoint records another. Never throws.
std::string preprocessing_version();

/// The volume of one model-grid voxel (2 mm isotropic), mL. Tissue channels are the modulated
/// maps (mL of the subject's tissue per voxel) divided by it: O(1) values, the tissue that
/// maps to a template voxel as a fraction of that voxel (> 1 where the head is larger than
/// the template's).
inline constexpr double kModelGridVoxelMl = 0.008;

/// What a model reads of one scan.
struct ModelInput {
  torch::Tensor volumes;  // [1, C, Z, Y, X] float32, owns its memory
  torch::Tensor global;   // [1, G] float32 raw global input (G = 1: ln brain volume in mL); undefined when G = 0
  torch::Tensor tissue_maps;  // [1, 3, Z, Y, X] float32 modulated CSF, GM, WM (mL per voxel) for an ensemble's VBM model; else undefined
};

/// A loaded checkpoint ready to predict. Thread-safe: forward() runs one call at a time.
class Predictor {
 public:
  /// Loads and verifies `checkpoint` (.json, .pt or stem; model::load_checkpoint), either
  /// kind: a transformer ("neural") or a VBM ridge model (model/vbm_model.h), and checks
  /// that the model's grid is the preprocessing model grid (preprocessing/model_grid.h).
  /// Throws ModelError naming the checkpoint and the rule.
  explicit Predictor(const std::filesystem::path& checkpoint);

  const model::CheckpointInfo& info() const { return loaded_.info; }
  /// "neural" or "vbm" (model/checkpoint.h).
  const std::string& model_kind() const { return loaded_.info.model_kind; }
  /// Whether forward() can return routing records (only a transformer has experts).
  bool has_routing() const { return static_cast<bool>(loaded_.model); }
  /// Models averaged by forward(): K for an ensemble checkpoint, else 1.
  int64_t ensemble_size() const { return loaded_.members.empty() ? 1 : static_cast<int64_t>(loaded_.members.size()); }
  /// The checkpoint's .json path.
  const std::filesystem::path& checkpoint_path() const { return checkpoint_; }

  /// The model on `input` (model_input(): volumes [1, C, Z, Y, X], global [1, G]): output.age [1] in years (raw,
  /// before the bias correction), the routing records when `with_routing` and the model
  /// has experts (has_routing()). An ensemble (model/ensemble.h) runs every member on the
  /// same input: output.age = the mean of the members' ages, output.member_ages [1, K];
  /// the routing records (and logits) are the routing member's (info.routing_member) — expert indices are not aligned
  /// across members, so they are not combined. The forward always runs on
  /// kForwardThreads LibTorch/OpenBLAS threads (the previous counts are restored after):
  /// LibTorch splits its reductions by the thread count, so at 1 vs 2 threads the same
  /// scan gave ages 2e-6 y apart, and the age must not depend on `--threads` (it takes
  /// 0.04 s at one thread). Every LibTorch call happens under one lock, the thread setting
  /// included: LibTorch's and OpenBLAS's thread counts are process-wide, and changing them
  /// while another worker runs a tensor operation crashed `evaluate --jobs 2` (SIGSEGV).
  model::ModelOutput forward(const ModelInput& input, bool with_routing);

  /// LibTorch/OpenBLAS threads of every forward() (see there). Default = 1.
  static constexpr int kForwardThreads = 1;

 private:
  model::LoadedModel loaded_;
  std::filesystem::path checkpoint_;
  std::mutex mutex_;
};

/// Whether the model of `info` reads the modulated tissue maps: a VBM model, a transformer
/// with a "gm"/"wm"/"csf" channel or with the log_brain_volume global input. Callers set
/// PreprocessStepOptions::read_tissue_maps from it.
bool needs_tissue_maps(const model::CheckpointInfo& info);

/// The model input of a preprocessed scan for the checkpoint `info` (ITK's x-fastest buffer
/// maps to [Z, Y, X] without moving axes). The one place that decides what a model sees:
/// - "vbm": C = 3, the modulated CSF, GM, WM maps in mL per voxel (the VBM model's units);
/// - "neural": one channel per info.model.channels entry, in that order: "t1" = the
///   normalised T1 on the model grid; "gm", "wm", "csf" = the modulated map / kModelGridVoxelMl.
///   Global input log_brain_volume: ln of the brain tissue volume in mL = the sum of the
///   three modulated maps over the grid (the same number for a fresh scan, a cache entry
///   or a model-grid input, which has no report).
/// Throws ProcessingError when an image it needs is missing or not on the model grid.
ModelInput model_input(const PreprocessedScan& scan, const model::CheckpointInfo& info);

/// What one prediction is: the content of prediction.json.
struct PredictionRecord {
  std::filesystem::path scan;             // absolute, normalised
  double predicted_age = 0;               // raw model output, years
  BiasCorrection bias_correction;         // the checkpoint's (identity when not fitted)
  double bias_corrected_age = 0;          // bias_correction.apply(predicted_age), years
  std::vector<double> member_ages;        // each model's raw age, years: K for an ensemble, 1 for one model
  double ensemble_sd = 0;                 // sample sd (K - 1) of member_ages, years; 0 for one model
  double transformer_mean_age = 0;        // mean of member_ages, years (the transformer part of a VBM ensemble)
  double vbm_weight = 0;                  // an ensemble's VBM weight w (predicted_age = (1 − w) · transformer_mean_age + w · vbm_age); 0 without
  double vbm_age = 0;                     // that VBM model's raw age, years (meaningful when vbm_weight is set by a VBM member)
  bool has_vbm_member = false;            // whether the checkpoint averages a VBM model in
  int64_t routing_member = 0;             // an ensemble's member whose routing `routing` is (model/checkpoint.h)
  std::string model_id;
  std::filesystem::path model;            // the checkpoint's .json
  std::vector<std::string> qc_flags;      // warnings that did not stop the scan: preprocessing, and an age outside the training range (extrapolation_check.h)
  /** {"csf_wm_ratio", "limit"}: the scan's CSF/WM contrast and the model's limit for it
      (contrast_domain_check.h; limit null when the checkpoint records no training range). */
  nlohmann::json tissue_contrast;
  nlohmann::json routing;                 // model::routing_summary, null without routing
  double forward_seconds = 0;
  double seconds_total = 0;               // preprocessing (or cache read) + forward
};

/// prediction.json (docs/ARCHITECTURE.md): scan, predicted_age, bias_corrected_age,
/// bias_correction {slope, intercept, n, applied}, ensemble {members, member_ages, sd_years,
/// routing_from[, transformer_mean_age, vbm_age, vbm_weight, combination]}, model_id, model,
/// qc_flags, tissue_contrast, routing, forward_seconds, seconds_total.
/// Never throws.
nlohmann::json prediction_json(const PredictionRecord& record);

struct ScanPredictionOptions {
  /** Preprocessing (options, cache). Default = the pipeline's defaults, no cache. */
  PreprocessStepOptions preprocess{};
  /** Keep the routing records (prediction.json's "routing"; the maps need them). Default = true. */
  bool with_routing{true};
  /** Write the prediction folder (preprocessing outputs + prediction.json) here; empty =
      none. Default = none. */
  std::filesystem::path output_dir{};
};

/// THE function that turns a scan into a prediction (steps 1–5 above). `preprocessed`, when
/// given, receives step 1's result (its cache entry, report, images). Throws
/// InvalidInputError (missing or broken scan), ProcessingError (QC failed, or a CSF/WM
/// contrast beyond the model's training scans: contrast_domain_check.h), OutputError
/// (the folder or cache cannot be written).
PredictionRecord predict_scan(Predictor& predictor, const std::filesystem::path& scan,
                              const ScanPredictionOptions& options, PreprocessedScan* preprocessed = nullptr);

/// Step 5: the preprocessing outputs of `preprocessed` and prediction.json into `dir`.
/// Throws OutputError.
void write_prediction_folder(const PredictionRecord& record, const PreprocessedScan& preprocessed,
                             const std::filesystem::path& dir);

}  // namespace brainage::prediction
