#pragma once
// The per-subject work of `brainage evaluate`: preprocessing (cached by content) then the
// model. Compiled into brainage_app (it needs ITK and LibTorch; the rest of app/cohort/
// needs neither).
//
// Cache: <cache_dir>/<FNV-1a 64 of the scan's bytes>-<pipeline key>/ holds the
// preprocessing outputs of docs/ARCHITECTURE.md. The pipeline key hashes the brainage
// version, git SHA and the options that change the result, so a new build or different
// options never reuse stale outputs. Entries are written into a temporary folder and
// renamed into place: a killed run never leaves a half entry that looks complete.
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "app/cohort/cohort_runner.h"
#include "preprocessing/preprocess_pipeline.h"

namespace brainage::app {

struct SubjectPredictorOptions {
  /** Checkpoint (.json, .pt or stem). Required. */
  std::filesystem::path model;
  /** Preprocessing cache folder. Default = <out>/cache (set by the caller). */
  std::filesystem::path cache_dir;
  /** ITK and LibTorch threads per subject (cores / jobs). Default = 1. */
  int threads_per_subject{1};
  /** Write the subject's prediction folder (preprocessing outputs + prediction.json with
      routing) and its expert maps (<subject>/maps, viz::render_expert_maps, without the 3D
      view). Default = false. */
  bool write_prediction_folder{false};
  preprocessing::PreprocessOptions preprocess{};
};

/// Loads the checkpoint once (throws ModelError) and returns the processor: a subject's
/// outcome is its predicted age, QC flags and qc.png; a scan that fails validation or QC
/// throws (InvalidInputError / ProcessingError) and is recorded by the cohort runner.
cohort::SubjectProcessor make_subject_predictor(const SubjectPredictorOptions& options);

/// The cache key part that is not the scan's content.
std::string preprocessing_pipeline_key(const preprocessing::PreprocessOptions& options);

}  // namespace brainage::app
