#include "viz/vtk_version.h"

#include <vtkVersion.h>

namespace brainage::viz {
std::string vtk_version() { return vtkVersion::GetVTKVersion(); }
}  // namespace brainage::viz
