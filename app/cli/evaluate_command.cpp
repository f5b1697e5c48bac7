#include "app/cli/evaluate_command.h"

#include <unistd.h>

#include <iostream>
#include <thread>

#include "app/cli/cli.h"
#include "app/cohort/cohort.h"
#include "app/prediction/subject_predictor.h"
#include "app/prediction/training_overlap.h"
#include "app/cli/predict_command.h"
#include "common/atomic_file.h"
#include "common/build_info.h"
#include "common/content_hash.h"
#include "common/errors.h"
#include "common/x_display.h"
#include "model/checkpoint.h"

namespace brainage::app {
namespace fs = std::filesystem;

namespace {

cohort::CalibrationChoice choose_calibration(const EvaluateOptions& o, const fs::path& model,
                                             const model::CheckpointInfo& info) {
  cohort::CalibrationChoice c;
  if (!o.calibration.empty() && o.fit_calibration_on_cohort)
    throw UsageError("brainage evaluate: --calibration and --fit-calibration-on-cohort exclude each other");
  if (o.fit_calibration_on_cohort) {
    c.mode = cohort::CalibrationChoice::Mode::kFitOnCohort;
  } else if (!o.calibration.empty()) {
    c.mode = cohort::CalibrationChoice::Mode::kGiven;
    c.given = cohort::calibration_from_predictions_csv(o.calibration);
  } else {
    if (info.bias_correction.usable()) {  // the same correction `predict` applies
      cohort::Calibration cal;
      cal.correction = info.bias_correction;
      cal.source = "model checkpoint " + model::checkpoint_json_path(model).string() +
                   " (fitted on its " + info.bias_correction_fitted_on + " predictions, N=" +
                   std::to_string(cal.correction.n) + ")";
      c.mode = cohort::CalibrationChoice::Mode::kGiven;
      c.given = cal;
    } else {
      c.note = std::string(info.bias_correction.n > 0
                               ? "the model checkpoint's bias correction has a slope <= 0.1 and is not applied (as in "
                                 "brainage predict)"
                               : "the model checkpoint holds no bias-correction parameters") +
               "; pass --calibration <predictions.csv of a held-out cohort> (or --fit-calibration-on-cohort, marked "
               "as such)";
    }
  }
  return c;
}

}  // namespace

int run_evaluate(const EvaluateOptions& o) {
  if (o.jobs < 1) throw UsageError("brainage evaluate: --jobs must be >= 1, got " + std::to_string(o.jobs));
  if (!o.calibration.empty() && o.fit_calibration_on_cohort)
    throw UsageError("brainage evaluate: --calibration and --fit-calibration-on-cohort exclude each other");
  cohort::EvaluateSettings s;
  s.cohort = o.cohort;
  s.out_dir = o.out;
  s.jobs = o.jobs;
  if (!o.shard.empty()) s.shard = cohort::parse_shard(o.shard);
  s.retry_failed = o.retry_failed;
  s.outputs.plots = o.plots;
  s.show_progress = o.progress;
  s.progress_interactive = ::isatty(STDERR_FILENO) != 0;

  const cohort::Cohort table = cohort::load_cohort(o.cohort);  // a broken table is reported before the model loads
  check_writable_directory(o.out);  // and an output folder that cannot be made
  const fs::path model = o.model.empty() ? default_model_path() : o.model;
  const model::CheckpointInfo checkpoint = model::read_checkpoint_info(model);
  s.calibration = choose_calibration(o, model, checkpoint);
  std::vector<std::string> cohort_ids;  // this run's subjects (its shard's, with --shard)
  for (const auto& subject : table.subjects)
    if (subject.row_error.empty() && cohort::shard_of(subject.id, s.shard.count) == s.shard.index)
      cohort_ids.push_back(subject.id);
  const auto training_ids = prediction::training_subject_ids(checkpoint.training);
  const auto trained = prediction::training_subjects_in(cohort_ids, training_ids);

  const int cores = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  prediction::SubjectPredictorOptions p;
  p.model = model;
  p.cache_dir = o.cache_dir.empty() ? o.out / "cache" : o.cache_dir;
  p.threads_per_subject = std::max(1, cores / o.jobs);
  p.write_prediction_folder = o.maps;
  p.preprocess.assume_skull_stripped = o.skull_stripped;
  p.include_qc_failed = o.include_qc_failed;
  configure_all_threads(p.threads_per_subject);
  if (o.plots || o.maps) ensure_x_display();  // headless: a private Xvfb, before the workers start

  std::string cmd;
  for (const auto& a : o.command_line) cmd += (cmd.empty() ? "" : " ") + a;
  s.provenance = {{"command", cmd},
                  {"brainage", build_info::kVersion},
                  {"git_sha", build_info::kGitSha},
                  {"model", fs::absolute(model::checkpoint_json_path(model)).lexically_normal().string()},
                  {"cores", cores},
                  {"threads_per_subject", p.threads_per_subject},
                  {"cache_dir", fs::absolute(p.cache_dir).string()},
                  // null: the checkpoint does not list its training subjects (nothing checked)
                  {"training_subjects_in_cohort", training_ids.empty() ? nlohmann::json() : nlohmann::json(trained)}};
  // What a subject's outcome depends on besides its scan: the checkpoint (its bytes, so a
  // changed record such as tissue_contrast counts), the build, the options that change it.
  s.processing_key = sha256_hex(nlohmann::json{{"checkpoint_sha256", sha256_path_hex(model::checkpoint_json_path(model))},
                                               {"brainage", build_info::kVersion},
                                               {"git_sha", build_info::kGitSha},
                                               {"include_qc_failed", o.include_qc_failed},
                                               {"skull_stripped", o.skull_stripped},
                                               {"maps", o.maps}}  // entries without maps do not satisfy --maps
                                    .dump())
                         .substr(0, 16);
  std::cerr << "brainage evaluate: " << o.jobs << " job(s) x " << p.threads_per_subject << " thread(s), model "
            << model.string() << "\n";
  if (const auto warning = prediction::training_overlap_warning(trained, cohort_ids.size()))
    std::cerr << "brainage evaluate: warning: " << *warning << "\n";
  return cohort::evaluate_cohort(s, prediction::make_subject_predictor(p)).exit_code;
}

int evaluate_main(const std::vector<std::string>& args) {
  EvaluateOptions o;
  std::string cohort, out, model, calibration, cache;
  po::options_description desc("evaluate options");
  desc.add_options()
    ("cohort", po::value(&cohort)->required(), "cohort CSV (subject_id,path,age[,sex,site,...]) or BIDS folder")
    ("out,o", po::value(&out)->required(), "output folder (predictions.csv, metrics.json, plots, report.html)")
    ("model", po::value(&model)->notifier(require_model_named), "checkpoint (default: $BRAINAGE_MODEL, else data/model/brainage-default.json)")
    ("jobs,j", po::value(&o.jobs)->default_value(1), "subjects in parallel; each gets cores/jobs threads")
    ("threads", po::value(&o.threads)->default_value(0), "total threads (0 = all cores)")
    ("shard", po::value(&o.shard), "i/N: process the i-th of N deterministic parts (0-based), for job arrays")
    ("calibration", po::value(&calibration),
     "predictions.csv of a held-out cohort: fit the bias correction there (default: the checkpoint's)")
    ("fit-calibration-on-cohort", po::bool_switch(&o.fit_calibration_on_cohort),
     "fit the bias correction on this cohort itself (optimistic; marked in the outputs)")
    ("cache-dir", po::value(&cache), "preprocessing cache (default: <out>/cache)")
    ("maps", po::bool_switch(&o.maps), "per subject: prediction folder + expert maps in <out>/subjects/<id>/")
    ("retry-failed", po::bool_switch(&o.retry_failed), "run subjects the journal records as failed again")
    ("no-plots", "do not render the VTK plots")
    ("no-progress", "no progress bar")
    ("skull-stripped", po::bool_switch(&o.skull_stripped), "inputs are already skull-stripped (default: detect)")
    ("include-qc-failed", po::bool_switch(&o.include_qc_failed),
     "predict scans that fail QC too, flagged 'QC failed: ...', and count them in the metrics (default: listed as "
     "failed, kept out)");
  po::positional_options_description pos;
  pos.add("cohort", 1);
  const auto vm = parse_command_line("evaluate", "--cohort <cohort.csv | BIDS dir> -o <out> [options]", args, desc, pos);
  if (!vm) return 0;
  o.cohort = cohort;
  o.out = out;
  o.model = model;
  o.calibration = calibration;
  o.cache_dir = cache;
  o.plots = !vm->count("no-plots");
  o.progress = !vm->count("no-progress");
  o.command_line = {"brainage", "evaluate"};
  o.command_line.insert(o.command_line.end(), args.begin(), args.end());
  return run_evaluate(o);
}

}  // namespace brainage::app
