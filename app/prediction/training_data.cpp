#include "app/prediction/training_data.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <numeric>
#include <stdexcept>

#include "app/prediction/contrast_domain_check.h"
#include "app/prediction/scan_prediction.h"
#include "common/csv.h"
#include "common/errors.h"
#include "preprocessing/t1_contrast_check.h"

namespace brainage::prediction {
namespace fs = std::filesystem;

std::vector<ManifestEntry> read_training_manifest(const fs::path& manifest) {
  const auto table = read_delimited_file(manifest);
  const int id_col = column_index(table.header, "subject_id");
  const int age_col = column_index(table.header, "age");
  int path_col = column_index(table.header, "path");
  if (path_col < 0) path_col = column_index(table.header, "t1");
  if (id_col < 0 || age_col < 0 || path_col < 0)
    throw InvalidInputError(manifest.string() + ": a training manifest needs the columns subject_id, age, path (or t1)");
  const fs::path base = fs::absolute(manifest).parent_path();
  std::vector<ManifestEntry> entries;
  for (size_t r = 0; r < table.rows.size(); ++r) {
    const auto& row = table.rows[r];
    const std::string where = manifest.string() + ":" + std::to_string(table.line_numbers[r]);
    auto cell = [&](int col) { return col < static_cast<int>(row.size()) ? trim(row[col]) : std::string(); };
    ManifestEntry e;
    e.subject_id = cell(id_col);
    if (e.subject_id.empty()) throw InvalidInputError(where + ": empty subject_id");
    try {
      size_t used = 0;
      e.age = std::stod(cell(age_col), &used);
      if (used != cell(age_col).size() || !std::isfinite(e.age) || e.age <= 0 || e.age > 130) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw InvalidInputError(where + ": age '" + cell(age_col) + "' is not a number in (0, 130]");
    }
    const fs::path p = cell(path_col);
    if (p.empty()) throw InvalidInputError(where + ": empty path");
    e.path = p.is_absolute() ? p : (base / p).lexically_normal();
    entries.push_back(e);
  }
  if (entries.size() < 2) throw InvalidInputError(manifest.string() + ": needs at least 2 subjects");
  return entries;
}

model::TrainingData load_training_data(const std::vector<ManifestEntry>& entries, const fs::path& cache_dir,
                                       bool progress, const model::CheckpointInfo& info) {
  model::TrainingData data;
  std::vector<torch::Tensor> volumes, globals;
  const auto t0 = std::chrono::steady_clock::now();
  // The path `predict` and `evaluate` take (app/prediction/): the same preprocessing, cache
  // and model input; a file already on the model grid is used as is.
  PreprocessStepOptions options;
  options.cache_dir = cache_dir;
  options.accept_model_grid_input = true;
  options.read_tissue_maps = needs_tissue_maps(info);
  size_t preprocessed = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    if (!fs::exists(e.path)) throw InvalidInputError(e.path.string() + ": file in the manifest does not exist");
    const auto scan = preprocess_for_model(e.path, options);
    if (scan.fresh) {
      ++preprocessed;
      if (progress)
        std::cout << "preprocessed " << e.subject_id << " (" << i + 1 << "/" << entries.size() << "): " << e.path.string()
                  << std::endl;
    }
    const ModelInput input = model_input(scan, info);
    volumes.push_back(input.volumes[0]);                           // [C, Z, Y, X]
    if (input.global.defined()) globals.push_back(input.global[0]);  // [G]
    data.ages.push_back(e.age);
    data.subject_ids.push_back(e.subject_id);
    data.csf_wm_ratios.push_back(preprocessing::check_model_grid_t1_contrast(scan.t1_model, options.preprocess.template_dir,
                                                                             options.preprocess.contrast)
                                     .csf_wm_ratio);
  }
  data.volumes = torch::stack(volumes);
  if (!globals.empty()) data.globals = torch::stack(globals);
  if (progress)
    std::cout << "loaded " << entries.size() << " volumes (" << preprocessed << " preprocessed now) in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s" << std::endl;
  return data;
}

nlohmann::json training_data_summary(const model::TrainingData& data) {
  if (data.ages.empty()) throw std::invalid_argument("training_data_summary: no training ages");
  const auto [lo, hi] = std::minmax_element(data.ages.begin(), data.ages.end());
  nlohmann::json summary = {{"subjects", data.ages.size()},
                            {"age_min", *lo},
                            {"age_max", *hi},
                            {"age_mean", std::accumulate(data.ages.begin(), data.ages.end(), 0.0) / data.ages.size()}};
  if (!data.csf_wm_ratios.empty()) summary["tissue_contrast"] = tissue_contrast_summary(data.csf_wm_ratios);
  return summary;
}

}  // namespace brainage::prediction
