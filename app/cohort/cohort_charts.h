#pragma once
// Cohort plots rendered with VTK charts (vtkContextView + vtkChartXY) off-screen to PNG.
// Debian's VTK renders through X11: without a display (no $DISPLAY) the charts cannot be
// drawn; callers check charts_available(), which starts a private Xvfb on a headless machine
// (common/x_display.h).
#include <filesystem>
#include <string>
#include <vector>

namespace brainage::cohort {

struct ChartOptions {
  /** Image width in pixels. Default = 800. */
  int width{800};
  /** Image height in pixels. Default = 640. */
  int height{640};
};

struct ScatterSeries {
  std::string name;       // legend text
  std::vector<double> x;
  std::vector<double> y;
  unsigned char rgb[3] = {31, 119, 180};
};

/// Whether VTK can open a render window here: $DISPLAY is set and the X server answers
/// (VTK aborts the process on a dead server). Checked once per process.
bool charts_available();

/// Predicted (and corrected, when given) against chronological age, with the identity
/// line y = x over the data range. Writes a PNG atomically; throws OutputError naming the
/// file when it cannot be written or no display is available.
void render_predicted_vs_age(const std::vector<ScatterSeries>& series, const std::filesystem::path& png,
                             const ChartOptions& options = {});

/// Brain-age gap against chronological age, with the zero line.
void render_gap_vs_age(const std::vector<ScatterSeries>& series, const std::filesystem::path& png,
                       const ChartOptions& options = {});

}  // namespace brainage::cohort
