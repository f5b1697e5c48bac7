#include "viz/slice_figures.h"

#include <vtkImageBlend.h>
#include <vtkImageData.h>
#include <vtkImageMapToColors.h>
#include <vtkImageReslice.h>
#include <vtkLookupTable.h>
#include <vtkNew.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/errors.h"
#include "viz/figure_canvas.h"
#include "viz/ras_volume.h"

namespace brainage::viz {

std::optional<std::array<int, 2>> PanelLayout::pixel_of(const std::array<double, 3>& ras) const {
  const double u = h_sign * ras[static_cast<std::size_t>(h_axis)];
  const double v = v_sign * ras[static_cast<std::size_t>(v_axis)];
  const long col = std::lround((u - h0_mm) / mm_per_pixel);
  const long row_up = std::lround((v - v0_mm) / mm_per_pixel);
  if (col < 0 || col >= w || row_up < 0 || row_up >= h) return std::nullopt;
  return std::array<int, 2>{x + static_cast<int>(col), y + h - 1 - static_cast<int>(row_up)};
}

namespace {

constexpr Rgb kPage{255, 255, 255};
constexpr Rgb kInk{34, 34, 34};
constexpr Rgb kMuted{96, 96, 96};
constexpr Rgb kOnImage{235, 235, 235};

struct Scene {
  vtkSmartPointer<vtkImageData> anatomy, labels;
  MaskExtent extent;
  std::array<double, 6> crop{};  // RAS mm box shown in every panel
  std::array<double, 3> spacing{};
  std::array<double, 3> origin{};
  std::array<int, 3> dims{};
  double grey_lo{0.0}, grey_hi{1.0};
};

Scene make_scene(const ExpertOverlay& o) {
  if (!o.anatomy || !o.brain_mask || !o.labels) throw ProcessingError("expert figure: anatomy, mask and labels are required");
  check_palette_fits(o.num_experts, "expert figure");
  require_same_grid(o.brain_mask, "brain mask", o.anatomy, "anatomy");
  require_same_grid(o.brain_mask, "brain mask", o.labels, "expert map");
  Scene s;
  s.anatomy = to_ras_image(o.anatomy);
  s.labels = to_ras_image(o.labels);
  auto mask = to_ras_image(o.brain_mask);
  s.extent = mask_extent(mask);
  for (int r = 0; r < 3; ++r) {
    s.spacing[r] = s.anatomy->GetSpacing()[r];
    s.origin[r] = s.anatomy->GetOrigin()[r];
    s.dims[r] = s.anatomy->GetDimensions()[r];
    const double margin = 3.0 * s.spacing[r];
    s.crop[2 * r] = std::max(s.origin[r], s.extent.bounds[2 * r] - margin);
    s.crop[2 * r + 1] = std::min(s.origin[r] + (s.dims[r] - 1) * s.spacing[r], s.extent.bounds[2 * r + 1] + margin);
  }
  // Grey window: 1st..99.5th percentile of the anatomy inside the brain.
  std::vector<float> values;
  const auto* a = static_cast<const float*>(s.anatomy->GetScalarPointer());
  const auto* m = static_cast<const unsigned char*>(mask->GetScalarPointer());
  const std::size_t n = static_cast<std::size_t>(s.dims[0]) * s.dims[1] * s.dims[2];
  for (std::size_t i = 0; i < n; ++i)
    if (m[i] && std::isfinite(a[i])) values.push_back(a[i]);
  if (!values.empty()) {
    auto at = [&](double q) {
      auto it = values.begin() + static_cast<long>(q * (values.size() - 1));
      std::nth_element(values.begin(), it, values.end());
      return static_cast<double>(*it);
    };
    s.grey_lo = at(0.01);
    s.grey_hi = at(0.995);
  }
  if (!(s.grey_hi > s.grey_lo)) s.grey_hi = s.grey_lo + 1.0;
  return s;
}

/// Snaps an RAS coordinate along axis r to the nearest voxel centre inside the grid.
double snap(const Scene& s, int r, double mm) {
  const double k = std::clamp(std::round((mm - s.origin[r]) / s.spacing[r]), 0.0, s.dims[r] - 1.0);
  return s.origin[r] + k * s.spacing[r];
}

PanelLayout plane_layout(Plane plane) {
  PanelLayout L;
  L.plane = plane;
  switch (plane) {
    case Plane::kSagittal: L.h_axis = 1, L.h_sign = -1, L.v_axis = 2, L.v_sign = 1; break;  // anterior on the left
    case Plane::kCoronal: L.h_axis = 0, L.h_sign = 1, L.v_axis = 2, L.v_sign = 1; break;    // neurological
    case Plane::kAxial: L.h_axis = 0, L.h_sign = 1, L.v_axis = 1, L.v_sign = 1; break;      // neurological, A up
  }
  return L;
}

int normal_axis(const PanelLayout& L) { return 3 - L.h_axis - L.v_axis; }

/// Panel size in mm (width, height) for the crop box.
std::array<double, 2> panel_mm(const Scene& s, const PanelLayout& L) {
  return {s.crop[2 * L.h_axis + 1] - s.crop[2 * L.h_axis] + s.spacing[L.h_axis],
          s.crop[2 * L.v_axis + 1] - s.crop[2 * L.v_axis] + s.spacing[L.v_axis]};
}

/// Fixes the panel's pixel size and mm origin for `px_per_mm`.
void size_panel(const Scene& s, PanelLayout& L, double px_per_mm) {
  const auto mm = panel_mm(s, L);
  L.mm_per_pixel = 1.0 / px_per_mm;
  L.w = std::max(1, static_cast<int>(std::floor(mm[0] * px_per_mm)));
  L.h = std::max(1, static_cast<int>(std::floor(mm[1] * px_per_mm)));
  const double h_lo = s.crop[2 * L.h_axis] - 0.5 * s.spacing[L.h_axis];
  const double h_hi = s.crop[2 * L.h_axis + 1] + 0.5 * s.spacing[L.h_axis];
  const double v_lo = s.crop[2 * L.v_axis] - 0.5 * s.spacing[L.v_axis];
  // Pixel centres start half a pixel inside the box edge on the side where u is smallest.
  L.h0_mm = (L.h_sign > 0 ? h_lo : -h_hi) + 0.5 * L.mm_per_pixel;
  L.v0_mm = v_lo + 0.5 * L.mm_per_pixel;
}

vtkSmartPointer<vtkImageData> reslice(vtkImageData* volume, const PanelLayout& L, bool nearest) {
  double xdir[3] = {0, 0, 0}, ydir[3] = {0, 0, 0}, zdir[3];
  xdir[L.h_axis] = L.h_sign;
  ydir[L.v_axis] = L.v_sign;
  zdir[0] = xdir[1] * ydir[2] - xdir[2] * ydir[1];
  zdir[1] = xdir[2] * ydir[0] - xdir[0] * ydir[2];
  zdir[2] = xdir[0] * ydir[1] - xdir[1] * ydir[0];
  const int n = normal_axis(L);
  vtkNew<vtkImageReslice> r;
  r->SetInputData(volume);
  r->SetResliceAxesDirectionCosines(xdir, ydir, zdir);
  double through[3] = {0.0, 0.0, 0.0};  // a point of the slice plane; the 2D output lies at w = 0
  through[n] = L.slice_mm;
  r->SetResliceAxesOrigin(through);
  r->SetOutputDimensionality(2);
  r->SetOutputSpacing(L.mm_per_pixel, L.mm_per_pixel, 1.0);
  r->SetOutputOrigin(L.h0_mm, L.v0_mm, 0.0);
  r->SetOutputExtent(0, L.w - 1, 0, L.h - 1, 0, 0);
  r->SetBackgroundLevel(0.0);
  if (nearest)
    r->SetInterpolationModeToNearestNeighbor();
  else
    r->SetInterpolationModeToCubic();
  r->Update();
  vtkSmartPointer<vtkImageData> out = r->GetOutput();
  return out;
}

vtkSmartPointer<vtkLookupTable> expert_lut(int num_experts) {
  auto lut = vtkSmartPointer<vtkLookupTable>::New();
  lut->SetNumberOfTableValues(256);
  lut->SetTableRange(-0.5, 255.5);  // value v -> entry v
  for (int v = 0; v < 256; ++v) lut->SetTableValue(v, 0, 0, 0, 0);
  for (int e = 0; e < num_experts; ++e) {
    const Rgb c = expert_colour(e);
    lut->SetTableValue(e + 1, c.r / 255.0, c.g / 255.0, c.b / 255.0, 1.0);
  }
  return lut;
}

/// One panel: grey anatomy, expert colours blended at `opacity`, territory outlines.
vtkSmartPointer<vtkImageData> render_panel(const Scene& s, const ExpertOverlay& o, const PanelLayout& L, double opacity,
                                           bool outlines) {
  auto anatomy = reslice(s.anatomy, L, false);
  auto labels = reslice(s.labels, L, true);

  vtkNew<vtkLookupTable> grey;
  grey->SetTableRange(s.grey_lo, s.grey_hi);
  grey->SetSaturationRange(0, 0);
  grey->SetHueRange(0, 0);
  grey->SetValueRange(0, 1);
  grey->SetRampToLinear();
  grey->Build();
  vtkNew<vtkImageMapToColors> grey_rgb;
  grey_rgb->SetInputData(anatomy);
  grey_rgb->SetLookupTable(grey);
  grey_rgb->SetOutputFormatToRGB();

  vtkNew<vtkImageMapToColors> label_rgba;
  label_rgba->SetInputData(labels);
  label_rgba->SetLookupTable(expert_lut(o.num_experts));
  label_rgba->SetOutputFormatToRGBA();

  vtkNew<vtkImageBlend> blend;
  blend->AddInputConnection(grey_rgb->GetOutputPort());
  blend->AddInputConnection(label_rgba->GetOutputPort());
  blend->SetOpacity(0, 1.0);
  blend->SetOpacity(1, std::clamp(opacity, 0.0, 1.0));
  blend->Update();
  vtkSmartPointer<vtkImageData> rgb = blend->GetOutput();

  if (outlines) {
    const auto* lab = static_cast<const unsigned char*>(labels->GetScalarPointer());
    auto* px = static_cast<unsigned char*>(rgb->GetScalarPointer());
    const int nc = rgb->GetNumberOfScalarComponents();
    for (int j = 0; j < L.h; ++j)
      for (int i = 0; i < L.w; ++i) {
        const int v = lab[j * L.w + i];
        if (v == 0) continue;
        bool edge = false;
        const int nb[4][2] = {{i - 1, j}, {i + 1, j}, {i, j - 1}, {i, j + 1}};
        for (const auto& q : nb)
          if (q[0] >= 0 && q[0] < L.w && q[1] >= 0 && q[1] < L.h) {
            const int w = lab[q[1] * L.w + q[0]];
            edge = edge || (w != 0 && w != v);
          }
        if (!edge) continue;
        const Rgb c = expert_colour(v - 1);
        unsigned char* p = px + (static_cast<std::size_t>(j) * L.w + i) * nc;
        p[0] = c.r, p[1] = c.g, p[2] = c.b;
      }
  }
  return rgb;
}

std::string mm_text(char axis, double mm) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%c = %+.0f mm", axis, mm);
  return buf;
}

void orientation_letters(Canvas& c, const PanelLayout& L, int size) {
  auto letter = [](int axis, int sign) {
    static const char* pos[3] = {"R", "A", "S"};
    static const char* neg[3] = {"L", "P", "I"};
    return std::string(sign > 0 ? pos[axis] : neg[axis]);
  };
  const int pad = std::max(3, size / 3);
  c.text(letter(L.h_axis, -L.h_sign), L.x + pad, L.y + L.h / 2 - size / 2, size, kOnImage, TextAlign::kLeft, true);
  c.text(letter(L.h_axis, L.h_sign), L.x + L.w - pad, L.y + L.h / 2 - size / 2, size, kOnImage, TextAlign::kRight, true);
  c.text(letter(L.v_axis, L.v_sign), L.x + L.w / 2, L.y + pad, size, kOnImage, TextAlign::kCentre, true);
  c.text(letter(L.v_axis, -L.v_sign), L.x + L.w / 2, L.y + L.h - pad - size, size, kOnImage, TextAlign::kCentre, true);
}

struct Legend {
  int width{0}, height{0};
};

Legend measure_legend(int num_experts, int size) {
  const int sw = size;
  int w = Canvas::measure("Top-1 expert", size, true)[0];
  w = std::max(w, Canvas::measure("(share of brain tokens)", static_cast<int>(size * 0.8))[0]);
  w = std::max(w, sw + size / 2 + Canvas::measure("Expert 16   100.0 %", size)[0]);
  return {w, static_cast<int>(size * 3.2 + num_experts * size * 1.6)};
}

std::vector<std::array<int, 4>> draw_legend(Canvas& c, const ExpertOverlay& o, int x, int y, int size) {
  std::vector<std::array<int, 4>> swatches;
  c.text("Top-1 expert", x, y, size, kInk, TextAlign::kLeft, true);
  c.text("(share of brain tokens)", x, y + static_cast<int>(size * 1.3), static_cast<int>(size * 0.8), kMuted);
  const int name_w = Canvas::measure("Expert 16", size)[0];
  int row = y + static_cast<int>(size * 3.2);
  for (int e = 0; e < o.num_experts; ++e) {
    const Rgb col = expert_colour(e);
    c.fill_rect(x, row, size, size, col);
    c.frame_rect(x, row, size, size, {80, 80, 80}, 1);
    swatches.push_back({x, row, size, size});
    const int tx = x + size + size / 2;
    c.text(expert_name(e), tx, row, size, kInk);
    char share[32];
    const double v = e < static_cast<int>(o.token_share.size()) ? o.token_share[static_cast<std::size_t>(e)] : 0.0;
    std::snprintf(share, sizeof share, "%5.1f %%", 100.0 * v);
    c.text(share, tx + name_w + size / 2 + Canvas::measure("100.0 %", size)[0], row, size, kMuted, TextAlign::kRight);
    row += static_cast<int>(size * 1.6);
  }
  return swatches;
}

void draw_header(Canvas& c, const ExpertOverlay& o, int margin, int title, int sub) {
  const int width = c.width() - 2 * margin;
  c.text(o.title, margin, margin, Canvas::fitting_size(o.title, title, width, true), kInk, TextAlign::kLeft, true);
  c.text(o.subtitle, margin, margin + static_cast<int>(title * 1.35), Canvas::fitting_size(o.subtitle, sub, width), kMuted);
}

const char* kConvention =
    "Neurological convention: the subject's left is on the image left. Coordinates in MNI space (mm).";

}  // namespace

