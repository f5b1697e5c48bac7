#pragma once
// The model grid: the one image geometry the model sees. MNI-aligned (Colin27 space,
// ch2.nii.gz), 2 mm isotropic, 80×96×80 voxels (x, y, z), voxel axes pointing to
// Right, Anterior, Superior (ITK direction diag(-1, -1, 1) in its LPS world).
//
// Voxel (i, j, k) has its centre at MNI/RAS (−79 + 2i, −112 + 2j, −70 + 2k) mm, i.e. the
// box spans RAS x ∈ [−80, 80], y ∈ [−113, 79], z ∈ [−71, 89] mm. It crops the Colin27
// box (RAS x −90..90, y −125..91, z −71..109 at 1 mm) to the brain: the ch2bet brain
// (x −72..71, y −106..73, z −67..84) lies inside with ≥ 4 mm margin everywhere. The ITK
// origin (LPS) is therefore (79, 112, −70). Patch sizes 8 and 16 divide every axis.
#include <array>
#include <filesystem>
#include <vector>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

inline constexpr std::array<unsigned, 3> kModelGridSize{80, 96, 80};  // x, y, z voxels
inline constexpr double kModelGridSpacing = 2.0;                       // mm
/// Centre of voxel (0, 0, 0) in MNI/RAS mm.
inline constexpr std::array<double, 3> kModelGridOriginRAS{-79.0, -112.0, -70.0};

/// A model-grid image filled with `fill`.
ImageType::Pointer make_model_grid_image(float fill = 0);
/// A model-grid mask filled with `fill`.
MaskType::Pointer make_model_grid_mask(unsigned char fill = 0);
/// True when `image` has the model grid's size, spacing, origin and direction (1e-4 mm tolerance).
bool is_model_grid(const itk::ImageBase<3>* image);

/// The voxels in ITK buffer order (x fastest, then y, then z): 80·96·80 floats that map to
/// a tensor [1, 80 (Z), 96 (Y), 80 (X)] without moving axes. Throws ProcessingError if
/// `image` is not on the model grid.
std::vector<float> image_to_buffer(const ImageType* image);
/// Inverse of image_to_buffer. Throws ProcessingError when values.size() != 80·96·80.
ImageType::Pointer buffer_to_model_grid(const std::vector<float>& values);

/// Plain ITK read of our own outputs (no scan validation); throws InvalidInputError
/// naming the file when it is missing or unreadable.
ImageType::Pointer read_image(const std::filesystem::path& path);
MaskType::Pointer read_mask(const std::filesystem::path& path);
/// Atomic writes (common/atomic_file.h write_via_temp); throw OutputError naming the file.
void write_image(const ImageType* image, const std::filesystem::path& path);
void write_mask(const MaskType* mask, const std::filesystem::path& path);

}  // namespace brainage::preprocessing
