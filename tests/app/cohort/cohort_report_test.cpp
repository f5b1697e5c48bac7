// VTK charts to PNG and the self-contained HTML report.
#include <gtest/gtest.h>
#include <vtkImageData.h>
#include <vtkNew.h>
#include <vtkPNGReader.h>

#include "app/cohort/cohort_charts.h"
#include "app/cohort/cohort_report.h"
#include "tests/app/cohort/cohort_fixture.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::cohort;
using namespace brainage::testing;

TEST(CohortReport, Base64MatchesRfc4648) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("M"), "TQ==");
  EXPECT_EQ(base64("Ma"), "TWE=");
  EXPECT_EQ(base64("Man"), "TWFu");
  EXPECT_EQ(base64(std::string("\xff\x00\x10", 3)), "/wAQ");
}

TEST(CohortCharts, PredictedVsAgeRendersAPngWithContent) {
  if (!charts_available()) GTEST_SKIP() << "needs an X display (scripts/test.sh runs ctest under xvfb-run)";
  const auto dir = scratch_dir("cohort-charts");
  ScatterSeries s{"predicted", {20, 35, 50, 65, 80}, {28, 36, 49, 60, 70}, {31, 119, 180}};
  render_predicted_vs_age({s}, dir / "pred.png", {640, 480});
  render_gap_vs_age({s}, dir / "gap.png");
  vtkNew<vtkPNGReader> reader;
  reader->SetFileName((dir / "pred.png").c_str());
  reader->Update();
  int dims[3];
  reader->GetOutput()->GetDimensions(dims);
  EXPECT_EQ(dims[0], 640);
  EXPECT_EQ(dims[1], 480);
  // The plot is not blank: some pixels are the series colour (blue dominant), some dark (axes, text).
  auto* img = reader->GetOutput();
  const int comps = img->GetNumberOfScalarComponents();
  ASSERT_GE(comps, 3);
  int blue = 0, dark = 0;
  for (int y = 0; y < dims[1]; ++y)
    for (int x = 0; x < dims[0]; ++x) {
      auto* p = static_cast<unsigned char*>(img->GetScalarPointer(x, y, 0));
      if (p[2] > 140 && p[0] < 90) ++blue;
      if (p[0] < 80 && p[1] < 80 && p[2] < 80) ++dark;
    }
  EXPECT_GT(blue, 20) << "scatter points drawn";
  EXPECT_GT(dark, 200) << "axes and labels drawn";
  EXPECT_GT(fs::file_size(dir / "gap.png"), 2000u);
}

// The report names the model the rows were predicted with and, for an ensemble with a VBM
// model, how its age is made from the two parts and each part's cohort mean (what a user
// needs to read a gap that is mostly the VBM model's).
TEST(CohortReport, NamesTheModelAndTheTwoPartsOfAVbmEnsemble) {
  CohortResults results;
  const double ages[] = {30, 50, 70};
  const double transformer[] = {40, 50, 60}, vbm[] = {32, 52, 66};
  for (int i = 0; i < 3; ++i) {
    ResultRow row;
    row.subject.row = i + 1;
    row.subject.id = "sub-" + std::to_string(i);
    row.subject.age = ages[i];
    SubjectRecord record;
    record.ok = true;
    record.predicted_age = 0.1 * transformer[i] + 0.9 * vbm[i];
    record.details = {{"model_id", "ermoe-ba-vbm-ensemble-abc"}, {"ensemble_members", 5},
                      {"transformer_age", transformer[i]}, {"vbm_age", vbm[i]}, {"vbm_weight", 0.9}};
    row.record = record;
    results.rows.push_back(row);
  }
  CohortMetrics metrics;
  const std::string html = render_report_html({&results, &metrics, "none given", {}, ""});
  EXPECT_NE(html.find("<code>ermoe-ba-vbm-ensemble-abc</code>"), std::string::npos);
  EXPECT_NE(html.find("an ensemble of 5 transformers"), std::string::npos);
  EXPECT_NE(html.find("(1 &minus; 0.90) &times; transformers + 0.90 &times; VBM"), std::string::npos);
  EXPECT_NE(html.find("the transformers give 50.0 y on average and the VBM model 50.0 y"), std::string::npos) << html;
  EXPECT_NE(html.find("All predictions (3 of 3 rows"), std::string::npos);

  // A single transformer: its id, no VBM sentence.
  for (auto& row : results.rows) row.record->details = {{"model_id", "ermoe-ba-c0f23b4e8d26"}, {"ensemble_members", 1}};
  const std::string single = render_report_html({&results, &metrics, "none given", {}, ""});
  EXPECT_NE(single.find("<code>ermoe-ba-c0f23b4e8d26</code>"), std::string::npos);
  EXPECT_EQ(single.find("VBM"), std::string::npos);
}
