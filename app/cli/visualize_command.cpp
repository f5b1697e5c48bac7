#include "app/cli/visualize_command.h"

#include <chrono>
#include <cstdio>
#include <iostream>

#include "app/cli/cli.h"
#include "common/errors.h"
#include "common/x_display.h"

namespace brainage::app {

namespace fs = std::filesystem;

int run_visualize(const VisualizeOptions& options) {
  const fs::path& in = options.input;
  if (!fs::exists(in)) throw InvalidInputError(in.string() + ": not found (expected a prediction folder)");
  if (!fs::is_directory(in) || !fs::exists(in / "prediction.json")) {
    throw UsageError(in.string() + ": not a prediction folder (no prediction.json); for a scan run `brainage predict " +
                     in.string() + " -o DIR --maps`, or `brainage predict` then `brainage visualize DIR`");
  }
  viz::MapsOptions maps = options.maps;
  maps.prediction_dir = in;
  if (maps.render_3d) ensure_x_display();  // headless: a private Xvfb, before any thread starts
  const auto t0 = std::chrono::steady_clock::now();
  const viz::MapsReport report = viz::render_expert_maps(maps);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& w : report.warnings) std::cerr << "warning: " << w << "\n";
  std::cout << "expert maps for " << in.string() << " (" << report.files.size() << " files, " << seconds << " s)\n";
  for (const auto& f : report.files) std::cout << "  " << f.string() << "\n";
  std::cout << "specialisation (normalised mutual information, expert vs region):\n";
  for (const auto& s : report.specialisation) {
    char line[128];
    std::snprintf(line, sizeof line, "  layer %-8s AAL region %.3f   tissue %.3f\n", s.layer.c_str(), s.nmi_region,
                  s.nmi_tissue);
    std::cout << line;
  }
  return 0;
}

int visualize_main(const std::vector<std::string>& args) {
  VisualizeOptions options;
  std::string input, output, atlas, atlas_names;
  bool no_3d = false, no_layers = false;
  const viz::MapsOptions defaults;
  po::options_description desc("visualize options");
  desc.add_options()
    ("input", po::value(&input)->required(), "prediction folder written by `brainage predict -o DIR`")
    ("output,o", po::value(&output), "output folder (default: the prediction folder)")
    ("no-3d", po::bool_switch(&no_3d), "skip the 3D view (default: rendered; on a headless machine brainage "
                                       "starts a private Xvfb)")
    ("no-layer-maps", po::bool_switch(&no_layers), "write only the summary map, not one map per MoE layer")
    ("layer", po::value(&options.maps.figure_layer)->default_value(0),
     "MoE layer the figures show (0 = the summary: majority over layers)")
    ("atlas", po::value(&atlas)->default_value(defaults.atlas.string()), "atlas for the region table (MNI space)")
    ("atlas-names", po::value(&atlas_names)->default_value(defaults.atlas_names.string()),
     "atlas region names, lines \"value name ...\"");
  po::positional_options_description pos;
  pos.add("input", 1);
  if (!parse_command_line("visualize", "<prediction-dir> [-o DIR] [--no-3d]", args, desc, pos)) return 0;
  options.input = input;
  options.maps.output_dir = output;
  options.maps.render_3d = !no_3d;
  options.maps.per_layer_maps = !no_layers;
  options.maps.atlas = atlas;
  options.maps.atlas_names = atlas_names;
  return run_visualize(options);
}

}  // namespace brainage::app
