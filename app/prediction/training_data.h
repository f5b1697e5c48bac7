#pragma once
// Training data through the one path (app/prediction/scan_prediction.h): the subjects of a
// training manifest become model inputs exactly as `predict` and `evaluate` make them
// (the same preprocessing, cache and model_input), so a model never trains on inputs it
// will not see. Manifest columns: subject_id, age, path (or t1, as in the IXI
// participants.csv); a path is relative to the manifest's folder and names either a
// preprocessed volume on the model grid (t1_mni2mm.nii.gz, with its tissue_modulated_*
// maps beside it for a VBM model) or a raw scan, preprocessed once into the cache.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "model/trainer.h"

namespace brainage::prediction {

struct ManifestEntry {
  std::string subject_id;
  double age = 0;
  std::filesystem::path path;  // absolute
};

/// Reads the manifest; throws InvalidInputError naming the file, line and rule.
std::vector<ManifestEntry> read_training_manifest(const std::filesystem::path& manifest);

/// Loads (and if needed preprocesses + caches) every subject's model input for a model
/// described by `info` (its model_kind and, for "neural", info.model's channels and global
/// input: prediction::model_input, the one place that builds them) into
/// model::TrainingData.volumes [N, C, Z, Y, X] and .globals [N, G] (undefined when G = 0).
/// The tissue maps are read only when the model needs them (needs_tissue_maps).
/// Throws InvalidInputError / ProcessingError naming the subject's file.
model::TrainingData load_training_data(const std::vector<ManifestEntry>& entries, const std::filesystem::path& cache_dir,
                                       bool progress, const model::CheckpointInfo& info);

/// A checkpoint's training.data record of `data` (what the prediction checks read back):
/// subjects, age_min / age_max / age_mean (years; app/prediction/extrapolation_check.h) and
/// tissue_contrast, the scans' CSF/WM ratios (app/prediction/contrast_domain_check.h; left
/// out when none were measured). Throws std::invalid_argument when data holds no ages.
nlohmann::json training_data_summary(const model::TrainingData& data);

}  // namespace brainage::prediction
