// The field cases of ../shared/data/fieldcases (valid but unusual inputs users meet, each
// with the behaviour it must get; fieldcases/README.md), run as a user runs them: through
// the `brainage` executable with the default model. Each family runs its untransformed
// scan once and compares every variant's age (and brain mask) with it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/csv.h"
#include "preprocessing/mask_metrics.h"
#include "preprocessing/model_grid.h"
#include "tests/cli_runner.h"
#include "tests/nifti_fixture.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::testing;

namespace {

fs::path field_case(const std::string& name) { return shared_data_dir() / "fieldcases" / name; }

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

struct Prediction {
  int code = -1;
  std::string out;
  double age = NAN;
  nlohmann::json preprocess;
  fs::path dir;
};

/// `brainage predict SCAN -o DIR --threads 2`; the age and preprocess.json when it ran.
Prediction predict(const fs::path& scan, const fs::path& dir) {
  Prediction p;
  p.dir = dir;
  const auto r = run_brainage("predict \"" + scan.string() + "\" -o \"" + dir.string() + "\" --threads 2");
  p.code = r.code;
  p.out = r.out;
  if (r.code == 0) {
    p.age = read_json(dir / "prediction.json")["predicted_age"].get<double>();
    p.preprocess = read_json(dir / "preprocess.json");
  }
  return p;
}

double mask_dice(const Prediction& a, const Prediction& b) {
  using namespace brainage::preprocessing;
  return dice(read_mask(a.dir / "brain_mask_native.nii.gz"), read_mask(b.dir / "brain_mask_native.nii.gz"));
}

}  // namespace

TEST(FieldCases, Ixi012VariantsGiveTheUntransformedScansAge) {
  BRAINAGE_REQUIRE_PATH(field_case("00_ixi012_orig.nii.gz"));
  const fs::path dir = scratch_dir("fieldcases-ixi012");
  const auto reference = predict(field_case("00_ixi012_orig.nii.gz"), dir / "00");
  ASSERT_EQ(reference.code, 0) << reference.out;
  struct Variant {
    const char* file;
    double max_age_change;  // years
    double min_mask_dice;   // 0 = not compared (another grid)
  };
  const Variant variants[] = {
      {"08_ixi012_zscored_negative.nii.gz", 0.5, 0.98},
      {"08b_ixi012_offset_minus500.nii.gz", 0.5, 0.98},
      // Issue 16's 1.0 y: met since the tissue maps are linear unmixing (tenth session,
      // 0.36 y; the Gaussian-mixture maps moved 1.6 y, docs/ROBUSTNESS.md).
      {"16g_ixi012_linear_bias_1p3.nii.gz", 1.0, 0.98},
      {"11d_ixi012_oblique_pitch45.nii.gz", 1.0, 0},
      {"15b_ixi012_skullstripped.nii.gz", 1.5, 0.97},
      {"05b_ixi012_qs_disagree_shift.nii.gz", 1.0, 0.98},
  };
  for (const auto& v : variants) {
    const auto p = predict(field_case(v.file), dir / v.file);
    ASSERT_EQ(p.code, 0) << v.file << ": " << p.out;
    std::printf("%s: %.2f y (reference %.2f y)\n", v.file, p.age, reference.age);
    EXPECT_LE(std::abs(p.age - reference.age), v.max_age_change) << v.file;
    if (v.min_mask_dice > 0) EXPECT_GE(mask_dice(p, reference), v.min_mask_dice) << v.file;
  }
  // The qform/sform decision is carried as a flag (prediction.json) and shown on the console.
  const auto disagree = read_json(dir / "05b_ixi012_qs_disagree_shift.nii.gz" / "prediction.json");
  bool carried = false;
  for (const auto& f : disagree["qc_flags"]) carried = carried || f.get<std::string>().find("disagree") != std::string::npos;
  EXPECT_TRUE(carried) << disagree["qc_flags"].dump();
  const auto stripped = read_json(dir / "15b_ixi012_skullstripped.nii.gz" / "preprocess.json");
  EXPECT_TRUE(stripped["skull_stripped_input"]["value"].get<bool>()) << stripped["skull_stripped_input"].dump();
}

TEST(FieldCases, Colin27VariantsGiveColin27sAge) {
  const fs::path ch2 = mricron_templates_dir() / "ch2.nii.gz";
  BRAINAGE_REQUIRE_PATH(ch2);
  BRAINAGE_REQUIRE_PATH(field_case("10c_ch2_thick_1x1x3.nii.gz"));
  const fs::path dir = scratch_dir("fieldcases-ch2");
  const auto reference = predict(ch2, dir / "ch2");
  ASSERT_EQ(reference.code, 0) << reference.out;
  const auto thick = predict(field_case("10c_ch2_thick_1x1x3.nii.gz"), dir / "thick");
  ASSERT_EQ(thick.code, 0) << thick.out;
  EXPECT_LE(std::abs(thick.age - reference.age), 2.0) << "1x1x3 mm slices";
  const auto stripped = predict(field_case("15_ch2bet_skullstripped.nii.gz"), dir / "stripped");
  ASSERT_EQ(stripped.code, 0) << stripped.out;
  EXPECT_TRUE(stripped.preprocess["skull_stripped_input"]["value"].get<bool>());
  EXPECT_LE(std::abs(stripped.age - reference.age), 1.5) << "ch2bet vs ch2";
  std::printf("Colin27 %.2f y, 1x1x3 mm %.2f y, ch2bet %.2f y\n", reference.age, thick.age, stripped.age);
}

