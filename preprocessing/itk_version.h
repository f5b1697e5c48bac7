#pragma once
#include <string>
namespace brainage::preprocessing {
/// "5.2.1": the ITK this was built with.
std::string itk_version();
}  // namespace brainage::preprocessing
