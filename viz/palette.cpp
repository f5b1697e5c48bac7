#include "viz/palette.h"

#include "common/errors.h"

namespace brainage::viz {

namespace {
constexpr std::array<Rgb, kPaletteSize> kPalette = {{
    {230, 159, 0},    // Okabe–Ito orange
    {86, 180, 233},   // Okabe–Ito sky blue
    {0, 158, 115},    // Okabe–Ito bluish green
    {240, 228, 66},   // Okabe–Ito yellow
    {0, 114, 178},    // Okabe–Ito blue
    {213, 94, 0},     // Okabe–Ito vermillion
    {204, 121, 167},  // Okabe–Ito reddish purple
    {136, 34, 85},    // Tol muted wine (8th: dark, so 8 experts avoid a third blue)
    {51, 34, 136},    // Tol muted indigo
    {221, 204, 119},  // Tol muted sand
    {68, 170, 153},   // Tol muted teal
    {153, 153, 51},   // Tol muted olive
    {204, 102, 119},  // Tol muted rose
    {136, 204, 238},  // Tol muted cyan
    {170, 68, 153},   // Tol muted purple
    {17, 119, 51},    // Tol muted green
}};
}  // namespace

void check_palette_fits(int num_experts, const std::string& source) {
  if (num_experts < 1 || num_experts > kPaletteSize)
    throw InvalidInputError(source + ": " + std::to_string(num_experts) + " experts, the expert palette has 1.." +
                            std::to_string(kPaletteSize) + " colours");
}

Rgb expert_colour(int e) {
  if (e < 0 || e >= kPaletteSize)
    throw InvalidInputError("expert palette: expert " + std::to_string(e) + " outside [0, " +
                            std::to_string(kPaletteSize) + ")");
  return kPalette[static_cast<std::size_t>(e)];
}

std::string expert_name(int e) { return "Expert " + std::to_string(e + 1); }

}  // namespace brainage::viz