TEST(FieldCases, ACutFieldOfViewIsFlaggedNeverAnswered) {
  BRAINAGE_REQUIRE_PATH(field_case("12b_ixi012_crop_vertex.nii.gz"));
  const fs::path dir = scratch_dir("fieldcases-cut");
  for (const char* file : {"12b_ixi012_crop_vertex.nii.gz", "12c_ixi012_crop_half.nii.gz"}) {
    const auto p = predict(field_case(file), dir / file);
    EXPECT_EQ(p.code, 5) << file << ": " << p.out;  // ProcessingError: QC failed, no age
    EXPECT_NE(p.out.find("brain coverage"), std::string::npos) << file << ": " << p.out;
    EXPECT_EQ(p.out.find("predicted age"), std::string::npos) << file;
    // `preprocess` writes its report: not taken for a skull-stripped scan, coverage measured.
    const auto pre = run_brainage("preprocess \"" + field_case(file).string() + "\" -o \"" +
                                  (dir / (std::string(file) + "-prep")).string() + "\" --threads 2");
    EXPECT_EQ(pre.code, 5) << pre.out;
    const auto report = read_json(dir / (std::string(file) + "-prep") / "preprocess.json");
    EXPECT_FALSE(report["skull_stripped_input"]["value"].get<bool>()) << file;
    EXPECT_GT(report["brain_coverage"]["outside_fov_fraction"].get<double>(), 0.02) << file;
    EXPECT_FALSE(report["qc"]["passed"].get<bool>()) << file;
  }
}

// In a cohort, the cut scan is recorded as failed with its reason and kept out of the
// metrics; with --include-qc-failed it is predicted, flagged "QC failed: ..." and counted.
TEST(FieldCases, ACohortKeepsAQcFailedScanOutOfTheMetricsUnlessAskedToIncludeIt) {
  BRAINAGE_REQUIRE_PATH(field_case("12b_ixi012_crop_vertex.nii.gz"));
  const fs::path dir = scratch_dir("fieldcases-cohort-qc");
  std::ofstream(dir / "c.csv") << "subject_id,path,age\nwhole," << field_case("00_ixi012_orig.nii.gz").string()
                               << ",38.8\ncut," << field_case("12b_ixi012_crop_vertex.nii.gz").string() << ",38.8\n";
  auto evaluate = [&](const std::string& out, const std::string& extra) {
    const auto r = run_brainage("evaluate --cohort \"" + (dir / "c.csv").string() + "\" -o \"" + (dir / out).string() +
                                "\" --cache-dir \"" + (dir / "cache").string() + "\" --threads 2 --no-progress --no-plots" +
                                extra);
    std::map<std::string, std::pair<std::string, std::string>> rows;  // id -> (predicted_age, qc_flags + error)
    const auto t = brainage::read_delimited_file(dir / out / "predictions.csv");
    const int id = brainage::column_index(t.header, "subject_id"), age = brainage::column_index(t.header, "predicted_age");
    const int flags = brainage::column_index(t.header, "qc_flags"), error = brainage::column_index(t.header, "error");
    for (const auto& row : t.rows) rows[row[id]] = {row[age], row[flags] + "|" + row[error]};
    return std::make_pair(r, rows);
  };
  const auto [kept_out, rows] = evaluate("default", "");
  EXPECT_EQ(kept_out.code, 7) << kept_out.out;  // completed with failures
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_TRUE(rows.at("cut").first.empty()) << rows.at("cut").first;
  EXPECT_NE(rows.at("cut").second.find("brain coverage"), std::string::npos) << rows.at("cut").second;
  EXPECT_EQ(read_json(dir / "default" / "metrics.json")["uncorrected"]["n"].get<int>(), 1);

  const auto [included, rows2] = evaluate("included", " --include-qc-failed");
  EXPECT_EQ(included.code, 0) << included.out;
  ASSERT_EQ(rows2.size(), 2u);
  EXPECT_FALSE(rows2.at("cut").first.empty());
  EXPECT_NE(rows2.at("cut").second.find("QC failed: brain coverage"), std::string::npos) << rows2.at("cut").second;
  EXPECT_EQ(read_json(dir / "included" / "metrics.json")["uncorrected"]["n"].get<int>(), 2);
  EXPECT_EQ(rows2.at("whole").first, rows.at("whole").first);  // the passing scan is unchanged
}

