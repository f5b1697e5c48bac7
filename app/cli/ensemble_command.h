#pragma once
// `brainage ensemble <member dirs...> -o OUT`: assembles training folders (members of one
// K-fold partition, e.g. trained on separate machines with `train --folds K --fold k
// --seed s+k --split-seed s --final last`) into one ensemble checkpoint OUT/model.json +
// OUT/model.member<k>.pt with its out-of-fold calibration (model/ensemble.h), and writes
// OUT/oof_predictions.csv. `train --seeds K` ends with the same function.
// `--vbm VBM_DIR [--vbm-weight W]` adds a `train --model-kind vbm` model averaged with the
// transformers (model/ensemble.h: w chosen on the out-of-fold predictions unless given).
#include <filesystem>
#include <string>
#include <vector>

#include "model/ensemble.h"

namespace brainage::app {

struct EnsembleCommandOptions {
  /** Member training folders (each with model.{pt,json} and validation_predictions.csv), at
      least 2. Required. */
  std::vector<std::filesystem::path> members;
  /** Output folder. Required. */
  std::filesystem::path output_dir;
  /** How the members are combined, a VBM model included (model/ensemble.h). Default = transformers only. */
  model::EnsembleOptions combination{};
};

/// Writes OUT/model.{json,member<k>.pt[,vbm.pt]} and OUT/oof_predictions.csv (subject_id,
/// age, predicted_age, bias_corrected_age, member; with a VBM model also transformer_age and
/// vbm_age) and prints a summary; returns 0. Throws
/// ModelError (model/ensemble.h) or OutputError.
int run_ensemble(const EnsembleCommandOptions& options);
int ensemble_main(const std::vector<std::string>& args);

}  // namespace brainage::app
