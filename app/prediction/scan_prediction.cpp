#include "app/prediction/scan_prediction.h"

#include <chrono>
#include <cmath>
#include <map>
#include <numeric>

#include "app/prediction/contrast_domain_check.h"
#include "app/prediction/extrapolation_check.h"
#include "common/atomic_file.h"
#include "common/build_info.h"
#include "common/errors.h"
#include "model/routing_stats.h"
#include "model/runtime.h"
#include "model/vbm_model.h"
#include "preprocessing/model_grid.h"
#include "preprocessing/t1_contrast_check.h"

namespace brainage::prediction {
namespace fs = std::filesystem;

std::string preprocessing_version() {
  return std::string("brainage-preprocess ") + build_info::kVersion + " r" + std::to_string(kPreprocessingRevision);
}

Predictor::Predictor(const fs::path& checkpoint) : checkpoint_(model::checkpoint_json_path(checkpoint)) {
  loaded_ = model::load_checkpoint(checkpoint_, /*accept_vbm=*/true);
  const auto& grid = loaded_.info.model.grid;     // Z, Y, X
  const auto& g = preprocessing::kModelGridSize;  // x, y, z
  if (grid[0] != g[2] || grid[1] != g[1] || grid[2] != g[0])
    throw ModelError(checkpoint_.string() + ": the model expects a " + std::to_string(grid[2]) + "x" +
                     std::to_string(grid[1]) + "x" + std::to_string(grid[0]) + " grid, preprocessing produces " +
                     std::to_string(g[0]) + "x" + std::to_string(g[1]) + "x" + std::to_string(g[2]));
}

model::ModelOutput Predictor::forward(const ModelInput& input, bool with_routing) {
  std::lock_guard<std::mutex> lock(mutex_);
  const model::ThreadCountGuard threads(kForwardThreads);  // the age must not follow --threads
  torch::NoGradGuard no_grad;
  if (loaded_.vbm && loaded_.members.empty()) {  // a VBM checkpoint
    model::ModelOutput out;
    out.age = loaded_.vbm->predict_raw(input.volumes).to(torch::kFloat32);
    return out;
  }
  if (loaded_.members.empty()) {
    loaded_.model->eval();
    return loaded_.model->forward(input.volumes, with_routing, input.global);
  }
  // An ensemble: every member on the same input; routing (and logits) from the routing member.
  model::ModelOutput out;
  std::vector<torch::Tensor> ages;  // K x [B]
  const auto routing_member = static_cast<std::size_t>(loaded_.info.routing_member);
  for (std::size_t k = 0; k < loaded_.members.size(); ++k) {
    auto& member = loaded_.members[k];
    member->eval();
    auto member_out = member->forward(input.volumes, with_routing && k == routing_member, input.global);
    ages.push_back(member_out.age);
    if (k == routing_member) out = std::move(member_out);
  }
  out.member_ages = torch::stack(ages, 1);  // [B, K]
  out.age = out.member_ages.mean(1);        // [B]
  if (loaded_.vbm) {  // model/ensemble.h: (1 − w) · transformer mean + w · VBM age
    if (!input.tissue_maps.defined())
      throw ProcessingError(checkpoint_.string() + ": the ensemble's VBM model needs the modulated tissue maps");
    const double w = loaded_.info.vbm_member->weight;
    out.vbm_age = loaded_.vbm->predict_raw(input.tissue_maps).to(torch::kFloat32);
    out.age = (1.0 - w) * out.age + w * out.vbm_age;
  }
  return out;
}

bool needs_tissue_maps(const model::CheckpointInfo& info) {
  if (info.model_kind == model::kVbmModelKind || info.vbm_member) return true;
  return info.model.uses_tissue_maps() || info.model.global_input != model::GlobalInput::kNone;
}

namespace {

/// One model-grid image as a [Z, Y, X] float32 tensor that owns its memory.
torch::Tensor grid_tensor(const preprocessing::ImageType::Pointer& image) {
  const auto& g = preprocessing::kModelGridSize;  // x, y, z
  std::vector<float> buffer = preprocessing::image_to_buffer(image);
  return torch::from_blob(buffer.data(),
                          {static_cast<int64_t>(g[2]), static_cast<int64_t>(g[1]), static_cast<int64_t>(g[0])},
                          torch::kFloat32)
      .clone();
}

/// The modulated map of `tissue` ("csf", "gm", "wm"; modulated_tissue's order), or throws
/// ProcessingError naming the scan and the model that needs it.
const preprocessing::ImageType::Pointer& tissue_map(const PreprocessedScan& scan, const std::string& tissue,
                                                    const std::string& needed_by) {
  const int index = tissue == "csf" ? 0 : tissue == "gm" ? 1 : 2;
  const auto& image = scan.modulated_tissue[index];
  if (!image)
    throw ProcessingError(scan.scan.string() + ": no modulated " + tissue + " map (tissue_modulated_" + tissue +
                          "_mni2mm.nii.gz) for " + needed_by + " (preprocess the scan with this build)");
  return image;
}

}  // namespace

ModelInput model_input(const PreprocessedScan& scan, const model::CheckpointInfo& info) {
  ModelInput input;
  std::vector<torch::Tensor> planes;  // [Z, Y, X] each
  std::map<std::string, torch::Tensor> tissue_ml;  // each modulated map converted once, mL per voxel
  auto tissue = [&](const std::string& name, const std::string& needed_by) -> const torch::Tensor& {
    auto it = tissue_ml.find(name);
    if (it == tissue_ml.end()) it = tissue_ml.emplace(name, grid_tensor(tissue_map(scan, name, needed_by))).first;
    return it->second;
  };
  // A VBM model reads the modulated CSF, GM, WM maps [1, 3, Z, Y, X].
  auto vbm_maps = [&] {
    return torch::stack({tissue("csf", "a vbm model"), tissue("gm", "a vbm model"), tissue("wm", "a vbm model")}).unsqueeze(0);
  };
  if (info.model_kind == model::kVbmModelKind) {
    input.volumes = vbm_maps();
    return input;
  }
  if (info.vbm_member) input.tissue_maps = vbm_maps();
  for (const auto& channel : info.model.channels) {
    if (channel == "t1") {
      if (!scan.t1_model)
        throw ProcessingError(scan.scan.string() + ": no model-grid T1 for a neural model (preprocess the scan with this build)");
      planes.push_back(grid_tensor(scan.t1_model));
    } else {
      planes.push_back(tissue(channel, "the model's " + channel + " channel") / static_cast<float>(kModelGridVoxelMl));
    }
  }
  input.volumes = torch::stack(planes).unsqueeze(0);
  if (info.model.global_input == model::GlobalInput::kLogBrainVolume) {
    double brain_ml = 0;
    // Summed in double in memory order: a torch reduction's order, and so its last bits, follows
    // the thread count (IXI015 read 2e-6 y apart at 2 threads and at 1 or 4).
    for (const char* name : {"csf", "gm", "wm"}) {
      const auto map = tissue(name, "the log_brain_volume input").contiguous();
      brain_ml = std::accumulate(map.data_ptr<float>(), map.data_ptr<float>() + map.numel(), brain_ml);
    }
    if (!(brain_ml > 0))
      throw ProcessingError(scan.scan.string() + ": brain tissue volume " + std::to_string(brain_ml) +
                            " mL (sum of the modulated maps) is not positive: no log_brain_volume input");
    input.global = torch::full({1, 1}, static_cast<float>(std::log(brain_ml)), torch::kFloat32);
  }
  return input;
}

namespace {

/// prediction.json's "ensemble": how many models were averaged, their ages and spread.
nlohmann::json ensemble_json(const PredictionRecord& r) {
  const std::size_t k = r.member_ages.size();
  nlohmann::json j = {{"members", k},
                      {"member_ages", r.member_ages},
                      {"sd_years", r.ensemble_sd},
                      {"routing_from", k > 1 ? "member " + std::to_string(r.routing_member) + " of " + std::to_string(k)
                                             : std::string("the model")}};
  if (r.has_vbm_member) {
    j["transformer_mean_age"] = r.transformer_mean_age;
    j["vbm_age"] = r.vbm_age;
    j["vbm_weight"] = r.vbm_weight;
    j["combination"] = "predicted_age = (1 - vbm_weight) * transformer_mean_age + vbm_weight * vbm_age";
  }
  return j;
}

/// Step 1b: the scan's CSF/WM contrast against the model's training scans
/// (contrast_domain_check.h). Beyond the limit: throws ProcessingError, or with failed QC
/// accepted adds a "QC failed: ..." flag. Returns prediction.json's "tissue_contrast".
nlohmann::json check_contrast_domain(const Predictor& predictor, const fs::path& scan, const PreprocessStepOptions& step,
                                     PreprocessedScan& preprocessed) {
  const double ratio = preprocessing::check_model_grid_t1_contrast(preprocessed.t1_model, step.preprocess.template_dir,
                                                                   step.preprocess.contrast)
                           .csf_wm_ratio;
  const auto range = training_contrast_range(predictor.info().training);
  if (!range) return {{"csf_wm_ratio", ratio}, {"limit", nullptr}};
  const ContrastDomainOptions options;
  if (auto rule = contrast_domain_failure(ratio, *range, options)) {
    if (!step.accept_failed_qc) throw ProcessingError(scan.string() + ": failed QC for this model (" + *rule + ")");
    preprocessed.qc_flags.push_back("QC failed: " + *rule);
  }
  const auto limit = contrast_limit(*range, options);
  return {{"csf_wm_ratio", ratio}, {"limit", limit ? nlohmann::json(*limit) : nlohmann::json()}};
}

}  // namespace

nlohmann::json prediction_json(const PredictionRecord& r) {
  return {{"scan", r.scan.string()},
          {"predicted_age", r.predicted_age},
          {"bias_corrected_age", r.bias_corrected_age},
          {"bias_correction", to_json(r.bias_correction)},
          {"ensemble", ensemble_json(r)},
          {"model_id", r.model_id},
          {"model", r.model.string()},
          {"qc_flags", r.qc_flags},
          {"tissue_contrast", r.tissue_contrast},
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
  step.read_tissue_maps = needs_tissue_maps(predictor.info());
  PreprocessedScan preprocessed = preprocess_for_model(scan, step);                       // 1
  const nlohmann::json tissue_contrast = check_contrast_domain(predictor, scan, step, preprocessed);
  const ModelInput input = model_input(preprocessed, predictor.info());                   // 2
  const auto t_forward = std::chrono::steady_clock::now();
  const auto output = predictor.forward(input, options.with_routing);                     // 3
  PredictionRecord record;                                                                // 4
  record.forward_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_forward).count();
  record.scan = fs::absolute(scan).lexically_normal();
  record.predicted_age = output.age[0].item<double>();
  if (output.member_ages.defined()) {
    const auto row = output.member_ages[0].to(torch::kFloat64).contiguous();
    record.member_ages.assign(row.data_ptr<double>(), row.data_ptr<double>() + row.numel());
    record.ensemble_sd = row.std(/*unbiased=*/true).item<double>();  // sample sd (K - 1), years
    record.transformer_mean_age = row.mean().item<double>();
    record.routing_member = predictor.info().routing_member;
  } else {
    record.member_ages = {record.predicted_age};
    record.transformer_mean_age = record.predicted_age;
  }
  if (output.vbm_age.defined()) {
    record.has_vbm_member = true;
    record.vbm_age = output.vbm_age[0].item<double>();
    record.vbm_weight = predictor.info().vbm_member->weight;
  }
  record.bias_correction = predictor.info().bias_correction;
  record.bias_corrected_age = record.bias_correction.apply(record.predicted_age);
  record.model_id = predictor.info().model_id;
  record.model = fs::absolute(predictor.checkpoint_path());
  record.qc_flags = preprocessed.qc_flags;
  record.tissue_contrast = tissue_contrast;
  if (const auto range = training_age_range(predictor.info().training))
    if (auto flag = extrapolation_flag(record.predicted_age, record.bias_corrected_age, *range))
      record.qc_flags.push_back(std::move(*flag));
  if (options.with_routing && predictor.has_routing())
    record.routing = model::routing_summary(output, predictor.info().model, 0);
  record.seconds_total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!options.output_dir.empty()) write_prediction_folder(record, preprocessed, options.output_dir);  // 5
  if (preprocessed_out) *preprocessed_out = std::move(preprocessed);
  return record;
}

}  // namespace brainage::prediction
