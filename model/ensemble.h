#pragma once
// A cross-validated seed ensemble: the shipped unit of ERMoE-ba v2 (issue 18, items 4–5).
//
// Method ("CV bagging", cross-validation ensembles: Krogh & Vedelsby 1995; the K fold
// models of a cross-validation averaged, as nnU-Net ships its five folds): K members are
// trained on one seeded, age-stratified K-fold partition of the training subjects — member
// k on every fold but k, with seed + k for its initialisation, order and augmentation, and
// its last epoch's weights (no epoch chosen on fold k, no early stopping) — so each training
// subject is held out by exactly one member. That member's prediction of it is the
// subject's out-of-fold (OOF) prediction. A prediction of the ensemble is the mean of the
// K members' ages; their standard deviation is a per-scan spread (app/prediction).
//
// Repeats (repeated K-fold CV): members of R partitions with different split seeds (`train
// --seeds K --seed s` run R times with different s) make one ensemble of R·K members. Each
// training subject is then held out by exactly one member of each partition, and its OOF
// prediction is the mean of those R members' ages — the same kind of estimate as the
// ensemble's mean on a new scan, with R rather than R·K members.
//
// Calibration: the linear bias correction of common/age_statistics.h (predicted = slope ·
// age + intercept, corrected = (predicted − intercept) / slope; Beheshti et al. 2019, Cole
// et al. 2018, de Lange & Cole 2020; see also Smith et al. 2019 NeuroImage, Le et al. 2018)
// fitted on the pooled OOF predictions of all members — held-out predictions of every
// training subject, not of a validation fifth — and stored in the ensemble checkpoint with
// fitted_on "out-of-fold (K-fold inner CV)". predict and evaluate apply it as they apply any
// checkpoint's correction. Caveat recorded in the metrics: an OOF prediction is one
// member's; the ensemble mean on a training subject includes K − 1 members that trained on
// it, so the ensemble's own error needs an outer CV (docs/RESULTS.md). Each member's
// training record lists the subjects it held out (`validation_subject_ids`), so the OOF
// study can be rebuilt from the checkpoint alone (scripts/rebuild_ensemble_study.py).
//
// With a VBM model (EnsembleOptions::vbm_dir, model/vbm_model.h): a prediction is
// (1 − w) · mean(transformer ages) + w · VBM age — stacking of two model families (Wolpert
// 1992; Breiman 1996, "Stacked regressions"), as brain-age studies average a CNN with a
// tissue-map regression. The VBM model is the one `train --model-kind vbm` fitted on all
// training subjects; its out-of-fold predictions are those of its own inner CV
// (`<vbm_dir>/oof_predictions.csv`). The OOF prediction of a subject is then
// (1 − w) · its held-out member's age + w · its VBM inner-CV age, and w is chosen on these
// (lowest MAE over 0, 0.1, ..., 1) unless given; the calibration is fitted on the combined
// OOF predictions, and the metrics keep the transformer-alone and VBM-alone OOF errors
// beside the combination's. Caveat: choosing w on the OOF predictions it is then scored on
// is one parameter tuned on N subjects (optimistic by a little; recorded in the metrics).
// The VBM model's training record (its data summary and any augmentation copies) is kept
// in vbm_member.training; members trained before the scans' CSF/WM contrast was recorded
// take the VBM model's (training.data.tissue_contrast) when it was fitted on the same
// subjects.
//
// Format of the checkpoint: model/checkpoint.h (model_kind "ensemble", "vbm_member").
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/age_statistics.h"

