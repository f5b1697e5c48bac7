#pragma once
// `brainage train --manifest CSV -o DIR`: trains the brain-age model (model/trainer.h) on
// the subjects of a manifest. Manifest columns: subject_id, age, path (or t1, as in the
// IXI participants.csv); a path is relative to the manifest's folder and names either a
// preprocessed volume on the model grid (t1_mni2mm.nii.gz) or a raw scan, which is
// preprocessed once and cached under DIR/cache/<subject_id>/.
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
  /** Default = one process. Data-parallel ranks (docs/DISTRIBUTED.md); train_main fills it
      from WORLD_SIZE/RANK/MASTER_ADDR/MASTER_PORT/LOCAL_RANK, then the flags. */
  model::DistributedOptions distributed;
  /** Default = false (a transformer). `--model-kind vbm`: fit the VBM ridge model
      (model/vbm_model.h) on the modulated tissue maps instead; `vbm` holds its options. */
  bool fit_vbm = false;
  model::VbmOptions vbm;  // defaults: model/vbm_model.h
};

struct ManifestEntry {
  std::string subject_id;
  double age = 0;
  std::filesystem::path path;  // absolute
};

/// Reads the manifest; throws InvalidInputError naming the file, line and rule.
std::vector<ManifestEntry> read_training_manifest(const std::filesystem::path& manifest);

/// Loads (and if needed preprocesses + caches) every subject's model input
/// (prediction::model_input for `model_kind`: [1, Z, Y, X] T1 for "neural", [3, Z, Y, X]
/// modulated CSF/GM/WM for "vbm") into model::TrainingData.volumes [N, C, Z, Y, X].
/// Throws InvalidInputError / ProcessingError naming the subject's file.
model::TrainingData load_training_data(const std::vector<ManifestEntry>& entries, const std::filesystem::path& cache_dir,
                                       bool progress, const std::string& model_kind = "neural");

int run_train(const TrainCommandOptions& options);
int train_main(const std::vector<std::string>& args);

}  // namespace brainage::app
