// End to end on a synthetic prediction folder built from Colin27: every output exists,
// tables are consistent, figures have the requested size, are not blank, and show each
// expert's colour where that expert has voxels; the 3D view renders under a display.
#include "viz/expert_maps.h"

#include <gtest/gtest.h>

#include <vtkImageData.h>
#include <vtkNew.h>
#include <vtkPNGReader.h>
#include <zlib.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/errors.h"
#include "tests/viz/viz_fixture.h"
#include "viz/label_painter.h"
#include "viz/ras_volume.h"

using namespace brainage::viz;
using namespace brainage::testing;
namespace fs = std::filesystem;

namespace {
vtkSmartPointer<vtkImageData> read_png(const fs::path& p) {
  vtkNew<vtkPNGReader> reader;
  reader->SetFileName(p.c_str());
  reader->Update();
  vtkSmartPointer<vtkImageData> im = reader->GetOutput();
  return im;
}

Rgb page_pixel(vtkImageData* im, int x, int y_top) {
  const int h = im->GetDimensions()[1];
  const auto* p = static_cast<const unsigned char*>(im->GetScalarPointer(x, h - 1 - y_top, 0));
  return {p[0], p[1], p[2]};
}

double variance(vtkImageData* im) {
  const auto* p = static_cast<const unsigned char*>(im->GetScalarPointer());
  const std::size_t n = static_cast<std::size_t>(im->GetNumberOfPoints()) * im->GetNumberOfScalarComponents();
  double s = 0, s2 = 0;
  for (std::size_t i = 0; i < n; ++i) s += p[i], s2 += double(p[i]) * p[i];
  return s2 / n - (s / n) * (s / n);
}

std::vector<std::vector<std::string>> read_csv(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ls(line);
    std::string c;
    while (std::getline(ls, c, ',')) cells.push_back(c);
    if (!line.empty() && line.back() == ',') cells.push_back("");
    rows.push_back(cells);
  }
  return rows;
}
}  // namespace

class ExpertMaps : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(mricron_templates_dir() / "aal.nii.gz")) return;
    prediction_ = new SyntheticPrediction(write_synthetic_prediction(process_scratch_dir("expert-maps-in"), 8, 16));
  }
  static void TearDownTestSuite() {
    if (prediction_) std::filesystem::remove_all(prediction_->dir);
    delete prediction_;
    prediction_ = nullptr;
  }
  void SetUp() override { BRAINAGE_REQUIRE_PATH(mricron_templates_dir() / "aal.nii.gz"); }
  static SyntheticPrediction* prediction_;
};
SyntheticPrediction* ExpertMaps::prediction_ = nullptr;

