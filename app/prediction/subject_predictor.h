#pragma once
// The per-subject processor of `brainage evaluate`: prediction::predict_scan with the
// content-keyed preprocessing cache (app/prediction/preprocessed_scan.h), its record turned
// into the cohort engine's SubjectOutcome. Optionally each subject's prediction folder and
// expert maps. The cohort engine (app/cohort/) consumes it; it needs neither ITK nor Torch.
#include <filesystem>

#include "app/cohort/cohort.h"
#include "preprocessing/preprocess_pipeline.h"

namespace brainage::prediction {

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
  /** Predict a scan that failed QC anyway (flags "QC failed: ..."; PreprocessStepOptions::
      accept_failed_qc). Default = false: it throws and the runner records it as failed. */
  bool include_qc_failed{false};
  preprocessing::PreprocessOptions preprocess{};
};

/// Loads the checkpoint once (throws ModelError) and returns the processor: a subject's
/// outcome is its predicted age, QC flags (with kTrainingSubjectFlag when its subject_id is
/// one the checkpoint was trained on, training_overlap.h) and qc.png; a scan that fails validation or QC
/// throws (InvalidInputError / ProcessingError) and is recorded by the cohort runner.
cohort::SubjectProcessor make_subject_predictor(const SubjectPredictorOptions& options);

}  // namespace brainage::prediction
