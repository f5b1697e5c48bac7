// The cohort flow end to end with a real (simple) per-subject processor: bad rows,
// kill-and-resume, shard + merge, parallel jobs, bias calibration choices.
#include "app/cohort/cohort_evaluation.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <sstream>

#include "app/cohort/cohort_charts.h"
#include "common/content_hash.h"
#include "common/csv.h"
#include "app/cohort/journal.h"
#include "common/errors.h"
#include "tests/app/cohort/cohort_fixture.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::cohort;
using brainage::column_index;
using brainage::CsvTable;
using brainage::read_delimited_file;
using namespace brainage::testing;

namespace {

/// 12 good subjects (ages 22..77, predictions = age + a deterministic error) in scans/.
fs::path make_good_cohort(const fs::path& dir, std::string* csv_text = nullptr) {
  fs::create_directories(dir / "scans");
  std::string csv = "subject_id,path,age,sex,site,group\n";
  for (int i = 0; i < 12; ++i) {
    const double age = 22 + 5 * i;
    const double pred = 0.8 * age + 9 + ((i * 7) % 5 - 2);  // biased towards the mean
    const std::string id = "S" + std::to_string(100 + i);
    write_scan_with_mean(dir / "scans" / (id + ".nii.gz"), static_cast<float>(pred));
    csv += id + ",scans/" + id + ".nii.gz," + std::to_string(age) + "," + (i % 2 ? "M" : "F") + "," +
           (i % 3 ? "siteA" : "siteB") + ",g" + std::to_string(i % 4) + "\n";
  }
  if (csv_text) *csv_text = csv;
  write_text(dir / "cohort.csv", csv);
  return dir / "cohort.csv";
}

EvaluateSettings quiet(const fs::path& cohort, const fs::path& out) {
  EvaluateSettings s;
  s.cohort = cohort;
  s.out_dir = out;
  s.show_progress = false;
  static std::ostringstream sink;
  s.log = &sink;
  s.outputs.plots = charts_available();
  return s;
}

}  // namespace

