#pragma once
// The ITK image types every preprocessing step shares.
#include <itkImage.h>

namespace brainage::preprocessing {

constexpr unsigned int kDim = 3;
using ImageType = itk::Image<float, kDim>;        // intensities (T1, bias field, probabilities)
using MaskType = itk::Image<unsigned char, kDim>; // binary masks and label maps

}  // namespace brainage::preprocessing
