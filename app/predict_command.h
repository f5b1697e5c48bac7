#pragma once
// `brainage predict <scan> [-o DIR] [--model CKPT] [--json] [--maps]`: preprocessing
// (library call) -> model -> the predicted age. With -o DIR the preprocessing outputs and
// prediction.json (docs/ARCHITECTURE.md) are written there; --maps then renders the expert
// maps into DIR/maps (what `brainage visualize DIR` does).
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/checkpoint.h"

namespace brainage::app {

struct PredictOptions {
  std::filesystem::path scan;        // raw T1 scan (.nii/.nii.gz/DICOM folder)
  std::filesystem::path output_dir;  /** Default = none (print only). */
  std::filesystem::path model;       /** Default = default_model_path(). */
  bool json = false;                 /** Default = false. Print prediction JSON instead of text. */
  bool maps = false;                 /** Default = false. Render expert maps into output_dir/maps (needs -o). */
  bool assume_skull_stripped = false;  /** Default = false. Input is already brain-extracted. */
  int threads = 0;                   /** Default = 0 (all cores). */
};

/// The default checkpoint: $BRAINAGE_MODEL, else data/model/brainage-default.json in the
/// source tree this binary was built from, else <exe>/../share/brainage/model/... Throws
/// ModelError naming the paths tried when none exists.
std::filesystem::path default_model_path();

/// Runs the model on one preprocessed volume [1,1,Z,Y,X]: the prediction.json content
/// (without "scan"): predicted_age (raw model output), bias_corrected_age, model_id,
/// model (checkpoint path), routing (model::routing_summary), forward_seconds.
nlohmann::json predict_volume(model::LoadedModel& model, const torch::Tensor& volume,
                              const std::filesystem::path& model_path);

int run_predict(const PredictOptions& options);
int predict_main(const std::vector<std::string>& args);

}  // namespace brainage::app
