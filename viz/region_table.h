#pragma once
// Expert × anatomy tables: for each expert, the share of its brain voxels that lie in
// each AAL region (atlas resampled to the model grid, nearest neighbour) and in each
// tissue class; and one specialisation number per layer, the normalised mutual
// information NMI(E; R) = 2·I(E; R) / (H(E) + H(R)) over brain voxels, in [0, 1]
// (0: experts independent of anatomy, 1: each region handled by exactly one expert).
#include <filesystem>
#include <string>
#include <vector>

#include "viz/volume_io.h"

namespace brainage::viz {

/// A per-voxel category on the model grid; names[c] names category value c. Category 0
/// is "outside every region" and is kept as its own column.
struct CategoryMap {
  LabelImageType::Pointer labels;
  std::vector<std::string> names;
};

/// AAL (`aal.nii.gz` + `aal.nii.txt` lines "value name code") resampled onto `grid`.
CategoryMap load_atlas_on_grid(const std::filesystem::path& atlas, const std::filesystem::path& names_txt,
                               const itk::ImageBase<3>* grid);

/// The preprocessing tissue map (0 background, 1 CSF, 2 GM, 3 WM) as categories.
CategoryMap tissue_categories(const LabelImageType* tissue);

using Contingency = std::vector<std::vector<double>>;  // [expert 0..E-1][category], voxel counts

/// Counts brain voxels (expert label > 0) per expert and category. Throws
/// InvalidInputError if the grids differ.
Contingency cross_tabulate(const LabelImageType* expert_labels, const CategoryMap& categories, int num_experts);

/// 2·I / (H(E) + H(R)); 0 when either marginal is constant.
double normalised_mutual_information(const Contingency& counts);

struct LayerTable {
  std::string layer;                      // "summary" or the layer number
  Contingency counts;                     // voxels per expert and category
  std::vector<std::size_t> brain_tokens;  // tokens touching the brain, per expert
};

/// Wide CSV: layer, expert, brain_tokens, token_share, brain_voxels, then one share column
/// per named category and the "outside" category (0) last. Each row's shares sum to 1; an
/// expert with no brain voxels has empty share cells.
std::string share_csv(const std::vector<LayerTable>& tables, const CategoryMap& categories);

}  // namespace brainage::viz
