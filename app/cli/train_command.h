#pragma once
// `brainage train --manifest CSV -o DIR`: trains a brain-age model on the subjects of a
// manifest: a transformer (model/trainer.h) or, with --model-kind vbm, the VBM ridge model
// (model/vbm_model.h). The manifest and its inputs: app/prediction/training_data.h; raw
// scans are preprocessed once into DIR/cache/. --seeds K trains a calibrated K-member
// ensemble instead of one model (model/ensemble.h).
#include <filesystem>
#include <string>
#include <vector>

#include "model/distributed.h"
#include "model/trainer.h"
#include "model/vbm_model.h"

namespace brainage::app {

struct TrainCommandOptions {
  std::filesystem::path manifest;     // required
  int threads = 0;                    /** Default = 0 (all cores). LibTorch/OpenBLAS/ITK threads. */
  int64_t limit = 0;                  /** Default = 0 (all). Use only the first N manifest rows. */
  model::TrainOptions train;          // output_dir required; see model/trainer.h for defaults
  /** Default = 1 (one model, DIR/model.{pt,json}). K >= 2: a cross-validated seed ensemble
      (model/ensemble.h): member k trains in DIR/member<k>/ with folds K, fold k, seed
      train.seed + k, split seed train.seed, last-epoch weights and no early stopping; then
      DIR/model.json + model.member<k>.pt (run_ensemble, app/cli/ensemble_command.h). */
  int64_t seeds = 1;
  /** Default = one process. Data-parallel ranks (docs/DISTRIBUTED.md); train_main fills it
      from WORLD_SIZE/RANK/MASTER_ADDR/MASTER_PORT/LOCAL_RANK, then the flags. */
  model::DistributedOptions distributed;
  /** Default = false (a transformer). `--model-kind vbm`: fit the VBM ridge model
      (model/vbm_model.h) on the modulated tissue maps instead; `vbm` holds its options. */
  bool fit_vbm = false;
  model::VbmOptions vbm;  // defaults: model/vbm_model.h
  /** Default = none. `--vbm-augment CSV`: augmentation copies for the VBM fit (subject_id, age,
      path, as the manifest; each subject_id one of the manifest's, with its age), e.g. each
      training scan skull-stripped or under a random bias field (model::VbmAugmentation). */
  std::filesystem::path vbm_augment;
};

int run_train(const TrainCommandOptions& options);
int train_main(const std::vector<std::string>& args);

}  // namespace brainage::app
