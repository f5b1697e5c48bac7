#pragma once
#include <string>
namespace brainage::viz {
/// "9.1.0": the VTK this was built with.
std::string vtk_version();
}  // namespace brainage::viz
