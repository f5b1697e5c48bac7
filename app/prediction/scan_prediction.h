#pragma once
// A scan in, a prediction out: the one path `predict`, `evaluate` (per subject) and `train`
// (its data loading) share. Read top to bottom:
//
//   predict_scan(predictor, scan, options)                     <- the function
//     1. preprocess_for_model(scan)      app/prediction/preprocessed_scan.h (cached or not)
//     2. model_input(preprocessed, kind) -> tensor [1, C, Z, Y, X]  (transformer: C = 1, the
//                                           T1; VBM: C = 3, modulated CSF/GM/WM)
//     3. predictor.forward(input)        -> ModelOutput (age, routing records)
//     4. PredictionRecord                -> age, bias-corrected age, QC flags, routing
//     5. write_prediction_folder(record) -> preprocessing outputs + prediction.json
//
// Adding input channels (tissue maps) changes model_input() only; adding ensemble members
// changes Predictor::forward() only. prediction.json is written by prediction_json() and
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

/// What the preprocessing that produces model inputs is: "brainage-preprocess <version>".
/// Recorded in checkpoints by `train` and compared by `predict`.
std::string preprocessing_version();

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
  /// The checkpoint's .json path.
  const std::filesystem::path& checkpoint_path() const { return checkpoint_; }

  /// The model on `input` [1, C, Z, Y, X] (model_input()): output.age [1] in years (raw,
  /// before the bias correction), the routing records when `with_routing` and the model
  /// has experts (has_routing()). `threads` > 0 sets LibTorch's threads first
  /// (0 = leave them). Every LibTorch call happens under one lock, the thread setting
  /// included: LibTorch's and OpenBLAS's thread counts are process-wide, and changing them
  /// while another worker runs a tensor operation crashed `evaluate --jobs 2` (SIGSEGV).
  model::ModelOutput forward(const torch::Tensor& input, int threads, bool with_routing);

 private:
  model::LoadedModel loaded_;
  std::filesystem::path checkpoint_;
  std::mutex mutex_;
};

/// The model input of a preprocessed scan: a float32 tensor [1, C, Z, Y, X] that owns its
/// memory (ITK's x-fastest buffer maps to [Z, Y, X] without moving axes). For a "neural"
/// `model_kind`, C = 1: the normalised T1 on the model grid; for "vbm", C = 3: the
/// modulated CSF, GM, WM maps (mL per voxel). The one place that decides what a model
/// sees. Throws ProcessingError when an image is missing or not on the model grid.
torch::Tensor model_input(const PreprocessedScan& scan, const std::string& model_kind = model::kNeuralModelKind);

/// What one prediction is: the content of prediction.json.
struct PredictionRecord {
  std::filesystem::path scan;             // absolute, normalised
  double predicted_age = 0;               // raw model output, years
  BiasCorrection bias_correction;         // the checkpoint's (identity when not fitted)
  double bias_corrected_age = 0;          // bias_correction.apply(predicted_age), years
  std::string model_id;
  std::filesystem::path model;            // the checkpoint's .json
  std::vector<std::string> qc_flags;      // preprocessing warnings that did not stop the scan
  nlohmann::json routing;                 // model::routing_summary, null without routing
  double forward_seconds = 0;
  double seconds_total = 0;               // preprocessing (or cache read) + forward
};

/// prediction.json (docs/ARCHITECTURE.md): scan, predicted_age, bias_corrected_age,
/// bias_correction {slope, intercept, n, applied}, model_id, model, qc_flags, routing,
/// forward_seconds, seconds_total. Never throws.
nlohmann::json prediction_json(const PredictionRecord& record);

struct ScanPredictionOptions {
  /** Preprocessing (options, cache). Default = the pipeline's defaults, no cache. */
  PreprocessStepOptions preprocess{};
  /** LibTorch threads for the forward; 0 = leave them as they are. Default = 0. */
  int threads{0};
  /** Keep the routing records (prediction.json's "routing"; the maps need them). Default = true. */
  bool with_routing{true};
  /** Write the prediction folder (preprocessing outputs + prediction.json) here; empty =
      none. Default = none. */
  std::filesystem::path output_dir{};
};

/// THE function that turns a scan into a prediction (steps 1–5 above). `preprocessed`, when
/// given, receives step 1's result (its cache entry, report, images). Throws
/// InvalidInputError (missing or broken scan), ProcessingError (QC failed), OutputError
/// (the folder or cache cannot be written).
PredictionRecord predict_scan(Predictor& predictor, const std::filesystem::path& scan,
                              const ScanPredictionOptions& options, PreprocessedScan* preprocessed = nullptr);

/// Step 5: the preprocessing outputs of `preprocessed` and prediction.json into `dir`.
/// Throws OutputError.
void write_prediction_folder(const PredictionRecord& record, const PreprocessedScan& preprocessed,
                             const std::filesystem::path& dir);

}  // namespace brainage::prediction
