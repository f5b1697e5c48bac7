#pragma once
// Reading and writing the NIfTI volumes of a prediction folder: the names viz uses for
// preprocessing/model_grid.h's ITK reader and writer (the one image I/O of brainage). Reads
// throw InvalidInputError naming the file; writes are atomic (common/atomic_file.h) and
// throw OutputError.
#include <filesystem>
#include <string>

#include "preprocessing/image_types.h"
#include "preprocessing/model_grid.h"

namespace brainage::viz {

using preprocessing::ImageType;  // float volumes (T1, score maps)
using LabelImageType = preprocessing::MaskType;  // uint8 masks and expert label maps

inline ImageType::Pointer read_float_volume(const std::filesystem::path& path) { return preprocessing::read_image(path); }
inline LabelImageType::Pointer read_label_volume(const std::filesystem::path& path) { return preprocessing::read_mask(path); }

inline void write_volume(const ImageType* image, const std::filesystem::path& path) { preprocessing::write_image(image, path); }
inline void write_volume(const LabelImageType* image, const std::filesystem::path& path) {
  preprocessing::write_mask(image, path);
}

/// Throws InvalidInputError if `a` and `b` (named in the message) differ in size, or in
/// spacing/origin/direction by more than `tolerance` (mm, or cosine).
void require_same_grid(const itk::ImageBase<3>* a, const std::string& a_name, const itk::ImageBase<3>* b,
                       const std::string& b_name, double tolerance = 1e-3);

}  // namespace brainage::viz
