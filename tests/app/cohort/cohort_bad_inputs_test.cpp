// Issue 9's cohort check: one cohort mixing good scans (synthetic ones with an exactly known
// mean, one behind a path with spaces, non-ASCII characters and a comma, and the real
// Colin27) with every kind of bad scan of tests/bad_scan_corpus.h and every kind of bad row.
// The per-subject processor is the validation the real pipeline starts with (load_scan,
// check_scan_plausible) followed by the mean intensity as the "prediction", so the good
// subjects have exact expected results. The cohort must finish every good subject with its
// result, record each bad one with one line naming the file and the rule and its exit
// code, and leave nothing half-written.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <map>
#include <sstream>

#include "app/cohort/cohort_evaluation.h"
#include "common/csv.h"
#include "app/cohort/journal.h"
#include "common/errors.h"
#include "preprocessing/scan_plausibility.h"
#include "tests/app/cohort/cohort_fixture.h"
#include "tests/bad_scan_corpus.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::cohort;
using brainage::column_index;
using brainage::CsvTable;
using brainage::read_delimited_file;
using namespace brainage::testing;

namespace {

/// Validation as preprocess_scan() starts it, then the mean intensity.
SubjectProcessor validating_mean_processor() {
  return [](const Subject& s, const SubjectWorkspace&) {
    const auto loaded = brainage::preprocessing::load_scan(s.scan);
    brainage::preprocessing::check_scan_plausible(loaded.image, s.scan);
    SubjectOutcome out;
    out.predicted_age = scan_mean(s.scan);
    return out;
  };
}

/// Colin27's voxels straight from the gzip stream (uint8, scl_slope 1), without ITK.
std::vector<std::uint8_t> colin27_voxels(const fs::path& ch2) {
  gzFile f = gzopen(ch2.c_str(), "rb");
  std::string bytes;
  char buf[1 << 16];
  for (int n; f && (n = gzread(f, buf, sizeof buf)) > 0;) bytes.append(buf, static_cast<std::size_t>(n));
  if (f) gzclose(f);
  std::int16_t datatype = 0;
  float vox_offset = 0;
  std::memcpy(&datatype, bytes.data() + 70, 2);
  std::memcpy(&vox_offset, bytes.data() + 108, 4);
  EXPECT_EQ(datatype, 2) << "Colin27 is stored as uint8";
  return {bytes.begin() + static_cast<std::ptrdiff_t>(vox_offset), bytes.end()};
}

/// Every path under `dir` whose name marks an unfinished write.
std::vector<std::string> leftover_temporaries(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".tmp") != std::string::npos) found.push_back(e.path().string());
  }
  return found;
}

}  // namespace

