#pragma once
// Refuses images that pass the file checks but cannot be a head scan, before any step
// produces a mask from them: a constant image (all zeros, say), an image of a few grey
// levels (its intensity resolution lost, or a label map), an image with absurd
// outlier voxels (a normal head with one corrupt 1e30 voxel would otherwise be misjudged
// as noise, and wrecks every intensity-based step) and an image of noise (neighbouring
// voxels uncorrelated; any MR head image is spatially smooth).
#include <filesystem>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

struct PlausibilityOptions {
  /** Smallest mean correlation between neighbouring voxels (along x, y, z). Default = 0.3. */
  double min_neighbour_correlation{0.3};
  /** Largest ratio of the brightest |intensity| to the 99.9th percentile of |intensity|;
      voxels beyond it are corrupt (measured: at most 2.2 on Colin27, MRISnapshot and 40
      IXI-HH scans). Default = 1000. */
  double max_outlier_ratio{1000.0};
  /** Fewest distinct intensities: an image with fewer has lost its intensity resolution
      or is a label map. uint8 voxels with a scl_inter of 1e9 (1e8), applied in float32, keep
      5 (32) grey levels: IXI012 read 20 (2.4) y off (eighteenth session). An 8-bit scan has
      up to 256; a uint8 scan stored as 0-92 has 93. Default = 64. */
  std::size_t min_grey_levels{64};
};

/// Mean over the three axes of the correlation between each voxel and its next neighbour.
double neighbour_correlation(const ImageType* image);

/// Throws InvalidInputError naming `path` when the image is constant, has fewer than
/// min_grey_levels distinct intensities, holds absurd outlier voxels or looks like noise.
void check_scan_plausible(const ImageType* image, const std::filesystem::path& path,
                          const PlausibilityOptions& options = {});

}  // namespace brainage::preprocessing