TEST(CohortEvaluation, BadRowsAreRecordedAndTheRestFinishes) {
  const auto dir = scratch_dir("cohort-eval-bad");
  std::string csv;
  make_good_cohort(dir, &csv);
  // missing file, corrupt gzip, 2D image, non-numeric age, duplicate id
  write_bytes(dir / "scans/corrupt.nii.gz", std::string("\x1f\x8b\x08\x00garbage-not-deflate", 22), false);
  NiftiSpec flat;
  flat.dims = {16, 16};
  flat.pixdim = {1.f, 1.f};
  write_nifti(dir / "scans/flat.nii.gz", flat);
  csv += "MISSING,scans/nope.nii.gz,40,F,siteA,g0\n";
  csv += "CORRUPT,scans/corrupt.nii.gz,41,F,siteA,g0\n";
  csv += "FLAT,scans/flat.nii.gz,42,M,siteA,g0\n";
  csv += "BADAGE,scans/S100.nii.gz,forty,M,siteA,g0\n";
  csv += "S101,scans/S101.nii.gz,27,M,siteA,g0\n";
  write_text(dir / "bad.csv", csv);

  std::atomic<int> calls{0};
  auto s = quiet(dir / "bad.csv", dir / "out");
  s.jobs = 2;
  const auto report = evaluate_cohort(s, mean_processor(&calls));
  EXPECT_EQ(report.exit_code, 7);
  EXPECT_EQ(static_cast<int>(brainage::ExitCode::kPartialFailure), 7);
  EXPECT_EQ(calls.load(), 15) << "12 good + 3 unreadable scans run; row errors do not";
  EXPECT_EQ(report.outputs.failures, 5u);
  EXPECT_EQ(report.outputs.evaluated, 12u);

  const CsvTable t = read_delimited_file(dir / "out/predictions.csv");
  ASSERT_EQ(t.rows.size(), 17u);
  const int err = column_index(t.header, "error"), pred = column_index(t.header, "predicted_age");
  const int group = column_index(t.header, "group");
  ASSERT_GE(err, 0);
  ASSERT_GE(group, 0);
  auto row_of = [&](const std::string& id, int nth = 0) {
    for (const auto& r : t.rows)
      if (r[0] == id && nth-- == 0) return r;
    ADD_FAILURE() << id << " not in predictions.csv";
    return std::vector<std::string>(t.header.size());
  };
  EXPECT_NE(row_of("MISSING")[err].find("does not exist"), std::string::npos) << row_of("MISSING")[err];
  EXPECT_NE(row_of("CORRUPT")[err].find("InvalidInputError"), std::string::npos) << row_of("CORRUPT")[err];
  EXPECT_NE(row_of("FLAT")[err].find("2D"), std::string::npos) << row_of("FLAT")[err];
  EXPECT_NE(row_of("BADAGE")[err].find("not a number"), std::string::npos);
  EXPECT_NE(row_of("S101", 1)[err].find("duplicate subject_id"), std::string::npos);
  EXPECT_TRUE(row_of("S101", 0)[err].empty());
  EXPECT_FALSE(row_of("S105")[pred].empty());
  EXPECT_EQ(row_of("S105")[group], "g1");

  const auto metrics = nlohmann::json::parse(read_text(dir / "out/metrics.json"));
  EXPECT_EQ(metrics["counts"]["failed"], 5);
  EXPECT_EQ(metrics["counts"]["row_errors"], 2);
  EXPECT_EQ(metrics["counts"]["subject_failures"], 3);
  EXPECT_EQ(metrics["uncorrected"]["n"], 12);
  EXPECT_TRUE(metrics["bias_correction"].is_null()) << "never fitted silently on the evaluated cohort";
  EXPECT_TRUE(fs::exists(dir / "out/report.html"));
  EXPECT_NE(read_text(dir / "out/report.html").find("No bias correction"), std::string::npos);
}

TEST(CohortEvaluation, MetricsJsonEqualsIndependentComputation) {
  const auto dir = scratch_dir("cohort-eval-metrics");
  make_good_cohort(dir);
  auto s = quiet(dir / "cohort.csv", dir / "out");
  s.outputs.plots = false;
  ASSERT_EQ(evaluate_cohort(s, mean_processor()).exit_code, 0);
  // Independent: recompute from the generating formula (not from the outputs).
  double abs_sum = 0, sq = 0;
  for (int i = 0; i < 12; ++i) {
    const double age = 22 + 5 * i, pred = static_cast<float>(0.8 * age + 9 + ((i * 7) % 5 - 2));
    abs_sum += std::abs(pred - age);
    sq += (pred - age) * (pred - age);
  }
  const auto m = nlohmann::json::parse(read_text(dir / "out/metrics.json"));
  EXPECT_NEAR(m["uncorrected"]["mae"].get<double>(), abs_sum / 12, 1e-4);
  EXPECT_NEAR(m["uncorrected"]["rmse"].get<double>(), std::sqrt(sq / 12), 1e-4);
  EXPECT_GT(m["uncorrected"]["gap_age_correlation"].get<double>(), -1.0);
  EXPECT_LT(m["uncorrected"]["gap_age_correlation"].get<double>(), -0.5) << "predictions regress to the mean";
  ASSERT_EQ(m["mae_by_sex"].size(), 2u);
  ASSERT_EQ(m["mae_by_site"].size(), 2u);
  EXPECT_EQ(m["mae_by_age_bin"][0]["group"], "20-29");
}

