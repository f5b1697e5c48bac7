#pragma once
// 3D view of the expert territories: each expert's voxels as a smoothed surface
// (vtkDiscreteFlyingEdges3D + vtkWindowedSincPolyDataFilter) inside a translucent brain
// surface, rendered off-screen from several viewpoints into one PNG. Debian's VTK renders
// through X11: on a headless machine a private Xvfb is started (common/x_display.h).
#include <filesystem>

#include "viz/slice_figures.h"

namespace brainage::viz {

struct SurfaceFigureOptions {
  /** PNG width in pixels. Default = 1600. */
  int width{1600};
  /** PNG height in pixels. Default = 1300. */
  int height{1300};
  /** Viewpoints: 2 (left, right), 3 (+ superior) or 4 (+ anterior). Default = 4. */
  int views{4};
  /** Opacity of the enclosing brain surface. Default = 0.18. */
  double brain_opacity{0.18};
  /** Windowed-sinc smoothing iterations. Default = 30. */
  int smoothing_iterations{30};
  /** Windowed-sinc pass band (smaller = smoother). Default = 0.02. */
  double pass_band{0.02};
};

/// True when DISPLAY is set and the X server opens; the 3D view needs one.
bool display_available();

/// Renders the 3D figure to `png`. Throws ProcessingError naming `png` when no display is
/// available and none can be started.
void render_surface_figure(const ExpertOverlay& overlay, const SurfaceFigureOptions& options,
                           const std::filesystem::path& png);

}  // namespace brainage::viz
