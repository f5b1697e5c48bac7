#include "app/prediction/subject_predictor.h"

#include <memory>
#include <mutex>
#include <set>

#include "app/prediction/scan_prediction.h"
#include "app/prediction/training_overlap.h"
#include "common/errors.h"
#include "viz/expert_maps.h"

namespace brainage::prediction {
namespace fs = std::filesystem;

namespace {

/// The expert maps of a cohort subject's prediction folder: label maps, tables and 2D
/// figures (the 3D view is `brainage visualize <subject dir>` on the cases one looks at).
/// The prediction stands when a figure cannot be drawn: a failure becomes a QC flag.
void render_subject_maps(const fs::path& dir, std::vector<std::string>& qc_flags) {
  viz::MapsOptions maps;
  maps.prediction_dir = dir;
  maps.output_dir = dir / "maps";
  maps.render_3d = false;
  static std::mutex render_mutex;  // one VTK render at a time
  std::lock_guard<std::mutex> lock(render_mutex);
  try {
    const auto report = viz::render_expert_maps(maps);
    for (const auto& w : report.warnings) qc_flags.push_back("maps: " + w);
  } catch (const Error& e) {
    qc_flags.push_back(std::string("maps failed: ") + e.what());
  }
}

}  // namespace

cohort::SubjectProcessor make_subject_predictor(const SubjectPredictorOptions& options) {
  auto predictor = std::make_shared<Predictor>(options.model);
  ScanPredictionOptions scan_options;
  scan_options.preprocess.preprocess = options.preprocess;
  scan_options.preprocess.preprocess.threads = options.threads_per_subject;
  scan_options.preprocess.cache_dir = options.cache_dir;
  scan_options.preprocess.accept_failed_qc = options.include_qc_failed;
  scan_options.with_routing = options.write_prediction_folder && predictor->has_routing();
  const auto ids = training_subject_ids(predictor->info().training);
  const auto trained = std::make_shared<const std::set<std::string>>(ids.begin(), ids.end());

  return [predictor, scan_options, options, trained](const cohort::Subject& subject,
                                                     const cohort::SubjectWorkspace& ws) {
    ScanPredictionOptions o = scan_options;
    if (options.write_prediction_folder) o.output_dir = ws.dir;  // what `brainage predict -o` writes
    PreprocessedScan preprocessed;
    const PredictionRecord record = predict_scan(*predictor, subject.scan, o, &preprocessed);

    cohort::SubjectOutcome out;
    out.predicted_age = record.predicted_age;
    out.age_sd_years = record.ensemble_sd;
    out.qc_flags = record.qc_flags;
    if (trained->count(subject.id)) out.qc_flags.push_back(kTrainingSubjectFlag);
    std::error_code ec;
    if (fs::exists(preprocessed.cache_entry / "qc.png", ec)) out.qc_image = preprocessed.cache_entry / "qc.png";
    out.details = {{"model_id", record.model_id},
                   {"ensemble_members", record.member_ages.size()},
                   {"preprocessing_cache", preprocessed.cache_entry.filename().string()},
                   {"brain_volume_ml", preprocessed.report.value("brain_volume_ml", 0.0)}};
    if (record.has_vbm_member) {  // the two parts of an ensemble with a VBM model (predictions.csv columns)
      out.details["transformer_age"] = record.transformer_mean_age;
      out.details["vbm_age"] = record.vbm_age;
      out.details["vbm_weight"] = record.vbm_weight;
    }
    if (options.write_prediction_folder && predictor->has_routing()) render_subject_maps(ws.dir, out.qc_flags);
    return out;
  };
}

}  // namespace brainage::prediction