TEST(CohortBadInputs, GoodScansFinishAndEveryBadKindIsRecorded) {
  const auto dir = scratch_dir("cohort-bad-inputs");
  const fs::path bad_dir = dir / "bad scans (ünïcode)";
  const fs::path odd_dir = dir / "scans/Zoë Łukasz 東京";
  fs::create_directories(bad_dir);
  fs::create_directories(odd_dir);
  const auto corpus = write_bad_scan_corpus(bad_dir);

  // Good subjects: id -> expected mean.
  std::map<std::string, double> expected;
  std::string csv = "\xEF\xBB\xBFsubject_id,path,age,site\r\n";
  expected["good_plain"] = write_good_scan(dir / "scans/good.nii", 3.f);
  csv += "good_plain,scans/good.nii,40,A\r\n";
  expected["good_gz"] = write_good_scan(dir / "scans/good2.nii.gz", 11.5f);
  csv += "good_gz," + (dir / "scans/good2.nii.gz").string() + ",51.5,A\r\n";
  expected["good_odd_path"] = write_good_scan(odd_dir / "T1 wëighted, run 1.nii.gz", -7.f);
  csv += "good_odd_path,\"scans/Zoë Łukasz 東京/T1 wëighted, run 1.nii.gz\",33,B\r\n";
  expected["good_no_age"] = write_good_scan(dir / "scans/good3.nii.gz", 0.25f);
  csv += "good_no_age,scans/good3.nii.gz,,B\r\n";
  const fs::path ch2 = mricron_templates_dir() / "ch2.nii.gz";
  const bool with_colin = fs::exists(ch2);
  if (with_colin) {
    // Colin27 as it is, and as float with one corrupt voxel (a huge dynamic range in a
    // normal brain).
    const auto voxels = colin27_voxels(ch2);
    double sum = 0;
    for (auto v : voxels) sum += v;
    expected["colin27"] = sum / static_cast<double>(voxels.size());
    csv += "colin27," + ch2.string() + ",27,C\r\n";
    NiftiSpec spec;
    spec.dims = {181, 217, 181};
    std::vector<float> hot(voxels.begin(), voxels.end());
    hot[(90 * 217 + 108) * 181 + 90] = 1e30f;
    write_bytes(bad_dir / "colin27 hot voxel.nii.gz", nifti_bytes(spec, float_bytes(hot)), true);
    csv += "colin27_hot_voxel," + (bad_dir / "colin27 hot voxel.nii.gz").string() + ",27,C\r\n";
  } else {
    std::printf("note: %s absent; the cohort runs without Colin27\n", ch2.c_str());
  }
  for (const auto& bad : corpus) csv += bad.kind + "," + bad.path.string() + ",50,D\r\n";
  // Bad rows: each is recorded with its rule and never processed.
  const std::map<std::string, std::string> row_rules = {{"neg_age", "age -3 is negative"},
                                                        {"text_age", "age 'forty' is not a number"},
                                                        {"nan_age", "age 'nan' is not finite"},
                                                        {"old_age", "not a plausible age"},
                                                        {"no_path", "empty path"},
                                                        {"fields", "has 5 fields, the header has 4"}};
  csv += "neg_age,scans/good.nii,-3,A\r\n";
  csv += "text_age,scans/good.nii,forty,A\r\n";
  csv += "nan_age,scans/good.nii,nan,A\r\n";
  csv += "old_age,scans/good.nii,212,A\r\n";
  csv += "no_path,,40,A\r\n";
  csv += "fields,scans/good.nii,40,A,extra\r\n";
  csv += ",scans/good.nii,40,A\r\n";              // empty id
  csv += "good_plain,scans/good2.nii.gz,41,A\r\n";  // duplicate id
  write_text(dir / "cohort.csv", csv);

  EvaluateSettings s;
  s.cohort = dir / "cohort.csv";
  s.out_dir = dir / "out";
  s.jobs = 2;
  s.show_progress = false;
  std::ostringstream log;
  s.log = &log;
  s.outputs.plots = false;
  const auto report = evaluate_cohort(s, validating_mean_processor());

  const std::size_t bad_scans = corpus.size() + (with_colin ? 1 : 0), bad_rows = row_rules.size() + 2;
  EXPECT_EQ(report.exit_code, 7);
  EXPECT_EQ(report.outputs.evaluated, expected.size() - 1) << "all good subjects with an age";
  EXPECT_EQ(report.outputs.failures, bad_scans + bad_rows);

  const CsvTable t = read_delimited_file(dir / "out/predictions.csv");
  ASSERT_EQ(t.rows.size(), expected.size() + bad_scans + bad_rows);
  const auto col = [&](const char* name) { return static_cast<std::size_t>(column_index(t.header, name)); };
  const std::size_t id = col("subject_id"), pred = col("predicted_age"), err = col("error"), site = col("site");
  std::map<std::string, std::vector<std::string>> by_id;  // first row of each id
  for (const auto& row : t.rows) by_id.emplace(row[id], row);

  for (const auto& [subject, mean] : expected) {
    SCOPED_TRACE(subject);
    ASSERT_TRUE(by_id.count(subject));
    const auto& row = by_id[subject];
    EXPECT_EQ(row[err], "");
    ASSERT_FALSE(row[pred].empty());
    EXPECT_NEAR(std::stod(row[pred]), mean, 6e-4) << "predictions.csv prints 3 decimals";
  }
  EXPECT_EQ(by_id["good_odd_path"][site], "B");

  const auto journal = Journal(dir / "out/journal").read_all();
  auto expect_scan_failure = [&](const std::string& subject, const fs::path& path, const std::string& rule) {
    SCOPED_TRACE(subject);
    ASSERT_TRUE(by_id.count(subject));
    const std::string& message = by_id[subject][err];
    EXPECT_EQ(message.rfind("InvalidInputError: " + path.string() + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(rule), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_TRUE(by_id[subject][pred].empty());
    ASSERT_TRUE(journal.count(subject));
    EXPECT_EQ(journal.at(subject).error_code, 3);
  };
  for (const auto& bad : corpus) expect_scan_failure(bad.kind, bad.path, bad.rule);
  if (with_colin)
    expect_scan_failure("colin27_hot_voxel", bad_dir / "colin27 hot voxel.nii.gz", "intensity range is implausible");
  for (const auto& [subject, rule] : row_rules) {
    SCOPED_TRACE(subject);
    EXPECT_NE(by_id[subject][err].find(rule), std::string::npos) << by_id[subject][err];
    EXPECT_FALSE(journal.count(subject)) << "a bad row is never processed";
  }
  EXPECT_NE(by_id[""][err].find("empty subject_id"), std::string::npos) << by_id[""][err];
  EXPECT_NE(t.rows.back()[err].find("duplicate subject_id 'good_plain'"), std::string::npos) << t.rows.back()[err];

  const auto metrics = nlohmann::json::parse(read_text(dir / "out/metrics.json"));
  EXPECT_EQ(metrics["counts"]["row_errors"], bad_rows);
  EXPECT_EQ(metrics["counts"]["subject_failures"], bad_scans);
  EXPECT_EQ(metrics["uncorrected"]["n"], expected.size() - 1);
  EXPECT_EQ(leftover_temporaries(dir / "out"), std::vector<std::string>{}) << "nothing half-written";

  // A rerun is served from the journal and writes the same table.
  const std::string before = read_text(dir / "out/predictions.csv");
  const auto again = evaluate_cohort(s, validating_mean_processor());
  EXPECT_EQ(again.exit_code, 7);
  EXPECT_EQ(again.run.processed, 0u);
  EXPECT_EQ(read_text(dir / "out/predictions.csv"), before);
  EXPECT_EQ(leftover_temporaries(dir / "out"), std::vector<std::string>{});
}