TEST(FieldCases, ANonT1ContrastIsRefusedWithTheRule) {
  BRAINAGE_REQUIRE_PATH(field_case("17_ixi012_t2like_inverted.nii.gz"));
  const fs::path dir = scratch_dir("fieldcases-t2");
  const auto p = predict(field_case("17_ixi012_t2like_inverted.nii.gz"), dir / "out");
  EXPECT_EQ(p.code, 3) << p.out;  // InvalidInputError
  EXPECT_NE(p.out.find("17_ixi012_t2like_inverted.nii.gz: not T1-weighted"), std::string::npos) << p.out;
  EXPECT_FALSE(fs::exists(dir / "out" / "prediction.json"));
}

TEST(FieldCases, AFourDimensionalFileIsRefusedByPredict) {
  BRAINAGE_REQUIRE_PATH(field_case("09b_ixi012_4d_two_volumes.nii.gz"));
  const fs::path dir = scratch_dir("fieldcases-4d");
  const auto p = predict(field_case("09b_ixi012_4d_two_volumes.nii.gz"), dir / "out");
  EXPECT_EQ(p.code, 3) << p.out;
}

TEST(FieldCases, TheThreadCountDoesNotChangeTheResult) {
  // Every output byte-identical at 1, 2 and 4 threads, for a 2 mm IXI scan and the 1 mm
  // Colin27: the registration metric runs as one work unit and N4 (with its B-spline fit)
  // as a fixed number of work units (docs/ROBUSTNESS.md "Thread count"). Before the
  // B-spline fit was fixed, IXI204 moved 0.14 y between --threads 2 and 4 and Colin27's
  // rigid metric differed in the 7th digit between 1 and 2.
  const fs::path ixi012 = field_case("00_ixi012_orig.nii.gz");
  const fs::path ch2 = mricron_templates_dir() / "ch2.nii.gz";
  BRAINAGE_REQUIRE_PATH(ixi012);
  BRAINAGE_REQUIRE_PATH(ch2);
  const fs::path dir = scratch_dir("fieldcases-threads");
  // (prediction.json holds the run's thread count and timings: its age is compared.)
  const std::vector<std::string> images{"brain_mask_native.nii.gz", "brain_mask_mni2mm.nii.gz", "t1_mni2mm.nii.gz",
                                        "tissue_mni2mm.nii.gz", "native_to_mni.tfm"};
  const std::vector<std::pair<fs::path, std::vector<int>>> runs{{ixi012, {1, 2, 4}}, {ch2, {1, 2}}};
  for (const auto& [scan, thread_counts] : runs) {
    std::map<int, fs::path> out;
    for (int threads : thread_counts) {
      out[threads] = dir / (scan.stem().stem().string() + "_t" + std::to_string(threads));
      const auto r = run_brainage("predict \"" + scan.string() + "\" -o \"" + out[threads].string() +
                                  "\" --threads " + std::to_string(threads));
      ASSERT_EQ(r.code, 0) << r.out;
    }
    const int first = thread_counts.front();
    for (int threads : thread_counts) {
      if (threads == first) continue;
      EXPECT_EQ(read_json(out[threads] / "prediction.json")["predicted_age"].get<double>(),
                read_json(out[first] / "prediction.json")["predicted_age"].get<double>())
          << scan << " at " << threads << " vs " << first << " threads";
      for (const auto& name : images)
        EXPECT_EQ(read_file_bytes(out[threads] / name), read_file_bytes(out[first] / name))
            << scan << ": " << name << " differs at " << threads << " vs " << first << " threads";
    }
  }
}

// Thick slices on a coarse in-plane grid bias the tissue maps and the age (2x2x3 mm moved
// an IXI scan 4.3 y younger, 2x2x4 mm 9.2 y; docs/ROBUSTNESS.md): voxels above 9 mm³ are
// refused with the rule, before any processing, while 1x1x3 mm (Colin27 above) runs. The
// voxels of IXI012 with a 2x2x3 mm header stand in for such a scan (the check reads the
// spacing only).
TEST(FieldCases, ThickSlicesOnACoarseInPlaneGridAreRefusedWithTheRule) {
  BRAINAGE_REQUIRE_PATH(field_case("00_ixi012_orig.nii.gz"));
  const fs::path dir = scratch_dir("fieldcases-thick-coarse");
  auto image = brainage::preprocessing::read_image(field_case("00_ixi012_orig.nii.gz"));
  auto spacing = image->GetSpacing();
  ASSERT_NEAR(spacing[0] * spacing[1] * spacing[2], 8.0, 1e-3) << "the 2 mm IXI scan (8 mm³) is the accepted reference";
  spacing[2] *= 1.5;
  image->SetSpacing(spacing);
  brainage::preprocessing::write_image(image, dir / "ixi012_2x2x3.nii.gz");
  const auto p = predict(dir / "ixi012_2x2x3.nii.gz", dir / "out");
  EXPECT_EQ(p.code, 3) << p.out;  // InvalidInputError
  EXPECT_NE(p.out.find("ixi012_2x2x3.nii.gz: voxels of"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("(12.0 mm3): larger than 9.0 mm3"), std::string::npos) << p.out;
  EXPECT_FALSE(fs::exists(dir / "out" / "prediction.json"));
}
