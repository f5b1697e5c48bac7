#include "app/cohort/cohort_charts.h"

#include <vtkAxis.h>
#include <vtkChartLegend.h>
#include <vtkChartXY.h>
#include <vtkContextScene.h>
#include <vtkContextView.h>
#include <vtkDoubleArray.h>
#include <vtkNew.h>
#include <vtkPNGWriter.h>
#include <vtkPen.h>
#include <vtkPlot.h>
#include <vtkRenderWindow.h>
#include <vtkRenderer.h>
#include <vtkTable.h>
#include <vtkTextProperty.h>
#include <vtkWindowToImageFilter.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <mutex>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "common/x_display.h"


namespace brainage::cohort {
namespace fs = std::filesystem;

bool charts_available() { return x_display_available(); }

namespace {

std::mutex& render_mutex() {  // one OpenGL context at a time
  static std::mutex m;
  return m;
}

vtkSmartPointer<vtkTable> make_table(const std::vector<double>& x, const std::vector<double>& y) {
  auto table = vtkSmartPointer<vtkTable>::New();
  vtkNew<vtkDoubleArray> xs, ys;
  xs->SetName("x");
  ys->SetName("y");
  table->AddColumn(xs);
  table->AddColumn(ys);
  table->SetNumberOfRows(static_cast<vtkIdType>(x.size()));
  for (std::size_t i = 0; i < x.size(); ++i) {
    table->SetValue(static_cast<vtkIdType>(i), 0, x[i]);
    table->SetValue(static_cast<vtkIdType>(i), 1, y[i]);
  }
  return table;
}

struct Line {
  std::string name;
  std::vector<double> x, y;
};

void render(const std::vector<ScatterSeries>& series, const Line& line, const std::string& title,
            const std::string& x_title, const std::string& y_title, const fs::path& png, const ChartOptions& options) {
  if (!charts_available())
    throw OutputError(png.string() + ": cannot render VTK charts: no X display could be opened or started (Debian package xvfb)");
  std::lock_guard<std::mutex> lock(render_mutex());
  vtkNew<vtkContextView> view;
  // No interactor: an off-screen figure needs none, and vtkContextView's default one
  // initialises on the first Render() with its own X calls (a failed connection there was
  // a SIGSEGV in XSync instead of VTK's error).
  view->SetInteractor(nullptr);
  view->GetRenderWindow()->SetOffScreenRendering(1);
  view->GetRenderWindow()->SetSize(options.width, options.height);
  view->GetRenderer()->SetBackground(1.0, 1.0, 1.0);
  vtkNew<vtkChartXY> chart;
  view->GetScene()->AddItem(chart);
  chart->SetTitle(title);
  chart->GetTitleProperties()->SetFontSize(18);
  chart->GetAxis(vtkAxis::BOTTOM)->SetTitle(x_title);
  chart->GetAxis(vtkAxis::LEFT)->SetTitle(y_title);
  chart->SetShowLegend(true);
  chart->GetLegend()->SetHorizontalAlignment(vtkChartLegend::LEFT);
  chart->GetLegend()->SetVerticalAlignment(vtkChartLegend::TOP);

  std::vector<vtkSmartPointer<vtkTable>> keep;
  if (!line.x.empty()) {
    keep.push_back(make_table(line.x, line.y));
    vtkPlot* plot = chart->AddPlot(vtkChart::LINE);
    plot->SetInputData(keep.back(), 0, 1);
    plot->SetColor(90, 90, 90, 255);
    plot->SetWidth(1.5);
    plot->GetPen()->SetLineType(vtkPen::DASH_LINE);
    plot->SetLabel(line.name);
  }
  for (const auto& s : series) {
    if (s.x.empty()) continue;
    keep.push_back(make_table(s.x, s.y));
    vtkPlot* plot = chart->AddPlot(vtkChart::POINTS);
    plot->SetInputData(keep.back(), 0, 1);
    plot->SetColor(s.rgb[0], s.rgb[1], s.rgb[2], 200);
    plot->SetWidth(5.0);
    plot->SetLabel(s.name);
  }
  view->GetRenderWindow()->Render();
  vtkNew<vtkWindowToImageFilter> grab;
  grab->SetInput(view->GetRenderWindow());
  grab->ReadFrontBufferOff();
  grab->Update();
  write_via_temp(png, [&](const fs::path& tmp) {
    vtkNew<vtkPNGWriter> writer;
    writer->SetFileName(tmp.c_str());
    writer->SetInputConnection(grab->GetOutputPort());
    writer->Write();
    if (writer->GetErrorCode() != 0) throw OutputError(png.string() + ": VTK PNG writer failed");
  });
}

std::pair<double, double> range_of(const std::vector<ScatterSeries>& series, bool include_y) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& s : series) {
    for (double v : s.x) lo = std::min(lo, v), hi = std::max(hi, v);
    if (include_y)
      for (double v : s.y) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!(lo <= hi)) return {0, 100};
  return {std::floor(lo), std::ceil(hi)};
}

}  // namespace

void render_predicted_vs_age(const std::vector<ScatterSeries>& series, const fs::path& png,
                             const ChartOptions& options) {
  const auto [lo, hi] = range_of(series, true);
  render(series, {"identity (predicted = age)", {lo, hi}, {lo, hi}}, "Predicted vs chronological age",
         "chronological age (years)", "predicted brain age (years)", png, options);
}

void render_gap_vs_age(const std::vector<ScatterSeries>& series, const fs::path& png, const ChartOptions& options) {
  const auto [lo, hi] = range_of(series, false);
  render(series, {"zero gap", {lo, hi}, {0, 0}}, "Brain-age gap vs chronological age", "chronological age (years)",
         "brain-age gap (predicted - age, years)", png, options);
}

}  // namespace brainage::cohort
