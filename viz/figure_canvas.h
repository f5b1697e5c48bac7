#pragma once
// An RGB canvas for composing 2D figures out of VTK images: panels from the imaging
// pipeline are pasted in, text is rendered with VTK's FreeType tools (no display needed),
// and the result is written with vtkPNGWriter. Coordinates are in pixels from the
// top-left corner, as on the page.
#include <vtkSmartPointer.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "viz/palette.h"

class vtkImageData;

namespace brainage::viz {

enum class TextAlign { kLeft, kCentre, kRight };

class Canvas {
 public:
  Canvas(int width, int height, Rgb background);
  int width() const { return width_; }
  int height() const { return height_; }

  void fill_rect(int x, int y, int w, int h, Rgb colour);
  /// Draws an unfilled rectangle with a `thickness`-pixel line.
  void frame_rect(int x, int y, int w, int h, Rgb colour, int thickness = 1);
  /// Pastes a 2D unsigned-char image (1, 3 or 4 components; 4 = alpha-blended) with its
  /// top-left corner at (x, y); parts outside the canvas are clipped.
  void paste(vtkImageData* image, int x, int y);
  /// Renders `text` with its top edge at y; x is its left edge, centre or right edge per
  /// `align`. Returns {width, height} of the text in pixels.
  std::array<int, 2> text(const std::string& text, int x, int y, int size_px, Rgb colour,
                          TextAlign align = TextAlign::kLeft, bool bold = false);
  /// Size the text would take, without drawing.
  static std::array<int, 2> measure(const std::string& text, int size_px, bool bold = false);
  /// The largest font size <= `size_px` (and >= 8) at which `text` fits in `width` pixels.
  static int fitting_size(const std::string& text, int size_px, int width, bool bold = false);

  Rgb pixel(int x, int y) const;
  vtkSmartPointer<vtkImageData> to_image() const;
  /// Writes the canvas as PNG (vtkPNGWriter, atomically).
  void write_png(const std::filesystem::path& path) const;

 private:
  int width_, height_;
  std::vector<std::uint8_t> rgb_;  // top row first
};

}  // namespace brainage::viz
