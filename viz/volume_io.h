#pragma once
// Reading and writing the NIfTI volumes of a prediction folder (ITK). Reads throw
// InvalidInputError naming the file; writes go through common/atomic_file.h.
#include <filesystem>

#include "preprocessing/image_types.h"

namespace brainage::viz {

using preprocessing::ImageType;  // float volumes (T1, score maps)
using LabelImageType = preprocessing::MaskType;  // uint8 masks and expert label maps

ImageType::Pointer read_float_volume(const std::filesystem::path& path);
LabelImageType::Pointer read_label_volume(const std::filesystem::path& path);

void write_volume(const ImageType* image, const std::filesystem::path& path);
void write_volume(const LabelImageType* image, const std::filesystem::path& path);

/// Throws InvalidInputError if `a` and `b` (named in the message) differ in size, or in
/// spacing/origin/direction by more than `tolerance` (mm, or cosine).
void require_same_grid(const itk::ImageBase<3>* a, const std::string& a_name, const itk::ImageBase<3>* b,
                       const std::string& b_name, double tolerance = 1e-3);

}  // namespace brainage::viz
