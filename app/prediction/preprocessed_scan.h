#pragma once
// Step 1 of "a scan in, a prediction out" (app/prediction/scan_prediction.h): a scan
// becomes the preprocessing outputs the model reads, optionally through a content-keyed
// cache that `evaluate` and `train` share.
//
// Cache: <cache_dir>/<SHA-256 of the scan's content, 16 hex>-<pipeline key, 16 hex>/ holds
// the preprocessing outputs of docs/ARCHITECTURE.md. The scan's content is its bytes, or
// for a DICOM series folder the digest of every file in it (common/content_hash.h). The
// pipeline key is the SHA-256 of preprocessing::preprocess_parameters_json(options) (every
// parameter that can change an output, the thread count included) plus the brainage
// version and git SHA, so a new build or other options never reuse stale outputs. Entries
// are written into a temporary folder and renamed into place: a killed run never leaves a
// half entry that looks complete.
#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "preprocessing/preprocess_pipeline.h"

namespace brainage::prediction {

struct PreprocessStepOptions {
  /** The pipeline's options (threads included). Default = preprocessing's defaults. */
  preprocessing::PreprocessOptions preprocess{};
  /** Cache folder; empty = no cache (the pipeline runs and nothing is stored). Default = none. */
  std::filesystem::path cache_dir{};
  /** A file already on the model grid (a t1_mni2mm.nii.gz) is used as is, without the
      pipeline (training manifests of preprocessed inputs); with `read_tissue_maps`, the
      modulated tissue maps beside it come with it. Default = false. */
  bool accept_model_grid_input{false};
  /** A scan that fails a QC check is still returned, each failed check carried as a flag
      "QC failed: <check>" (evaluate --include-qc-failed). Default = false: it throws. */
  bool accept_failed_qc{false};
  /** Read the modulated tissue maps of a cache entry or model-grid input (a VBM model's
      input; three more files per scan, so only when a model needs them). A fresh result
      always carries them. Default = false. */
  bool read_tissue_maps{false};
};

/// A scan after preprocessing: what the model input is built from, and what a prediction
/// folder holds.
struct PreprocessedScan {
  std::filesystem::path scan;                 // as given
  preprocessing::ImageType::Pointer t1_model; // model grid, brain only, normalised
  /** Modulated CSF, GM, WM maps on the model grid (mL of the subject's own tissue per
      voxel; tissue_probability.h), the VBM model's input. Null unless fresh or
      PreprocessStepOptions::read_tissue_maps (and the files exist). */
  std::array<preprocessing::ImageType::Pointer, 3> modulated_tissue{};
  nlohmann::json report;                      // preprocess.json ({} for a model-grid input)
  std::vector<std::string> qc_flags;          // warnings that did not stop the scan
  /** The fresh pipeline result (null members when served from the cache or a model-grid input). */
  preprocessing::PreprocessResult result;
  bool fresh = false;                         // `result` holds the pipeline's outputs
  std::filesystem::path cache_entry;          // the cache folder of this scan, "" without a cache
  bool from_cache = false;                    // served from an existing cache entry
  bool model_grid_input = false;              // the input was already on the model grid
};

/// The cache key part that is not the scan's content: 16 hex digits of the SHA-256 of the
/// pipeline parameters (preprocess_parameters_json) and the binary's version and git SHA.
std::string preprocessing_pipeline_key(const preprocessing::PreprocessOptions& options);

/// Preprocesses `scan` (or reads its cache entry, or takes it as is when it is on the model
/// grid and that is accepted). Throws InvalidInputError for a missing or broken scan (the
/// pipeline's validation, or a model-grid image when accept_model_grid_input is off: it is
/// already preprocessed), ProcessingError "<scan>: preprocessing failed QC (<flags>)" when
/// a QC check failed (unless accept_failed_qc), OutputError when the cache cannot be written.
PreprocessedScan preprocess_for_model(const std::filesystem::path& scan, const PreprocessStepOptions& options);

/// Writes the preprocessing outputs of docs/ARCHITECTURE.md into `dir`: the fresh result's
/// files, or a copy of the cache entry. Throws OutputError; InvalidInputError for a
/// model-grid input (it has no preprocessing outputs).
void write_preprocessing_outputs(const PreprocessedScan& scan, const std::filesystem::path& dir);

}  // namespace brainage::prediction
