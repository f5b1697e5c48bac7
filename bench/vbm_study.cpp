// brainage_vbm_study: k-fold cross-validation of the VBM model (model/vbm_model.h) on the
// modulated tissue maps that brainage_tissue_maps_cohort wrote, in the same folds as
// scripts/cv_study.py (trainer.h split_subjects: age-stratified, seeded, over the QC-passed
// subjects in the participants file's order). Per fold: fit_vbm on the training folds
// (FWHM and λ by inner CV, bias correction on inner out-of-fold predictions), predict the
// held-out fold. Prints MAE / r (raw and bias-corrected), each fold's chosen FWHM / λ, and
// writes the per-subject predictions as CSV.
//
// Augmentation copies (model::VbmAugmentation): `--copies NAME=DIR` names a folder of the
// same subjects' copies (e.g. each scan skull-stripped, or under a random bias field, run
// through `brainage preprocess`); each fold then also predicts its held-out subjects' copies
// and prints how far they move from the subjects' own ages (Δ = copy − scan, the same
// model), and `--train-with NAME,...` adds the training subjects' copies of those kinds to
// each fold's fit (held-out subjects' copies never train).
//
// DIR holds one folder per subject id: `brainage preprocess` outputs (e.g. made by
// scripts/preprocess_manifest.py) or brainage_tissue_maps_cohort's.
//
//   brainage_vbm_study --participants CSV --maps DIR [--folds 5] [--seed 42]
//                      [--fwhm 4,6,8] [--channels 0,1,2] [--lambdas a,b,...] [--stride 2]
//                      [--scaling none|proportional|parenchyma] [--symmetric]
//                      [--copies NAME=DIR ...] [--train-with NAME,...] [--out predictions.csv]
// Links brainage_preprocessing (to read the maps) and brainage_model.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/age_statistics.h"
#include "model/runtime.h"
#include "model/trainer.h"
#include "model/vbm_model.h"
#include "preprocessing/model_grid.h"
#include "preprocessing/tissue_probability.h"

namespace fs = std::filesystem;
namespace bm = brainage::model;
namespace bp = brainage::preprocessing;

namespace {

std::vector<std::string> split(const std::string& line, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream s(line);
  std::string field;
  while (std::getline(s, field, sep)) out.push_back(field);
  return out;
}

template <typename T>
std::vector<T> parse_list(const std::string& text) {
  std::vector<T> out;
  for (const auto& f : split(text)) out.push_back(static_cast<T>(std::stod(f)));
  return out;
}

/// The modulated CSF/GM/WM maps [3, 80, 96, 80] of one subject's folder, or an undefined
/// tensor when the folder has none or its scan failed QC. A `brainage preprocess` folder
/// (tissue_modulated_<t>_mni2mm.nii.gz) or one written by brainage_tissue_maps_cohort
/// (modulated_<t>.nii.gz).
torch::Tensor load_maps(const fs::path& dir) {
  const bool pipeline = fs::exists(dir / "tissue_modulated_gm_mni2mm.nii.gz");
  auto map_file = [&](const char* name) {
    return dir / (pipeline ? std::string("tissue_modulated_") + name + "_mni2mm.nii.gz"
                           : std::string("modulated_") + name + ".nii.gz");
  };
  if (!fs::exists(map_file("gm")) || !fs::exists(dir / "preprocess.json")) return {};
  std::ifstream pj(dir / "preprocess.json");
  if (!nlohmann::json::parse(pj).at("qc").at("passed").get<bool>()) return {};
  std::vector<torch::Tensor> channels;
  for (const char* name : bp::kTissueNames) {
    const auto values = bp::image_to_buffer(bp::read_image(map_file(name)));
    channels.push_back(torch::from_blob(const_cast<float*>(values.data()), {80, 96, 80}, torch::kFloat).clone());
  }
  return torch::stack(channels);
}

/// One kind of augmentation copy (--copies NAME=DIR): each subject's copy maps (undefined
/// where missing or QC-failed) and, after the folds, each held-out copy's predicted age.
struct CopyKind {
  std::string name;
  fs::path dir;
  bool trains = false;
  std::vector<torch::Tensor> maps;
  std::vector<double> corrected;  // NaN where the copy is missing
};

double mae(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += std::abs(a[i] - b[i]);
  return s / static_cast<double>(a.size());
}

}  // namespace

