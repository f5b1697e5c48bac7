#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "preprocessing/preprocess_pipeline.h"

namespace brainage::app {

struct PreprocessCommandOptions {
  std::filesystem::path scan;    // .nii, .nii.gz or a DICOM folder
  std::filesystem::path output;  // folder for the outputs (created)
  preprocessing::PreprocessOptions pipeline;
  bool json = false;             // print preprocess.json to stdout instead of a summary (default: summary)
};

/// Runs the pipeline and writes every output (docs/ARCHITECTURE.md). Returns 0; when QC
/// fails the outputs are still written and ProcessingError (exit 5) is thrown naming the flags.
int run_preprocess(const PreprocessCommandOptions& options);
int preprocess_main(const std::vector<std::string>& args);

}  // namespace brainage::app
