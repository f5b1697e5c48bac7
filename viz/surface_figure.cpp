#include "viz/surface_figure.h"

#include <vtkActor.h>
#include <vtkCamera.h>
#include <vtkDiscreteFlyingEdges3D.h>
#include <vtkFlyingEdges3D.h>
#include <vtkImageData.h>
#include <vtkImageGaussianSmooth.h>
#include <vtkImageShiftScale.h>
#include <vtkNew.h>
#include <vtkPolyDataMapper.h>
#include <vtkPolyDataNormals.h>
#include <vtkProperty.h>
#include <vtkRenderWindow.h>
#include <vtkRenderer.h>
#include <vtkWindowToImageFilter.h>
#include <vtkWindowedSincPolyDataFilter.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "common/errors.h"
#include "common/x_display.h"
#include "viz/figure_canvas.h"
#include "viz/ras_volume.h"


namespace brainage::viz {

bool display_available() { return x_display_available(); }

namespace {
constexpr Rgb kPage{255, 255, 255};
constexpr Rgb kInk{34, 34, 34};
constexpr Rgb kMuted{96, 96, 96};

vtkSmartPointer<vtkActor> smoothed_surface(vtkAlgorithmOutput* surface, const SurfaceFigureOptions& opt) {
  vtkNew<vtkWindowedSincPolyDataFilter> smooth;
  smooth->SetInputConnection(surface);
  smooth->SetNumberOfIterations(opt.smoothing_iterations);
  smooth->SetPassBand(opt.pass_band);
  smooth->BoundarySmoothingOff();
  smooth->FeatureEdgeSmoothingOff();
  smooth->NonManifoldSmoothingOn();
  smooth->NormalizeCoordinatesOn();
  vtkNew<vtkPolyDataNormals> normals;
  normals->SetInputConnection(smooth->GetOutputPort());
  normals->SetFeatureAngle(60.0);
  vtkNew<vtkPolyDataMapper> mapper;
  mapper->SetInputConnection(normals->GetOutputPort());
  mapper->ScalarVisibilityOff();
  auto actor = vtkSmartPointer<vtkActor>::New();
  actor->SetMapper(mapper);
  return actor;
}

struct View {
  const char* name;
  double direction[3];  // from the focal point to the camera, RAS
  double up[3];
};
}  // namespace

void render_surface_figure(const ExpertOverlay& o, const SurfaceFigureOptions& opt, const std::filesystem::path& png) {
  if (!display_available())
    throw ProcessingError(png.string() + ": the 3D view needs an X display and none could be opened or started (Debian package xvfb; or skip 3D)");
  if (!o.brain_mask || !o.labels) throw ProcessingError("3D figure: mask and labels are required");
  check_palette_fits(o.num_experts, "3D figure");
  require_same_grid(o.brain_mask, "brain mask", o.labels, "expert map");
  const int nviews = std::clamp(opt.views, 2, 4);
  auto labels = to_ras_image(o.labels);
  auto mask = to_ras_image(o.brain_mask);
  const MaskExtent extent = mask_extent(mask);

  // Brain surface: smoothed mask at 0.5.
  vtkNew<vtkImageShiftScale> mask_float;
  mask_float->SetInputData(mask);
  mask_float->SetOutputScalarTypeToFloat();
  mask_float->SetScale(1.0);
  vtkNew<vtkImageGaussianSmooth> blur;
  blur->SetInputConnection(mask_float->GetOutputPort());
  blur->SetStandardDeviations(1.0, 1.0, 1.0);
  blur->SetRadiusFactors(2.0, 2.0, 2.0);
  vtkNew<vtkFlyingEdges3D> brain_iso;
  brain_iso->SetInputConnection(blur->GetOutputPort());
  brain_iso->SetValue(0, 0.5);
  brain_iso->ComputeNormalsOff();
  auto brain = smoothed_surface(brain_iso->GetOutputPort(), opt);
  brain->GetProperty()->SetColor(0.75, 0.75, 0.78);
  brain->GetProperty()->SetOpacity(opt.brain_opacity);
  brain->GetProperty()->SetSpecular(0.1);

  std::vector<vtkSmartPointer<vtkActor>> territories;
  std::vector<vtkSmartPointer<vtkDiscreteFlyingEdges3D>> keep;
  for (int e = 0; e < o.num_experts; ++e) {
    auto iso = vtkSmartPointer<vtkDiscreteFlyingEdges3D>::New();
    iso->SetInputData(labels);
    iso->SetValue(0, e + 1);
    iso->ComputeNormalsOff();
    iso->ComputeScalarsOff();
    iso->Update();
    if (iso->GetOutput()->GetNumberOfPoints() == 0) continue;  // expert has no brain voxels
    keep.push_back(iso);
    auto actor = smoothed_surface(iso->GetOutputPort(), opt);
    const Rgb c = expert_colour(e);
    actor->GetProperty()->SetColor(c.r / 255.0, c.g / 255.0, c.b / 255.0);
    actor->GetProperty()->SetSpecular(0.15);
    actor->GetProperty()->SetSpecularPower(20);
    actor->GetProperty()->SetAmbient(0.15);
    territories.push_back(actor);
  }

  // Page layout: title, views in a 2-column grid, legend on the right.
  const int W = opt.width, H = opt.height;
  const int margin = std::max(8, H / 40);
  const int title = std::max(12, H / 30), sub = std::max(10, H / 44), small = std::max(9, H / 52);
  Canvas c(W, H, kPage);
  c.text(o.title, margin, margin, Canvas::fitting_size(o.title, title, W - 2 * margin, true), kInk, TextAlign::kLeft,
         true);
  c.text(o.subtitle, margin, margin + static_cast<int>(title * 1.35),
         Canvas::fitting_size(o.subtitle, sub, W - 2 * margin), kMuted);
  const int top = margin + static_cast<int>(title * 1.35) + static_cast<int>(sub * 2.2);
  const int bottom = H - margin - small - sub / 2;
  const bool with_share = static_cast<int>(o.token_share.size()) >= o.num_experts;
  const int name_w = Canvas::measure("Expert 16", sub)[0];
  const int share_w = with_share ? sub / 2 + Canvas::measure("100.0 %", sub)[0] : 0;
  int legend_w = std::max(Canvas::measure("Top-1 expert", sub, true)[0], sub + sub / 2 + name_w + share_w);
  const int gap = std::max(4, W / 160);
  const int cols = 2, rows = (nviews + 1) / 2;
  const int view_w = (W - 2 * margin - legend_w - 2 * gap - (cols - 1) * gap) / cols;
  const int view_h = (bottom - top - (rows - 1) * gap) / rows - static_cast<int>(sub * 1.5);
  if (view_w < 16 || view_h < 16)
    throw UsageError("figure size " + std::to_string(W) + "x" + std::to_string(H) + " is too small for the 3D view");

  const View views[4] = {{"Left lateral (anterior on the left)", {-1, 0, 0}, {0, 0, 1}},
                         {"Right lateral (anterior on the right)", {1, 0, 0}, {0, 0, 1}},
                         {"Superior (anterior up, left on the left)", {0, 0, 1}, {0, 1, 0}},
                         {"Anterior (the subject's right on the left)", {0, 1, 0}, {0, 0, 1}}};
  vtkNew<vtkRenderWindow> window;
  window->SetOffScreenRendering(1);
  window->SetMultiSamples(8);
  window->SetAlphaBitPlanes(1);
  window->SetSize(view_w, view_h);
  vtkNew<vtkRenderer> renderer;
  renderer->SetBackground(1.0, 1.0, 1.0);
  renderer->SetUseDepthPeeling(1);
  renderer->SetMaximumNumberOfPeels(8);
  renderer->SetOcclusionRatio(0.05);
  window->AddRenderer(renderer);
  for (auto& a : territories) renderer->AddActor(a);
  renderer->AddActor(brain);
  const double* b = extent.bounds.data();
  const double centre[3] = {(b[0] + b[1]) / 2, (b[2] + b[3]) / 2, (b[4] + b[5]) / 2};
  const double radius = 0.5 * std::sqrt((b[1] - b[0]) * (b[1] - b[0]) + (b[3] - b[2]) * (b[3] - b[2]) +
                                        (b[5] - b[4]) * (b[5] - b[4]));
  for (int v = 0; v < nviews; ++v) {
    vtkCamera* cam = renderer->GetActiveCamera();
    cam->SetFocalPoint(centre);
    cam->SetPosition(centre[0] + 4 * radius * views[v].direction[0], centre[1] + 4 * radius * views[v].direction[1],
                     centre[2] + 4 * radius * views[v].direction[2]);
    cam->SetViewUp(views[v].up);
    cam->SetViewAngle(30.0);
    renderer->ResetCameraClippingRange();
    cam->SetParallelProjection(1);
    int h_axis = 0, v_axis = 2;  // RAS axes across and up the view
    if (views[v].direction[0] != 0) h_axis = 1;
    if (views[v].direction[2] != 0) v_axis = 1;
    const double across = b[2 * h_axis + 1] - b[2 * h_axis], up = b[2 * v_axis + 1] - b[2 * v_axis];
    cam->SetParallelScale(0.54 * std::max(up, across * view_h / static_cast<double>(view_w)));
    renderer->ResetCameraClippingRange();
    window->Render();
    vtkNew<vtkWindowToImageFilter> grab;
    grab->SetInput(window);
    grab->SetInputBufferTypeToRGB();
    grab->ReadFrontBufferOff();
    grab->Update();
    const int x = margin + (v % cols) * (view_w + gap);
    const int y = top + (v / cols) * (view_h + static_cast<int>(sub * 1.5) + gap);
    c.paste(grab->GetOutput(), x, y);
    c.text(views[v].name, x + view_w / 2, y + view_h + sub / 4, sub, kInk, TextAlign::kCentre);
  }
  // Legend
  int lx = W - margin - legend_w, ly = top;
  c.text("Top-1 expert", lx, ly, sub, kInk, TextAlign::kLeft, true);
  if (with_share) {
    c.text("(share of brain tokens)", lx, ly + static_cast<int>(sub * 1.3), static_cast<int>(sub * 0.8), kMuted);
    ly += static_cast<int>(sub * 1.2);
  }
  ly += static_cast<int>(sub * 2.0);
  for (int e = 0; e < o.num_experts; ++e) {
    const Rgb col = expert_colour(e);
    c.fill_rect(lx, ly, sub, sub, col);
    c.frame_rect(lx, ly, sub, sub, {80, 80, 80}, 1);
    c.text(expert_name(e), lx + sub + sub / 2, ly, sub, kInk);
    if (with_share) {
      char share[32];
      std::snprintf(share, sizeof share, "%.1f %%", 100.0 * o.token_share[static_cast<std::size_t>(e)]);
      c.text(share, lx + legend_w, ly, sub, kMuted, TextAlign::kRight);
    }
    ly += static_cast<int>(sub * 1.6);
  }
  const std::string caption =
      "Expert territories (smoothed surfaces) inside the translucent brain surface; orthographic views, MNI space.";
  c.text(caption, margin, H - margin - small, Canvas::fitting_size(caption, small, W - 2 * margin), kMuted);
  c.write_png(png);
}

}  // namespace brainage::viz