FigureLayout render_ortho_figure(const ExpertOverlay& o, const OrthoFigureOptions& opt, const std::filesystem::path& png) {
  const Scene s = make_scene(o);
  Canvas c(opt.width, opt.height, kPage);
  const int H = opt.height, W = opt.width;
  const int margin = std::max(8, H / 32);
  const int title = std::max(12, H / 24), sub = std::max(10, H / 36), label = sub, small = std::max(9, H / 42);
  draw_header(c, o, margin, title, sub);
  const int top = margin + static_cast<int>(title * 1.35) + static_cast<int>(sub * 2.2);
  const int bottom = H - margin - small - sub / 2;  // caption line
  const Legend legend = measure_legend(o.num_experts, sub);
  const int gap = std::max(6, W / 90);
  const int avail_w = W - 2 * margin - legend.width - 3 * gap;
  const int avail_h = bottom - top - static_cast<int>(label * 1.8);

  std::array<double, 3> cut = opt.cut_mm ? *opt.cut_mm : s.extent.centroid;
  for (int r = 0; r < 3; ++r) cut[static_cast<std::size_t>(r)] = snap(s, r, cut[static_cast<std::size_t>(r)]);
  std::vector<PanelLayout> panels = {plane_layout(Plane::kSagittal), plane_layout(Plane::kCoronal),
                                     plane_layout(Plane::kAxial)};
  double sum_w = 0.0, max_h = 0.0;
  for (auto& L : panels) {
    L.slice_mm = cut[static_cast<std::size_t>(normal_axis(L))];
    const auto mm = panel_mm(s, L);
    sum_w += mm[0];
    max_h = std::max(max_h, mm[1]);
  }
  const double scale = std::min((avail_w - 2.0 * gap) / sum_w, avail_h / max_h);
  if (scale <= 0.2) throw UsageError("figure size " + std::to_string(W) + "x" + std::to_string(H) + " is too small");
  int used_w = 2 * gap;
  for (auto& L : panels) {
    size_panel(s, L, scale);
    used_w += L.w;
  }
  int x = margin + std::max(0, (avail_w - used_w) / 2);
  FigureLayout layout;
  const char* names[3] = {"Sagittal", "Coronal", "Axial"};
  const char axes[3] = {'x', 'y', 'z'};
  int max_panel_h = 0;
  for (const auto& L : panels) max_panel_h = std::max(max_panel_h, L.h);
  for (std::size_t i = 0; i < panels.size(); ++i) {
    auto& L = panels[i];
    L.x = x;
    L.y = top + (max_panel_h - L.h) / 2;
    c.paste(render_panel(s, o, L, opt.label_opacity, opt.outlines), L.x, L.y);
    orientation_letters(c, L, small);
    c.text(std::string(names[i]) + "   " + mm_text(axes[normal_axis(L)], L.slice_mm), L.x + L.w / 2,
           top + max_panel_h + label / 2, label, kInk, TextAlign::kCentre);
    x += L.w + gap;
    layout.panels.push_back(L);
  }
  layout.legend_swatches = draw_legend(c, o, W - margin - legend.width, top, sub);
  c.text(kConvention, margin, H - margin - small, Canvas::fitting_size(kConvention, small, W - 2 * margin), kMuted);
  c.write_png(png);
  return layout;
}

