#pragma once
// Refuses images that pass the file checks but cannot be a head scan, before any step
// produces a mask from them: a constant image (all zeros, say) and an image of noise
// (neighbouring voxels uncorrelated; any MR head image is spatially smooth).
#include <filesystem>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

struct PlausibilityOptions {
  /** Smallest mean correlation between neighbouring voxels (along x, y, z). Default = 0.3. */
  double min_neighbour_correlation{0.3};
};

/// Mean over the three axes of the correlation between each voxel and its next neighbour.
double neighbour_correlation(const ImageType* image);

/// Throws InvalidInputError naming `path` when the image is constant or looks like noise.
void check_scan_plausible(const ImageType* image, const std::filesystem::path& path,
                          const PlausibilityOptions& options = {});

}  // namespace brainage::preprocessing
