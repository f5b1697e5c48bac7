#pragma once
// The one fixed expert palette, used by every output (NIfTI colour tables, 2D figures,
// 3D surfaces): colour-blind-safe Okabe–Ito (7 colours, black left out because it
// vanishes on anatomy) extended by Paul Tol's "muted" scheme, 16 colours in all.
// Label value k (1..E) in the expert maps is expert k-1 of prediction.json and uses
// colour k-1 of this list.
#include <array>
#include <cstdint>
#include <string>

namespace brainage::viz {

struct Rgb {
  std::uint8_t r, g, b;
};

constexpr int kPaletteSize = 16;

/// Colour of 0-based expert `e`; throws InvalidInputError if e >= kPaletteSize.
Rgb expert_colour(int e);

/// "Expert k" with k = e + 1 (the label value in the maps).
std::string expert_name(int e);

/// Throws InvalidInputError naming `source` if `num_experts` exceeds the palette.
void check_palette_fits(int num_experts, const std::string& source);

}  // namespace brainage::viz