int main(int argc, char** argv) {
  fs::path participants, maps_dir, out_csv;
  std::vector<CopyKind> kinds;
  std::vector<std::string> train_with;
  int64_t folds = 5;
  uint64_t seed = 42;
  bm::VbmOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--participants") participants = next();
    else if (a == "--maps") maps_dir = next();
    else if (a == "--folds") folds = std::stoll(next());
    else if (a == "--seed") seed = std::stoull(next());
    else if (a == "--fwhm") options.fwhm_mm = parse_list<double>(next());
    else if (a == "--channels") options.channels = parse_list<int64_t>(next());
    else if (a == "--lambdas") options.lambdas = parse_list<double>(next());
    else if (a == "--stride") options.stride = std::stoll(next());
    else if (a == "--out") out_csv = next();
    else if (a == "--copies") {
      const auto spec = next();
      const auto eq = spec.find('=');
      if (eq == std::string::npos || eq == 0) {
        std::cerr << "--copies NAME=DIR, got '" << spec << "'\n";
        return 2;
      }
      kinds.push_back({spec.substr(0, eq), spec.substr(eq + 1)});
    } else if (a == "--train-with") train_with = split(next());
    else if (a == "--no-standardize") options.standardize = false;
    else if (a == "--symmetric") options.left_right_symmetric = true;
    else if (a == "--proportional-scaling") options.scaling = bm::VbmScaling::kTotalTissue;
    else if (a == "--scaling") options.scaling = bm::vbm_scaling_from_string(next());
    else {
      std::cerr << "usage: brainage_vbm_study --participants CSV --maps DIR [--folds 5] [--seed 42] [--fwhm 4,6,8] "
                   "[--channels 0,1,2] [--lambdas ...] [--stride 2] [--scaling none|proportional|parenchyma] [--symmetric] [--copies NAME=DIR ...] [--train-with NAME,...] "
                   "[--out predictions.csv]\n";
      return 2;
    }
  }
  bm::configure_threads(2);
  const auto start = std::chrono::steady_clock::now();
  std::ifstream in(participants);
  std::string line;
  std::getline(in, line);
  const auto header = split(line);
  int id_col = -1, age_col = -1;
  for (int c = 0; c < static_cast<int>(header.size()); ++c) {
    if (header[c] == "subject_id") id_col = c;
    if (header[c] == "age") age_col = c;
  }
  std::vector<std::string> ids;
  std::vector<double> ages;
  std::vector<torch::Tensor> volumes;
  while (std::getline(in, line)) {
    const auto f = split(line);
    const auto subject_maps = load_maps(maps_dir / f.at(id_col));
    if (!subject_maps.defined()) continue;
    volumes.push_back(subject_maps);
    for (auto& kind : kinds) kind.maps.push_back(load_maps(kind.dir / f.at(id_col)));
    ids.push_back(f.at(id_col));
    ages.push_back(std::stod(f.at(age_col)));
  }
  const auto maps = torch::stack(volumes);  // [N, 3, Z, Y, X]
  volumes.clear();
  for (const auto& name : train_with) {
    auto found = std::find_if(kinds.begin(), kinds.end(), [&](const CopyKind& k) { return k.name == name; });
    if (found == kinds.end()) {
      std::cerr << "--train-with " << name << ": no --copies " << name << "=DIR\n";
      return 2;
    }
    found->trains = true;
  }
  for (auto& kind : kinds) kind.corrected.assign(ids.size(), std::nan(""));
  std::printf("%zu QC-passed subjects with maps (%.1f s to load)\n", ids.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  std::fflush(stdout);

  std::vector<double> raw(ids.size()), corrected(ids.size());
  std::vector<int> fold_of(ids.size());
  for (int64_t fold = 0; fold < folds; ++fold) {
    bm::TrainOptions split_options;
    split_options.folds = folds;
    split_options.fold = fold;
    split_options.seed = seed;
    const auto [train, test] = bm::split_subjects(ages, split_options);
    std::vector<double> train_ages;
    for (auto i : train) train_ages.push_back(ages[i]);
    const auto t0 = std::chrono::steady_clock::now();
    bm::VbmAugmentation augmentation;
    std::vector<torch::Tensor> copies;
    for (const auto& kind : kinds)
      for (std::size_t row = 0; kind.trains && row < train.size(); ++row)
        if (kind.maps[train[row]].defined()) {
          copies.push_back(kind.maps[train[row]]);
          augmentation.subject_index.push_back(static_cast<int64_t>(row));
        }
    if (!copies.empty()) augmentation.maps = torch::stack(copies);
    copies.clear();
    const auto fit =
        bm::fit_vbm(maps.index_select(0, torch::tensor(train, torch::kLong)), train_ages, options, augmentation);
    for (auto& kind : kinds)
      for (auto i : test)
        if (kind.maps[i].defined()) kind.corrected[i] = fit.model.predict(kind.maps[i].unsqueeze(0))[0].item<double>();
    const auto test_maps = maps.index_select(0, torch::tensor(test, torch::kLong));
    const auto p_raw = fit.model.predict_raw(test_maps).contiguous();
    const auto p_cor = fit.model.predict(test_maps).contiguous();
    for (std::size_t k = 0; k < test.size(); ++k) {
      raw[test[k]] = p_raw[k].item<double>();
      corrected[test[k]] = p_cor[k].item<double>();
      fold_of[test[k]] = static_cast<int>(fold);
    }
    std::printf("fold %ld: fwhm %.0f mm, lambda %.3g, inner MAE %.2f, %ld features, %zu copies, fit %.1f s\n", fold,
                fit.model.fwhm_mm, fit.model.lambda_relative, fit.selection["chosen_inner_cv_mae"].get<double>(),
                fit.selection["features"].get<int64_t>(), augmentation.subject_index.size(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    std::fflush(stdout);
  }
  std::printf("%zu subjects, %ld-fold CV seed %lu: MAE %.2f y (r %.3f) bias-corrected; raw MAE %.2f y (r %.3f)\n",
              ids.size(), folds, seed, mae(corrected, ages), brainage::pearson(corrected, ages), mae(raw, ages),
              brainage::pearson(raw, ages));
  for (const auto& kind : kinds) {
    double sum = 0, sum_abs = 0, worst = 0;
    int n = 0, beyond_1 = 0, beyond_1_5 = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (std::isnan(kind.corrected[i])) continue;
      const double d = kind.corrected[i] - corrected[i];
      sum += d;
      sum_abs += std::abs(d);
      worst = std::max(worst, std::abs(d));
      beyond_1 += std::abs(d) > 1.0;
      beyond_1_5 += std::abs(d) > 1.5;
      ++n;
    }
    std::printf("copies '%s'%s: %d held-out copies, age change (copy - scan) mean %+.2f y, mean |.| %.2f, max |.| %.2f; "
                "beyond 1.0 y: %d, beyond 1.5 y: %d\n",
                kind.name.c_str(), kind.trains ? " (also trained on)" : "", n, n ? sum / n : 0.0, n ? sum_abs / n : 0.0,
                worst, beyond_1, beyond_1_5);
  }
  if (!out_csv.empty()) {
    std::ofstream o(out_csv);
    o << "subject_id,age,fold,predicted_raw,predicted_age";
    for (const auto& kind : kinds) o << ",predicted_" << kind.name;
    o << '\n';
    for (std::size_t i = 0; i < ids.size(); ++i) {
      o << ids[i] << ',' << ages[i] << ',' << fold_of[i] << ',' << raw[i] << ',' << corrected[i];
      for (const auto& kind : kinds) o << ',' << kind.corrected[i];
      o << '\n';
    }
  }
  return 0;
}