namespace brainage::model {

/// The pooled out-of-fold predictions of an ensemble's members.
struct OutOfFoldPredictions {
  std::vector<std::string> subject_ids;  // N, each once
  std::vector<double> ages;              // N, years
  std::vector<double> predictions;       // N, raw age of the members that held the subject out (their mean), years
  std::vector<std::vector<int>> members; // N, which members (0-based; one per partition)
};

/// How assemble_ensemble combines the members.
struct EnsembleOptions {
  /** A `brainage train --model-kind vbm` output folder (model.{pt,json},
      oof_predictions.csv) averaged with the transformers, or empty for transformers only.
      Default = empty. */
  std::filesystem::path vbm_dir{};
  /** Weight w of the VBM age in [0, 1]; negative = chosen on the OOF predictions (lowest
      MAE over 0, 0.1, ..., 1; ties to the smaller w). Default = −1 (chosen). */
  double vbm_weight{-1.0};
  /** The member whose routing records and expert maps `predict` reports; negative = the
      member whose routing on its validation fold was most balanced scan by scan (lowest
      mean per-scan expert-load coefficient of variation, metrics.val_scan_load_cv, when
      every member recorded it; else the lowest cohort-wide one, val_load_cv; member 0 when
      none recorded either). Members trained alike differ widely (sixteenth session, 22
      training scans): one expert of the fifteenth-session default's member 0 got 0.3 % of
      the brain (NMI with AAL 0.049) while its member 3 gave every expert ≥ 10 % (NMI
      0.122). The per-scan CV picked the member with the best maps in both ensembles
      measured; the cohort-wide CV in one of two (docs/RESULTS.md). Default = −1. */
  int64_t routing_member{-1};
};

/// What assemble_ensemble wrote.
struct EnsembleSummary {
  std::filesystem::path checkpoint;  // <output_stem>.json
  std::string model_id;              // "<kind>-ensemble-<12 hex>"
  BiasCorrection calibration;        // fitted on the pooled OOF predictions
  OutOfFoldPredictions oof;          // predictions: the combination's when there is a VBM member
  std::vector<double> oof_transformer;  // N: the held-out member's raw age (members' mean with repeats), years
  std::vector<double> oof_vbm;          // N: the VBM model's inner-CV raw age, years (empty without VBM)
  double vbm_weight = 0;             // w actually used (0 without VBM)
  int64_t routing_member = 0;        // the member whose routing predict reports
  nlohmann::json metrics;            // the checkpoint's "metrics": OOF MAE, RMSE, r (raw and corrected), n
};

/// `<vbm_dir>/oof_predictions.csv` (subject_id, age, predicted_age; written by `train
/// --model-kind vbm`) as a map subject -> (age, raw predicted age), years. Throws ModelError
/// naming the file.
std::map<std::string, std::pair<double, double>> read_vbm_out_of_fold_predictions(const std::filesystem::path& vbm_dir);

/// Reads `<dir>/validation_predictions.csv` of every member (columns subject_id, age,
/// predicted_age; model/trainer.h writes it) and pools them; `partitions[k]` names member
/// k's K-fold partition (members with the same name share one; empty = all share one). A
/// subject's prediction is the mean over the partitions of the member that held it out.
/// Throws ModelError naming the file for a missing file or column, an unreadable number, a
/// subject held out by two members of one partition (they do not share one K-fold
/// partition), or a subject that is not held out in every partition (naming a member of the
/// partition that lacks it), or whose age differs between two members.
OutOfFoldPredictions read_out_of_fold_predictions(const std::vector<std::filesystem::path>& member_dirs,
                                                  const std::vector<std::string>& partitions = {});

/// Assembles the training folders `member_dirs` (each with model.{pt,json} and
/// validation_predictions.csv, e.g. `brainage train --folds K --fold k --seed s+k
/// --split-seed s --final last`) into one ensemble checkpoint `<output_stem>.json` +
/// `<output_stem>.member<k>.pt`: verifies every member checkpoint (size, SHA-256, shapes),
/// checks that they share grid, channels, global input and preprocessing_version, fits the
/// calibration on the pooled OOF predictions and records the OOF metrics; with
/// options.vbm_dir, adds that VBM model as above. Throws ModelError (fewer than 2 members, a
/// member that is not a transformer checkpoint, was trained with --final best, or differs
/// from member 0; a VBM folder that is not a VBM checkpoint, has another grid or
/// preprocessing_version, lacks an OOF prediction of a subject or disagrees on its age; a
/// weight outside [0, 1]; a routing member that is not a member index; see also
/// read_out_of_fold_predictions) naming the member or file,
/// or OutputError.
EnsembleSummary assemble_ensemble(const std::vector<std::filesystem::path>& member_dirs,
                                  const std::filesystem::path& output_stem, const EnsembleOptions& options = {});

}  // namespace brainage::model
