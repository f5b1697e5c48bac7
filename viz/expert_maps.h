#pragma once
// Everything `brainage visualize` (and `brainage predict --maps`) writes for one
// prediction folder. Reads, from the folder (docs/ARCHITECTURE.md):
//   prediction.json (routing, scan), t1_mni2mm.nii.gz, brain_mask_mni2mm.nii.gz,
//   tissue_mni2mm.nii.gz, native_to_mni.tfm, and the native geometry from the scan named
//   in prediction.json (brain_mask_native.nii.gz when the scan is gone).
// Writes into the output folder:
//   experts_mni2mm.nii.gz          summary expert map on the model grid (uint8, 0 outside
//                                  the brain mask, k = Expert k); summary = majority vote
//                                  over MoE layers, ties to the deepest layer
//   experts_mni2mm_layer<L>.nii.gz the same for each MoE layer L
//   experts_score_mni2mm.nii.gz    summary top-1 Eigenbasis score (float)
//   experts_native.nii.gz          summary map in the scan's native grid (nearest neighbour)
//   experts_score_native.nii.gz    score map in the native grid
//   experts.lut, experts_itksnap.txt, experts_slicer.ctbl   colour tables (one palette)
//   expert_regions.csv, expert_tissues.csv, specialisation.csv
//   experts_ortho.png, experts_mosaic.png, experts_3d.png (3D needs a display)
//   maps.json                      what was written, the summary rule, NMI per layer
#include <filesystem>
#include <string>
#include <vector>

#include "viz/slice_figures.h"
#include "viz/surface_figure.h"

namespace brainage::viz {

struct MapsOptions {
  std::filesystem::path prediction_dir;  // required
  /** Where the maps go. Default = the prediction folder. */
  std::filesystem::path output_dir{};
  /** Also write one label map per MoE layer. Default = true. */
  bool per_layer_maps{true};
  /** Render the 3D view; without a display it is skipped with a warning. Default = true. */
  bool render_3d{true};
  /** Render the 2D figures (ortho + mosaic). Default = true. */
  bool render_2d{true};
  /** Layer the figures show: 0 = the summary, L = MoE layer L. Default = 0. */
  int figure_layer{0};
  /** Atlas for the region table. Default = /usr/share/mricron/templates/aal.nii.gz. */
  std::filesystem::path atlas{"/usr/share/mricron/templates/aal.nii.gz"};
  /** Region names ("value name ..." lines). Default = /usr/share/mricron/templates/aal.nii.txt. */
  std::filesystem::path atlas_names{"/usr/share/mricron/templates/aal.nii.txt"};
  OrthoFigureOptions ortho{};
  MosaicFigureOptions mosaic{};
  SurfaceFigureOptions surface{};
};

struct LayerSpecialisation {
  std::string layer;  // "summary" or the layer number
  double nmi_region{0.0};
  double nmi_tissue{0.0};
};

struct MapsReport {
  std::vector<std::filesystem::path> files;  // every file written
  std::vector<std::string> warnings;         // e.g. 3D view skipped
  std::vector<LayerSpecialisation> specialisation;
  std::vector<double> token_share;           // summary layer, per expert
};

/// Writes every map, table and figure listed above. Throws InvalidInputError for a
/// missing or inconsistent prediction folder, OutputError when the output is unwritable.
MapsReport render_expert_maps(const MapsOptions& options);

}  // namespace brainage::viz
