#pragma once
// Colour tables for the expert label maps, one per viewer, all from viz/palette.h:
//   experts.lut           FSLeyes lookup table   ("k r g b name", r/g/b in [0, 1])
//   experts_itksnap.txt   ITK-SNAP label description file
//   experts_slicer.ctbl   3D Slicer colour table ("k name r g b a", 0..255)
// Label 0 is background (transparent where the format allows it), k = 1..E is Expert k.
#include <filesystem>
#include <string>
#include <vector>

namespace brainage::viz {

std::string fsleyes_lut(int num_experts);
std::string itksnap_label_description(int num_experts);
std::string slicer_colour_table(int num_experts);

/// Writes the three tables into `dir` (atomically) and returns their paths.
std::vector<std::filesystem::path> write_colour_tables(const std::filesystem::path& dir, int num_experts);

}  // namespace brainage::viz