// Rows predicted although a QC check failed (evaluate --include-qc-failed) are counted in
// metrics.json and named in the report's header, so a reader knows what the MAE contains.
TEST(CohortEvaluation, RowsPredictedDespiteFailedQcAreCounted) {
  const auto dir = scratch_dir("cohort-eval-qc-included");
  make_good_cohort(dir);
  auto s = quiet(dir / "cohort.csv", dir / "out");
  s.outputs.plots = false;
  auto base = mean_processor();
  auto flagging = [&](const Subject& subject, const SubjectWorkspace& ws) {
    auto outcome = base(subject, ws);
    if (subject.id == "S100" || subject.id == "S105") outcome.qc_flags.push_back("QC failed: CSF/WM contrast 0.48 ...");
    if (subject.id == "S101") outcome.qc_flags.push_back("input already skull-stripped");  // a warning, not a QC failure
    return outcome;
  };
  ASSERT_EQ(evaluate_cohort(s, flagging).exit_code, 0);
  const auto m = nlohmann::json::parse(read_text(dir / "out/metrics.json"));
  EXPECT_EQ(m["counts"]["predicted_despite_failed_qc"].get<int>(), 2);
  EXPECT_EQ(m["counts"]["evaluated"].get<int>(), 12);
  EXPECT_NE(read_text(dir / "out/report.html").find("in the metrics when their age is known): 2"), std::string::npos);
}

TEST(CohortEvaluation, CalibrationChoicesAreExplicitAndMarked) {
  const auto dir = scratch_dir("cohort-eval-cal");
  make_good_cohort(dir);
  auto s = quiet(dir / "cohort.csv", dir / "fit");
  s.outputs.plots = false;
  s.calibration.mode = CalibrationChoice::Mode::kFitOnCohort;
  evaluate_cohort(s, mean_processor());
  const auto fit = nlohmann::json::parse(read_text(dir / "fit/metrics.json"));
  EXPECT_TRUE(fit["bias_correction"]["fitted_on_evaluated_cohort"].get<bool>());
  EXPECT_NEAR(fit["corrected"]["gap_age_correlation"].get<double>(), 0.0, 1e-9);
  EXPECT_NE(read_text(dir / "fit/report.html").find("Fitted on the evaluated cohort"), std::string::npos);

  // --calibration <other cohort's predictions.csv>: the parameters used are that fit.
  s.out_dir = dir / "given";
  s.calibration.mode = CalibrationChoice::Mode::kGiven;
  s.calibration.given = calibration_from_predictions_csv(dir / "fit/predictions.csv");
  evaluate_cohort(s, mean_processor());
  const auto given = nlohmann::json::parse(read_text(dir / "given/metrics.json"));
  EXPECT_FALSE(given["bias_correction"]["fitted_on_evaluated_cohort"].get<bool>());
  EXPECT_NEAR(given["bias_correction"]["slope"].get<double>(), fit["bias_correction"]["slope"].get<double>(), 1e-3);
  EXPECT_NE(given["bias_correction"]["source"].get<std::string>().find("fit/predictions.csv"), std::string::npos);
  const CsvTable t = read_delimited_file(dir / "given/predictions.csv");
  const int corrected = column_index(t.header, "corrected_predicted_age");
  EXPECT_FALSE(t.rows[0][static_cast<std::size_t>(corrected)].empty());
}