FigureLayout render_mosaic_figure(const ExpertOverlay& o, const MosaicFigureOptions& opt,
                                  const std::filesystem::path& png) {
  if (opt.slices < 1 || opt.columns < 1) throw UsageError("mosaic needs at least one slice and one column");
  const Scene s = make_scene(o);
  Canvas c(opt.width, opt.height, kPage);
  const int H = opt.height, W = opt.width;
  const int margin = std::max(8, H / 40);
  const int title = std::max(12, H / 30), sub = std::max(10, H / 44), small = std::max(9, H / 52);
  draw_header(c, o, margin, title, sub);
  const int top = margin + static_cast<int>(title * 1.35) + static_cast<int>(sub * 2.2);
  const int bottom = H - margin - small - sub / 2;
  const Legend legend = measure_legend(o.num_experts, sub);
  const int gap = std::max(4, W / 160);
  const int rows = (opt.slices + opt.columns - 1) / opt.columns;
  const int avail_w = W - 2 * margin - legend.width - 2 * gap;
  const int cell_w = (avail_w - (opt.columns - 1) * gap) / opt.columns;
  const int label_h = static_cast<int>(small * 1.5);
  const int cell_h = (bottom - top - (rows - 1) * gap) / rows - label_h;
  PanelLayout proto = plane_layout(Plane::kAxial);
  const auto mm = panel_mm(s, proto);
  const double scale = std::min(cell_w / mm[0], cell_h / mm[1]);
  if (scale <= 0.2) throw UsageError("figure size " + std::to_string(W) + "x" + std::to_string(H) + " is too small");
  size_panel(s, proto, scale);
  const double z_lo = s.extent.bounds[4], z_hi = s.extent.bounds[5];
  const int used_w = opt.columns * proto.w + (opt.columns - 1) * gap;
  const int x0 = margin + std::max(0, (avail_w - used_w) / 2);
  FigureLayout layout;
  for (int k = 0; k < opt.slices; ++k) {
    PanelLayout L = proto;
    const double f = opt.slices == 1 ? 0.5 : 0.10 + 0.80 * k / (opt.slices - 1.0);  // bottom to top
    L.slice_mm = snap(s, 2, z_lo + f * (z_hi - z_lo));
    L.x = x0 + (k % opt.columns) * (proto.w + gap);
    L.y = top + (k / opt.columns) * (cell_h + label_h + gap);
    c.paste(render_panel(s, o, L, opt.label_opacity, opt.outlines), L.x, L.y);
    if (k == 0) orientation_letters(c, L, small);
    c.text(mm_text('z', L.slice_mm), L.x + L.w / 2, L.y + L.h + small / 4, small, kInk, TextAlign::kCentre);
    layout.panels.push_back(L);
  }
  layout.legend_swatches = draw_legend(c, o, W - margin - legend.width, top, sub);
  c.text("Axial slices from inferior to superior, anterior up. Neurological convention (left is left); MNI mm.", margin,
         H - margin - small, small, kMuted);
  c.write_png(png);
  return layout;
}

}  // namespace brainage::viz
