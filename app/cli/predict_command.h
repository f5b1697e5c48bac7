#pragma once
// `brainage predict <scan> [-o DIR] [--model CKPT] [--json] [--maps]`: option table and
// wiring around prediction::predict_scan (app/prediction/scan_prediction.h). With -o DIR the preprocessing outputs and
// prediction.json (docs/ARCHITECTURE.md) are written there; --maps then renders the expert
// maps into DIR/maps (what `brainage visualize DIR` does).
#include <filesystem>
#include <string>
#include <vector>


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

/// prediction::predict_scan on one scan, the prediction printed (text or JSON) and, with
/// -o, the prediction folder written; --maps then renders the expert maps.
int run_predict(const PredictOptions& options);
int predict_main(const std::vector<std::string>& args);

}  // namespace brainage::app