TEST_F(ExpertMaps, WritesMapsTablesAndFiguresThatAgree) {
  MapsOptions opt;
  opt.prediction_dir = prediction_->dir;
  opt.output_dir = process_scratch_dir("expert-maps-out");
  opt.render_3d = false;  // covered below, needs a display
  opt.ortho.width = 1500;
  opt.ortho.height = 640;
  opt.mosaic.width = 1200;
  opt.mosaic.height = 1000;
  const auto t0 = std::chrono::steady_clock::now();
  const auto report = render_expert_maps(opt);
  std::cout << "render_expert_maps (2D): "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
  for (const char* f : {"experts_mni2mm.nii.gz", "experts_mni2mm_layer1.nii.gz", "experts_mni2mm_layer3.nii.gz",
                        "experts_score_mni2mm.nii.gz", "experts_native.nii.gz", "experts_score_native.nii.gz",
                        "experts.lut", "experts_itksnap.txt", "experts_slicer.ctbl", "expert_regions.csv",
                        "expert_tissues.csv", "specialisation.csv", "experts_ortho.png", "experts_mosaic.png",
                        "maps.json"})
    EXPECT_TRUE(fs::exists(opt.output_dir / f)) << f;

  // The summary is the majority (octant pattern of layers 1 and 2).
  const auto mask = read_label_volume(prediction_->dir / "brain_mask_mni2mm.nii.gz");
  const auto expected = paint_layer(prediction_->routing, prediction_->routing.layers[0], mask);
  const auto summary = read_label_volume(opt.output_dir / "experts_mni2mm.nii.gz");
  require_same_grid(mask, "mask", summary, "summary", 1e-4);
  std::size_t diff = 0;
  for (std::size_t i = 0; i < mask->GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
    diff += expected.labels->GetBufferPointer()[i] != summary->GetBufferPointer()[i];
  EXPECT_EQ(diff, 0u);

  // Native map: the scan's geometry.
  const auto native = read_label_volume(opt.output_dir / "experts_native.nii.gz");
  const auto scan = read_float_volume(prediction_->scan);
  require_same_grid(scan, "scan", native, "experts_native", 1e-4);

  // Region and tissue tables: 9 rows per layer block (header + 8 experts x 4 blocks), shares sum to 1.
  for (const char* table : {"expert_regions.csv", "expert_tissues.csv"}) {
    const auto rows = read_csv(opt.output_dir / table);
    ASSERT_EQ(rows.size(), 1u + 8u * 4u) << table;
    if (std::string(table) == "expert_regions.csv") EXPECT_EQ(rows[0].size(), 5u + 116u + 1u);
    for (std::size_t i = 1; i < rows.size(); ++i) {
      double sum = 0;
      for (std::size_t k = 5; k < rows[i].size(); ++k) sum += std::stod(rows[i][k]);
      EXPECT_NEAR(sum, 1.0, 1e-4) << table << " row " << i;
    }
  }
  ASSERT_EQ(report.specialisation.size(), 4u);
  for (const auto& s : report.specialisation) {
    EXPECT_GT(s.nmi_region, 0.05) << "octant experts must carry information about AAL regions";
    EXPECT_LT(s.nmi_region, 1.0);
  }
  double share = 0;
  for (double v : report.token_share) share += v;
  EXPECT_NEAR(share, 1.0, 1e-9);
  if (!HasFailure()) fs::remove_all(opt.output_dir);  // kept for inspection when something failed
}

TEST_F(ExpertMaps, FiguresCanShowOneLayerAndRejectAnUnknownLayer) {
  MapsOptions opt;
  opt.prediction_dir = prediction_->dir;
  opt.output_dir = process_scratch_dir("expert-maps-layer");
  opt.render_3d = false;
  opt.per_layer_maps = false;
  opt.figure_layer = 3;
  render_expert_maps(opt);
  std::ifstream in(opt.output_dir / "maps.json");
  const auto manifest = nlohmann::json::parse(in);
  EXPECT_EQ(manifest.at("figures_show"), "layer 3");
  EXPECT_FALSE(fs::exists(opt.output_dir / "experts_mni2mm_layer1.nii.gz"));
  opt.figure_layer = 7;
  EXPECT_THROW(render_expert_maps(opt), brainage::UsageError);
  if (!HasFailure()) fs::remove_all(opt.output_dir);
}

TEST_F(ExpertMaps, FiguresShowEachExpertsColourWhereItHasVoxels) {
  const auto mask = read_label_volume(prediction_->dir / "brain_mask_mni2mm.nii.gz");
  const auto anatomy = read_float_volume(prediction_->dir / "t1_mni2mm.nii.gz");
  const auto& r = prediction_->routing;
  const auto painted = paint_layer(r, r.layers[0], mask);
  ExpertOverlay o;
  o.anatomy = anatomy;
  o.brain_mask = mask;
  o.labels = painted.labels;
  o.num_experts = 8;
  o.token_share.assign(8, 0.125);
  o.title = "Test figure";
  o.subtitle = "synthetic octant experts";
  const auto out = process_scratch_dir("expert-figures");
  OrthoFigureOptions ortho;
  ortho.width = 1400;
  ortho.height = 600;
  ortho.label_opacity = 1.0;  // colours exactly the palette's
  ortho.cut_mm = std::array<double, 3>{1.0, -18.0, 18.0};
  MosaicFigureOptions mosaic;
  mosaic.width = 1000;
  mosaic.height = 900;
  mosaic.label_opacity = 1.0;
  struct Case {
    fs::path png;
    FigureLayout layout;
    int w, h;
  };
  std::vector<Case> cases = {{out / "ortho.png", render_ortho_figure(o, ortho, out / "ortho.png"), 1400, 600},
                             {out / "mosaic.png", render_mosaic_figure(o, mosaic, out / "mosaic.png"), 1000, 900}};
  auto ras_labels = to_ras_image(painted.labels.GetPointer());
  const double* org = ras_labels->GetOrigin();
  const double* sp = ras_labels->GetSpacing();
  const int* dims = ras_labels->GetDimensions();
  for (const auto& c : cases) {
    auto im = read_png(c.png);
    ASSERT_EQ(im->GetDimensions()[0], c.w) << c.png;
    ASSERT_EQ(im->GetDimensions()[1], c.h) << c.png;
    EXPECT_GT(variance(im), 500.0) << c.png << " looks blank";
    ASSERT_EQ(c.layout.legend_swatches.size(), 8u);
    for (int e = 0; e < 8; ++e) {  // legend swatch interior = palette colour
      const auto& s = c.layout.legend_swatches[static_cast<std::size_t>(e)];
      const Rgb got = page_pixel(im, s[0] + s[2] / 2, s[1] + s[3] / 2);
      const Rgb want = expert_colour(e);
      EXPECT_EQ(std::tie(got.r, got.g, got.b), std::tie(want.r, want.g, want.b)) << "swatch " << e;
    }
    // In each panel, voxels inside a territory (their 8 in-plane neighbours share the label)
    // show exactly that expert's colour; count checks per expert over all panels.
    std::vector<int> hits(8, 0), checked(8, 0);
    for (const auto& L : c.layout.panels) {
      const int n = 3 - L.h_axis - L.v_axis;
      const int k = static_cast<int>(std::lround((L.slice_mm - org[n]) / sp[n]));
      for (int b = 1; b + 1 < dims[L.v_axis]; ++b)
        for (int a = 1; a + 1 < dims[L.h_axis]; ++a) {
          int v[3];
          v[n] = k, v[L.h_axis] = a, v[L.v_axis] = b;
          const int label = static_cast<int>(ras_labels->GetScalarComponentAsDouble(v[0], v[1], v[2], 0));
          if (label == 0) continue;
          bool interior = true;
          for (int db = -1; db <= 1 && interior; ++db)  // in-plane neighbours: the panel shows one slice
            for (int da = -1; da <= 1 && interior; ++da) {
                int w[3] = {v[0], v[1], v[2]};
                w[L.h_axis] += da;
                w[L.v_axis] += db;
                if (w[0] < 0 || w[1] < 0 || w[2] < 0 || w[0] >= dims[0] || w[1] >= dims[1] || w[2] >= dims[2]) {
                  interior = false;
                  break;
                }
                interior = ras_labels->GetScalarComponentAsDouble(w[0], w[1], w[2], 0) == label;
              }
          if (!interior) continue;
          const std::array<double, 3> p = {org[0] + v[0] * sp[0], org[1] + v[1] * sp[1], org[2] + v[2] * sp[2]};
          const auto px = L.pixel_of(p);
          if (!px) continue;
          const Rgb got = page_pixel(im, (*px)[0], (*px)[1]);
          const Rgb want = expert_colour(label - 1);
          ++checked[static_cast<std::size_t>(label - 1)];
          hits[static_cast<std::size_t>(label - 1)] += std::abs(got.r - want.r) <= 2 && std::abs(got.g - want.g) <= 2 &&
                                                        std::abs(got.b - want.b) <= 2;
        }
    }
    for (int e = 0; e < 8; ++e) {
      if (checked[static_cast<std::size_t>(e)] == 0) continue;  // expert not cut by these slices
      EXPECT_GE(hits[static_cast<std::size_t>(e)], checked[static_cast<std::size_t>(e)] * 99 / 100)
          << c.png << " expert " << e + 1 << ": " << hits[static_cast<std::size_t>(e)] << "/" << checked[static_cast<std::size_t>(e)];
    }
    int shown = 0;
    for (int e = 0; e < 8; ++e) shown += checked[static_cast<std::size_t>(e)] > 0;
    // Three planes through one point cut 7 of 8 octants; 12 axial slices cut all 8.
    EXPECT_EQ(shown, c.layout.panels.size() == 3 ? 7 : 8) << c.png;
  }
  if (!HasFailure()) fs::remove_all(out);
}

TEST_F(ExpertMaps, ThreeDimensionalViewRendersOffScreen) {
  if (!display_available()) GTEST_SKIP() << "no X display: run under xvfb-run -a (scripts/test.sh does)";
  const auto mask = read_label_volume(prediction_->dir / "brain_mask_mni2mm.nii.gz");
  const auto& r = prediction_->routing;
  const auto painted = paint_layer(r, r.layers[0], mask);
  ExpertOverlay o;
  o.brain_mask = mask;
  o.labels = painted.labels;
  o.num_experts = 8;
  o.title = "3D test";
  const auto png = process_scratch_dir("expert-3d") / "experts_3d.png";
  SurfaceFigureOptions opt;
  opt.width = 900;
  opt.height = 760;
  const auto t0 = std::chrono::steady_clock::now();
  render_surface_figure(o, opt, png);
  std::cout << "render_surface_figure: " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
            << " s\n";
  auto im = read_png(png);
  EXPECT_EQ(im->GetDimensions()[0], 900);
  EXPECT_EQ(im->GetDimensions()[1], 760);
  EXPECT_GT(variance(im), 500.0);
  // Each expert's hue appears in the rendered views (shaded, so match by nearest palette colour).
  std::vector<int> near(8, 0);
  const auto* p = static_cast<const unsigned char*>(im->GetScalarPointer());
  for (vtkIdType i = 0; i < im->GetNumberOfPoints(); ++i) {
    const unsigned char* q = p + i * im->GetNumberOfScalarComponents();
    for (int e = 0; e < 8; ++e) {
      const Rgb c = expert_colour(e);
      if (std::abs(q[0] - c.r) + std::abs(q[1] - c.g) + std::abs(q[2] - c.b) < 40) ++near[static_cast<std::size_t>(e)];
    }
  }
  for (int e = 0; e < 8; ++e) EXPECT_GT(near[static_cast<std::size_t>(e)], 200) << "expert " << e + 1 << " not visible";
  if (!HasFailure()) fs::remove_all(png.parent_path());
}

// The native maps carry the scan's own qform and sform (here a qform 40 mm off the sform,
// which is followed), or brain_mask_native.nii.gz's when the scan is gone.
TEST_F(ExpertMaps, NativeMapsCarryTheScansQformAndSform) {
  const fs::path dir = process_scratch_dir("expert-maps-headers");
  fs::copy(prediction_->dir, dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  auto read_all = [](const fs::path& p) {
    gzFile f = gzopen(p.c_str(), "rb");
    std::string bytes, chunk(1 << 16, '\0');
    int n;
    while ((n = gzread(f, chunk.data(), static_cast<unsigned>(chunk.size()))) > 0) bytes.append(chunk.data(), n);
    gzclose(f);
    return bytes;
  };
  // pixdim[0..3] and qform_code .. srow_z of a NIfTI-1 header.
  auto xform_bytes = [&](const fs::path& p) {
    const std::string h = read_all(p);
    return h.substr(76, 16) + h.substr(252, 76);
  };
  std::string scan = read_all(prediction_->scan);
  float qoffset_y;
  std::memcpy(&qoffset_y, scan.data() + 272, 4);
  qoffset_y += 40.f;
  std::memcpy(scan.data() + 272, &qoffset_y, 4);
  const fs::path scan_path = dir / "scan_qform_shifted.nii.gz";
  {
    gzFile f = gzopen(scan_path.c_str(), "wb");
    gzwrite(f, scan.data(), static_cast<unsigned>(scan.size()));
    gzclose(f);
  }
  nlohmann::json prediction;
  std::ifstream(dir / "prediction.json") >> prediction;
  prediction["scan"] = fs::absolute(scan_path).string();
  std::ofstream(dir / "prediction.json") << prediction.dump(1);

  MapsOptions opt;
  opt.prediction_dir = dir;
  opt.output_dir = dir / "maps";
  opt.render_3d = false;
  opt.render_2d = false;
  render_expert_maps(opt);
  for (const char* f : {"experts_native.nii.gz", "experts_score_native.nii.gz"})
    EXPECT_EQ(xform_bytes(opt.output_dir / f), xform_bytes(scan_path)) << f;
  const auto native = read_label_volume(opt.output_dir / "experts_native.nii.gz");
  require_same_grid(read_float_volume(prediction_->scan), "scan", native, "experts_native", 1e-4);

  fs::remove(scan_path);
  opt.output_dir = dir / "maps_without_scan";
  const auto report = render_expert_maps(opt);
  EXPECT_FALSE(report.warnings.empty());
  EXPECT_EQ(xform_bytes(opt.output_dir / "experts_native.nii.gz"), xform_bytes(dir / "brain_mask_native.nii.gz"));
  if (!HasFailure()) fs::remove_all(dir);
}
