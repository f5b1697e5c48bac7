#include "viz/colour_tables.h"

#include <cstdarg>
#include <cstdio>

#include "common/atomic_file.h"
#include "viz/palette.h"

namespace brainage::viz {

namespace {
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[256];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}
}  // namespace

std::string fsleyes_lut(int num_experts) {
  check_palette_fits(num_experts, "FSLeyes colour table");
  std::string s;
  for (int e = 0; e < num_experts; ++e) {
    const Rgb c = expert_colour(e);
    s += format("%d %.6f %.6f %.6f %s\n", e + 1, c.r / 255.0, c.g / 255.0, c.b / 255.0, expert_name(e).c_str());
  }
  return s;
}

std::string itksnap_label_description(int num_experts) {
  check_palette_fits(num_experts, "ITK-SNAP label description");
  std::string s =
      "################################################\n"
      "# ITK-SnAP Label Description File\n"
      "# brainage expert map: label k = Expert k (top-1 routing)\n"
      "# File format: \n"
      "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL\n"
      "# Fields: \n"
      "#    IDX:   Zero-based index \n"
      "#    -R-:   Red color component (0..255)\n"
      "#    -G-:   Green color component (0..255)\n"
      "#    -B-:   Blue color component (0..255)\n"
      "#    -A-:   Label transparency (0.00 .. 1.00)\n"
      "#    VIS:   Label visibility (0 or 1)\n"
      "#    IDX:   Label mesh visibility (0 or 1)\n"
      "#  LABEL:   Label description \n"
      "################################################\n";
  s += format("%5d %5d %4d %4d %8g %2d %2d    \"%s\"\n", 0, 0, 0, 0, 0.0, 0, 0, "Clear Label");
  for (int e = 0; e < num_experts; ++e) {
    const Rgb c = expert_colour(e);
    s += format("%5d %5d %4d %4d %8g %2d %2d    \"%s\"\n", e + 1, c.r, c.g, c.b, 1.0, 1, 1, expert_name(e).c_str());
  }
  return s;
}

std::string slicer_colour_table(int num_experts) {
  check_palette_fits(num_experts, "Slicer colour table");
  std::string s = "# Color table file experts_slicer.ctbl\n";
  s += format("# %d values\n", num_experts + 1);
  s += "0 background 0 0 0 0\n";
  for (int e = 0; e < num_experts; ++e) {
    const Rgb c = expert_colour(e);
    s += format("%d Expert_%d %d %d %d 255\n", e + 1, e + 1, c.r, c.g, c.b);
  }
  return s;
}

std::vector<std::filesystem::path> write_colour_tables(const std::filesystem::path& dir, int num_experts) {
  const std::vector<std::filesystem::path> paths = {dir / "experts.lut", dir / "experts_itksnap.txt",
                                                    dir / "experts_slicer.ctbl"};
  write_file_atomic(paths[0], fsleyes_lut(num_experts));
  write_file_atomic(paths[1], itksnap_label_description(num_experts));
  write_file_atomic(paths[2], slicer_colour_table(num_experts));
  return paths;
}

}  // namespace brainage::viz
