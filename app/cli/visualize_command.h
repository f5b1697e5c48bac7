#pragma once
// `brainage visualize <prediction-dir> [-o DIR]`: expert maps, colour tables, region
// tables and figures for one prediction folder (viz::render_expert_maps).
#include <filesystem>
#include <string>
#include <vector>

#include "viz/expert_maps.h"

namespace brainage::app {

struct VisualizeOptions {
  std::filesystem::path input;  // a prediction folder (a scan is refused with a pointer to predict --maps)
  viz::MapsOptions maps{};      // output_dir empty = the prediction folder
};

/// Renders the maps and prints what was written. Throws UsageError for a scan input,
/// InvalidInputError for a broken prediction folder.
int run_visualize(const VisualizeOptions& options);
int visualize_main(const std::vector<std::string>& args);

}  // namespace brainage::app
