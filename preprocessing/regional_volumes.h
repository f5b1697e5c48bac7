#pragma once
// GM / WM / CSF volumes per atlas region: the modulated tissue maps of tissue_probability.h
// (mL of the subject's own tissue per model-grid voxel) summed over the voxels that an atlas
// in MNI space labels as each region. The default atlas is AAL (Tzourio-Mazoyer et al.
// 2002, 116 regions) as shipped by Debian's mricron-data: aal.nii.gz (Colin27 space, 1 mm)
// and aal.nii.txt ("<index> <name> <code>" per line).
#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

using LabelImageType = itk::Image<unsigned short, 3>;

struct AtlasRegion {
  int label = 0;     // voxel value in the atlas image
  std::string name;  // e.g. "Precentral_L"
};

/// An atlas sampled on the model grid (nearest neighbour at every voxel centre).
struct ModelGridAtlas {
  LabelImageType::Pointer labels;  // model grid; 0 = no region
  std::vector<AtlasRegion> regions;  // in the names file's order
};

/// Reads `<atlas>.nii.gz` and its names `<atlas>.nii.txt` ("<label> <name> [...]" per line,
/// CR/LF tolerated) and samples the labels on the model grid. The atlas must be in MNI
/// (Colin27) space. Throws InvalidInputError naming the file when either is missing,
/// unreadable or a names line is malformed.
ModelGridAtlas load_model_grid_atlas(const std::filesystem::path& atlas_image,
                                     const std::filesystem::path& names_file);

/// The Debian AAL atlas: <template_dir>/aal.nii.gz + aal.nii.txt, read once per process and
/// folder (thread-safe; the reference stays valid). Throws as load_model_grid_atlas.
const ModelGridAtlas& load_aal_atlas(const std::filesystem::path& template_dir = "/usr/share/mricron/templates");

struct RegionVolume {
  int label = 0;
  std::string name;
  std::array<double, 3> ml{};  // CSF, GM, WM
  std::size_t voxels = 0;      // model-grid voxels of the region
};

/// Σ of each modulated map (model grid, mL per voxel; CSF, GM, WM) over each region, one
/// row per region of the atlas in its order. Throws ProcessingError when a map is not on
/// the model grid.
std::vector<RegionVolume> regional_volumes(const std::array<ImageType::Pointer, 3>& modulated,
                                           const ModelGridAtlas& atlas);

/// CSV: "label,region,csf_ml,gm_ml,wm_ml,voxels", one line per region (mL to 4 decimals).
/// Atomic; throws OutputError naming the file.
void write_regional_volumes_csv(const std::vector<RegionVolume>& volumes, const std::filesystem::path& path);

}  // namespace brainage::preprocessing