TEST(CohortEvaluation, KilledRunResumesToTheSameOutputs) {
  const auto dir = scratch_dir("cohort-eval-resume");
  make_good_cohort(dir);
  // The uninterrupted reference.
  auto ref = quiet(dir / "cohort.csv", dir / "ref");
  ASSERT_EQ(evaluate_cohort(ref, mean_processor()).exit_code, 0);

  // A real kill: a child process runs the cohort and dies (_exit) inside the 5th subject.
  auto s = quiet(dir / "cohort.csv", dir / "killed");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int n = 0;
    auto base = mean_processor();
    auto dying = [&](const Subject& subject, const SubjectWorkspace& ws) {
      if (++n == 5) ::_exit(9);
      return base(subject, ws);
    };
    try {
      evaluate_cohort(s, dying);
    } catch (...) {
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 9) << "the child was meant to die mid-cohort";
  EXPECT_EQ(Journal(dir / "killed/journal").read_all().size(), 4u);
  EXPECT_FALSE(fs::exists(dir / "killed/predictions.csv"));
  write_text(dir / "killed/journal/.S199-deadbeef.tmp-1-0.json", "{\"subject_id\": \"S1");  // a torn temp file

  std::atomic<int> calls{0};
  const auto resumed = evaluate_cohort(s, mean_processor(&calls));
  EXPECT_EQ(calls.load(), 8) << "only the 8 unfinished subjects run again";
  EXPECT_EQ(resumed.run.resumed, 4u);
  for (const char* f : {"predictions.csv", "metrics.json", "report.html"})
    EXPECT_EQ(read_text(dir / "killed" / f), read_text(dir / "ref" / f)) << f << " differs after resume";

  // A second rerun is instant: nothing runs, outputs unchanged.
  calls = 0;
  evaluate_cohort(s, mean_processor(&calls));
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(read_text(dir / "killed/predictions.csv"), read_text(dir / "ref/predictions.csv"));

  // A replaced scan is noticed and processed again.
  fs::last_write_time(dir / "scans/S103.nii.gz", fs::last_write_time(dir / "scans/S103.nii.gz") + std::chrono::hours(1));
  calls = 0;
  evaluate_cohort(s, mean_processor(&calls));
  EXPECT_EQ(calls.load(), 1);

  // Another model, build or option (another processing key): every subject runs again, so a
  // resumed folder never keeps the old model's ages (a helper resumed an --include-qc-failed
  // folder without the option and kept its QC-failed ages in the metrics).
  s.processing_key = "another-model";
  calls = 0;
  const auto redone = evaluate_cohort(s, mean_processor(&calls));
  EXPECT_EQ(calls.load(), 12);
  EXPECT_EQ(redone.run.stale, 12u);
  EXPECT_EQ(redone.run.resumed, 0u);
  calls = 0;
  evaluate_cohort(s, mean_processor(&calls));  // now journaled with that key
  EXPECT_EQ(calls.load(), 0);
}

