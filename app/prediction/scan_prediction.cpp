#include "app/prediction/scan_prediction.h"

#include <chrono>

#include "common/atomic_file.h"
#include "common/build_info.h"
#include "common/errors.h"
#include "model/routing_stats.h"
#include "model/runtime.h"
#include "model/vbm_model.h"
#include "preprocessing/model_grid.h"

namespace brainage::prediction {
namespace fs = std::filesystem;

std::string preprocessing_version() { return std::string("brainage-preprocess ") + build_info::kVersion; }

Predictor::Predictor(const fs::path& checkpoint) : checkpoint_(model::checkpoint_json_path(checkpoint)) {
  loaded_ = model::load_checkpoint(checkpoint_, /*accept_vbm=*/true);
  const auto& grid = loaded_.info.model.grid;     // Z, Y, X
  const auto& g = preprocessing::kModelGridSize;  // x, y, z
  if (grid[0] != g[2] || grid[1] != g[1] || grid[2] != g[0])
    throw ModelError(checkpoint_.string() + ": the model expects a " + std::to_string(grid[2]) + "x" +
                     std::to_string(grid[1]) + "x" + std::to_string(grid[0]) + " grid, preprocessing produces " +
                     std::to_string(g[0]) + "x" + std::to_string(g[1]) + "x" + std::to_string(g[2]));
}

model::ModelOutput Predictor::forward(const torch::Tensor& input, int threads, bool with_routing) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (threads > 0) model::configure_threads(threads);
  torch::NoGradGuard no_grad;
  if (loaded_.vbm) {
    model::ModelOutput out;
    out.age = loaded_.vbm->predict_raw(input).to(torch::kFloat32);
    return out;
  }
  loaded_.model->eval();
  return loaded_.model->forward(input, with_routing);
}

torch::Tensor model_input(const PreprocessedScan& scan, const std::string& model_kind) {
  std::vector<preprocessing::ImageType::Pointer> channels;
  if (model_kind == model::kVbmModelKind)
    channels.assign(scan.modulated_tissue.begin(), scan.modulated_tissue.end());
  else
    channels.push_back(scan.t1_model);
  const auto& g = preprocessing::kModelGridSize;  // x, y, z
  std::vector<torch::Tensor> planes;
  for (const auto& image : channels) {
    if (!image)
      throw ProcessingError(scan.scan.string() + ": no " +
                            (model_kind == model::kVbmModelKind ? "modulated tissue maps" : "model-grid T1") +
                            " for a " + model_kind + " model (preprocess the scan with this build)");
    std::vector<float> buffer = preprocessing::image_to_buffer(image);
    planes.push_back(torch::from_blob(buffer.data(),
                                      {static_cast<int64_t>(g[2]), static_cast<int64_t>(g[1]), static_cast<int64_t>(g[0])},
                                      torch::kFloat32)
                         .clone());
  }
  return torch::stack(planes).unsqueeze(0);
}

nlohmann::json prediction_json(const PredictionRecord& r) {
  return {{"scan", r.scan.string()},
          {"predicted_age", r.predicted_age},
          {"bias_corrected_age", r.bias_corrected_age},
          {"bias_correction", to_json(r.bias_correction)},
          {"model_id", r.model_id},
          {"model", r.model.string()},
          {"qc_flags", r.qc_flags},
          {"routing", r.routing},
          {"forward_seconds", r.forward_seconds},
          {"seconds_total", r.seconds_total}};
}

void write_prediction_folder(const PredictionRecord& record, const PreprocessedScan& preprocessed, const fs::path& dir) {
  ensure_writable_directory(dir);
  write_preprocessing_outputs(preprocessed, dir);
  write_file_atomic(dir / "prediction.json", prediction_json(record).dump(2) + "\n");
}

PredictionRecord predict_scan(Predictor& predictor, const fs::path& scan, const ScanPredictionOptions& options,
                              PreprocessedScan* preprocessed_out) {
  const auto t0 = std::chrono::steady_clock::now();
  PreprocessStepOptions step = options.preprocess;
  step.read_tissue_maps = predictor.model_kind() == model::kVbmModelKind;
  PreprocessedScan preprocessed = preprocess_for_model(scan, step);                       // 1
  const torch::Tensor input = model_input(preprocessed, predictor.model_kind());         // 2
  const auto t_forward = std::chrono::steady_clock::now();
  const auto output = predictor.forward(input, options.threads, options.with_routing);    // 3
  PredictionRecord record;                                                                // 4
  record.forward_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_forward).count();
  record.scan = fs::absolute(scan).lexically_normal();
  record.predicted_age = output.age[0].item<double>();
  record.bias_correction = predictor.info().bias_correction;
  record.bias_corrected_age = record.bias_correction.apply(record.predicted_age);
  record.model_id = predictor.info().model_id;
  record.model = fs::absolute(predictor.checkpoint_path());
  record.qc_flags = preprocessed.qc_flags;
  if (options.with_routing && predictor.has_routing())
    record.routing = model::routing_summary(output, predictor.info().model, 0);
  record.seconds_total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!options.output_dir.empty()) write_prediction_folder(record, preprocessed, options.output_dir);  // 5
  if (preprocessed_out) *preprocessed_out = std::move(preprocessed);
  return record;
}

}  // namespace brainage::prediction
