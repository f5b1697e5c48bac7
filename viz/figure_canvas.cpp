#include "viz/figure_canvas.h"

#include <vtkFreeTypeTools.h>
#include <vtkImageData.h>
#include <vtkNew.h>
#include <vtkPNGWriter.h>
#include <vtkStdString.h>
#include <vtkTextProperty.h>

#include <algorithm>

#include "common/atomic_file.h"
#include "common/errors.h"

namespace brainage::viz {

namespace {
vtkNew<vtkTextProperty> text_property(int size_px, Rgb colour, bool bold) {
  vtkNew<vtkTextProperty> p;
  p->SetFontFamilyToArial();
  p->SetFontSize(size_px);
  p->SetBold(bold);
  p->SetColor(colour.r / 255.0, colour.g / 255.0, colour.b / 255.0);
  p->SetJustificationToLeft();
  p->SetVerticalJustificationToBottom();
  return p;
}
}  // namespace

Canvas::Canvas(int width, int height, Rgb bg) : width_(width), height_(height) {
  if (width <= 0 || height <= 0)
    throw UsageError("figure size " + std::to_string(width) + "x" + std::to_string(height) + " must be positive");
  rgb_.resize(static_cast<std::size_t>(width) * height * 3);
  for (std::size_t i = 0; i < rgb_.size(); i += 3) {
    rgb_[i] = bg.r;
    rgb_[i + 1] = bg.g;
    rgb_[i + 2] = bg.b;
  }
}

void Canvas::fill_rect(int x, int y, int w, int h, Rgb c) {
  for (int yy = std::max(0, y); yy < std::min(height_, y + h); ++yy)
    for (int xx = std::max(0, x); xx < std::min(width_, x + w); ++xx) {
      auto* p = &rgb_[(static_cast<std::size_t>(yy) * width_ + xx) * 3];
      p[0] = c.r;
      p[1] = c.g;
      p[2] = c.b;
    }
}

void Canvas::frame_rect(int x, int y, int w, int h, Rgb c, int t) {
  fill_rect(x, y, w, t, c);
  fill_rect(x, y + h - t, w, t, c);
  fill_rect(x, y, t, h, c);
  fill_rect(x + w - t, y, t, h, c);
}

void Canvas::paste(vtkImageData* image, int x0, int y0) {
  if (!image || image->GetScalarType() != VTK_UNSIGNED_CHAR)
    throw ProcessingError("figure canvas: pasted image must be unsigned char");
  const int* dims = image->GetDimensions();
  const int nc = image->GetNumberOfScalarComponents();
  const int* ext = image->GetExtent();
  for (int row = 0; row < dims[1]; ++row) {
    const int y = y0 + row;  // row 0 of the page = top = highest VTK j
    if (y < 0 || y >= height_) continue;
    for (int col = 0; col < dims[0]; ++col) {
      const int x = x0 + col;
      if (x < 0 || x >= width_) continue;
      const auto* s = static_cast<const unsigned char*>(
          image->GetScalarPointer(ext[0] + col, ext[2] + dims[1] - 1 - row, ext[4]));
      auto* d = &rgb_[(static_cast<std::size_t>(y) * width_ + x) * 3];
      if (nc == 1) {
        d[0] = d[1] = d[2] = s[0];
      } else if (nc == 3) {
        d[0] = s[0], d[1] = s[1], d[2] = s[2];
      } else {
        const int a = s[3];
        for (int k = 0; k < 3; ++k) d[k] = static_cast<std::uint8_t>((s[k] * a + d[k] * (255 - a) + 127) / 255);
      }
    }
  }
}

std::array<int, 2> Canvas::measure(const std::string& text, int size_px, bool bold) {
  auto p = text_property(size_px, {0, 0, 0}, bold);
  int bbox[4] = {0, 0, 0, 0};
  if (text.empty() || !vtkFreeTypeTools::GetInstance()->GetBoundingBox(p, vtkStdString(text), 72, bbox)) return {0, 0};
  return {bbox[1] - bbox[0] + 1, bbox[3] - bbox[2] + 1};
}

int Canvas::fitting_size(const std::string& text, int size, int width, bool bold) {
  while (size > 8 && measure(text, size, bold)[0] > width) --size;
  return size;
}

std::array<int, 2> Canvas::text(const std::string& text, int x, int y, int size_px, Rgb colour, TextAlign align,
                                bool bold) {
  if (text.empty()) return {0, 0};
  auto p = text_property(size_px, colour, bold);
  vtkNew<vtkImageData> glyphs;
  int dims[2] = {0, 0};
  auto* ft = vtkFreeTypeTools::GetInstance();
  ft->ScaleToPowerTwoOff();
  if (!ft->RenderString(p, vtkStdString(text), 72, glyphs, dims))
    throw ProcessingError("figure canvas: FreeType could not render text \"" + text + "\"");
  int left = x;
  if (align == TextAlign::kCentre) left = x - dims[0] / 2;
  if (align == TextAlign::kRight) left = x - dims[0];
  // The rendered image is at least the text's size; the text sits at its bottom-left.
  const int* gd = glyphs->GetDimensions();
  paste(glyphs, left, y - (gd[1] - dims[1]));
  return {dims[0], dims[1]};
}

Rgb Canvas::pixel(int x, int y) const {
  const auto* p = &rgb_[(static_cast<std::size_t>(y) * width_ + x) * 3];
  return {p[0], p[1], p[2]};
}

vtkSmartPointer<vtkImageData> Canvas::to_image() const {
  auto image = vtkSmartPointer<vtkImageData>::New();
  image->SetDimensions(width_, height_, 1);
  image->AllocateScalars(VTK_UNSIGNED_CHAR, 3);
  auto* out = static_cast<unsigned char*>(image->GetScalarPointer());
  for (int row = 0; row < height_; ++row)
    std::copy_n(&rgb_[static_cast<std::size_t>(row) * width_ * 3], static_cast<std::size_t>(width_) * 3,
                out + static_cast<std::size_t>(height_ - 1 - row) * width_ * 3);
  return image;
}

void Canvas::write_png(const std::filesystem::path& path) const {
  auto image = to_image();
  write_via_temp(path, [&](const std::filesystem::path& tmp) {
    vtkNew<vtkPNGWriter> writer;
    writer->SetInputData(image);
    writer->SetFileName(tmp.c_str());
    writer->Write();
    if (writer->GetErrorCode() != 0) throw OutputError(path.string() + ": PNG writer failed");
  });
}

}  // namespace brainage::viz