TEST(CohortEvaluation, ShardsMergeToTheSingleRun) {
  const auto dir = scratch_dir("cohort-eval-shard");
  make_good_cohort(dir);
  std::string csv = read_text(dir / "cohort.csv");
  csv += "MISSING,scans/nope.nii.gz,40,F,siteA,g0\nBADAGE,scans/S100.nii.gz,x,M,siteA,g0\n";
  write_text(dir / "cohort.csv", csv);

  auto single = quiet(dir / "cohort.csv", dir / "single");
  single.calibration.mode = CalibrationChoice::Mode::kFitOnCohort;
  ASSERT_EQ(evaluate_cohort(single, mean_processor()).exit_code, 7);

  std::vector<fs::path> shard_dirs;
  std::size_t total_rows = 0;
  for (int i = 0; i < 3; ++i) {
    auto s = quiet(dir / "cohort.csv", dir / ("shard" + std::to_string(i)));
    s.calibration.mode = CalibrationChoice::Mode::kFitOnCohort;
    s.shard = {i, 3};
    const auto r = evaluate_cohort(s, mean_processor());
    total_rows += r.outputs.rows;
    EXPECT_LT(r.outputs.rows, 14u) << "each shard holds part of the cohort";
    shard_dirs.push_back(s.out_dir);
  }
  EXPECT_EQ(total_rows, 14u) << "the shards hold every row exactly once";

  OutputOptions outputs;
  outputs.plots = charts_available();
  const auto merged = merge_cohort({shard_dirs[2], shard_dirs[0], shard_dirs[1]}, dir / "merged", outputs);
  EXPECT_EQ(merged.failures, 2u);
  EXPECT_EQ(exit_code_for(merged.failures), 7);
  for (const char* f : {"predictions.csv", "metrics.json", "report.html"})
    EXPECT_EQ(read_text(dir / "merged" / f), read_text(dir / "single" / f)) << f << " differs after merge";

  EXPECT_THROW(merge_cohort({shard_dirs[0], shard_dirs[1]}, dir / "partial"), brainage::InvalidInputError)
      << "a missing shard is an error, not a silently smaller cohort";
  EXPECT_THROW(merge_cohort({shard_dirs[0], shard_dirs[0], shard_dirs[1]}, dir / "dup"), brainage::InvalidInputError);

  // Shard 2 again from `csv` with `processing_key`, into `name`; merged with shards 0 and 1.
  auto merge_with_shard2 = [&](const fs::path& csv, const std::string& name, const std::string& processing_key) {
    auto s = quiet(csv, dir / name);
    s.calibration.mode = CalibrationChoice::Mode::kFitOnCohort;
    s.shard = {2, 3};
    s.processing_key = processing_key;
    evaluate_cohort(s, mean_processor());
    merge_cohort({shard_dirs[0], shard_dirs[1], s.out_dir}, dir / (name + "-merged"));
  };
  auto refused_naming = [](const std::function<void()>& merge, const std::vector<std::string>& words) {
    try {
      merge();
      ADD_FAILURE() << "merged";
    } catch (const brainage::InvalidInputError& e) {
      for (const auto& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
    }
  };
  // A shard made with another model, build or option (a helper merged a default-model shard
  // with a VBM-model shard into one MAE): refused, naming the shard.
  refused_naming([&] { merge_with_shard2(dir / "cohort.csv", "shard2-other-model", "another-model"); },
                 {"shard2-other-model"});
  // The same table at another path (a copy; a symlinked project folder) is the same cohort.
  fs::copy_file(dir / "cohort.csv", dir / "cohort-copy.csv");
  EXPECT_NO_THROW(merge_with_shard2(dir / "cohort-copy.csv", "shard2-copied-cohort", ""));
  // A shard run after the cohort table was edited (here the BADAGE row's age fixed): the
  // merged metrics would mix two tables. Refused, naming the cohort.
  std::string edited = read_text(dir / "cohort.csv");
  edited.replace(edited.find("BADAGE,scans/S100.nii.gz,x"), 26, "BADAGE,scans/S100.nii.gz,5");
  write_text(dir / "cohort-edited.csv", edited);
  refused_naming([&] { merge_with_shard2(dir / "cohort-edited.csv", "shard2-edited-cohort", ""); },
                 {"cohort", "shard2-edited-cohort"});
}

TEST(CohortEvaluation, ParallelJobsGiveTheSameOutputs) {
  const auto dir = scratch_dir("cohort-eval-jobs");
  make_good_cohort(dir);
  auto one = quiet(dir / "cohort.csv", dir / "j1");
  one.outputs.plots = false;
  auto four = one;
  four.out_dir = dir / "j4";
  four.jobs = 4;
  evaluate_cohort(one, mean_processor());
  evaluate_cohort(four, mean_processor());
  for (const char* f : {"predictions.csv", "metrics.json", "report.html"})
    EXPECT_EQ(read_text(dir / "j4" / f), read_text(dir / "j1" / f)) << f;
}

TEST(CohortShard, ParseAndStablePartition) {
  EXPECT_EQ(parse_shard("2/5").index, 2);
  EXPECT_EQ(parse_shard(" 0 / 1 ").count, 1);
  EXPECT_THROW(parse_shard("5/5"), brainage::UsageError);
  EXPECT_THROW(parse_shard("1-4"), brainage::UsageError);
  EXPECT_THROW(parse_shard("0/0"), brainage::UsageError);
  // Stable across runs and machines: the first 64 bits of the id's SHA-256, modulo N
  // (SHA-256("abc") starts ba7816bf8f01cfea; that number mod 4 is 2).
  EXPECT_EQ(shard_of("abc", 4), 2);
  int counts[4] = {0, 0, 0, 0};
  for (int i = 0; i < 400; ++i) ++counts[shard_of("IXI" + std::to_string(i), 4)];
  for (int c : counts) EXPECT_GT(c, 60) << "shards are roughly balanced";
}
