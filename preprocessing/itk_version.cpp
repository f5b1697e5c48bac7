#include "preprocessing/itk_version.h"

#include <itkVersion.h>

namespace brainage::preprocessing {
std::string itk_version() { return itk::Version::GetITKVersion(); }
}  // namespace brainage::preprocessing
