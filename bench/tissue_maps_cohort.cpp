// brainage_tissue_maps_cohort: the soft tissue maps (preprocessing/tissue_probability.h) of a
// whole cohort, for the VBM study (docs/RESULTS.md, "VBM model"). Per subject of a
// participants CSV (subject_id,age,...,t1,... as ../shared/data/ixi-hh-2mm/participants.csv):
//   1. unless <out>/<id>/preprocess.json exists: the pipeline (preprocess_scan, no qc.png),
//      its usual outputs plus corrected_native.nii.gz (the bias-corrected scan) in <out>/<id>;
//   2. the maps from those files: P(CSF/GM/WM) at the scan's resolution inside the brain
//      mask, carried to the model grid and modulated -> <out>/<id>/modulated_{csf,gm,wm}.nii.gz,
//      and one line of <out>/<id>/tissue.json (volumes, determinant, EM fit).
// Step 2 alone is re-run (seconds per subject) when only the tissue options change.
//
//   brainage_tissue_maps_cohort --participants CSV --out DIR [--shard I/N] [--threads 1]
//                               [--tissue-model linear-unmixing|gaussian-mixture]
//                               [--no-partial-volume] [--maps-only]
// Links brainage_preprocessing only.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <itkMultiThreaderBase.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "preprocessing/canonical_orientation.h"
#include "preprocessing/model_grid.h"
#include "preprocessing/preprocess_pipeline.h"
#include "preprocessing/tissue_probability.h"

namespace fs = std::filesystem;
using namespace brainage::preprocessing;

namespace {

struct Options {
  fs::path participants, out;
  int shard = 0, shards = 1;  // this process takes rows i with i % shards == shard. Default = 0/1.
  int threads = 1;            // ITK threads. Default = 1 (run one process per core).
  TissueModel model = TissueModel::kLinearUnmixing;  // Default = linear unmixing (TissueProbabilityOptions).
  bool partial_volume = true;  // Gaussian mixture's mixed classes. Default = true (TissueProbabilityOptions).
  bool maps_only = false;      // never preprocess; subjects without outputs are skipped. Default = false.
};

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream s(line);
  std::string field;
  while (std::getline(s, field, ',')) out.push_back(field);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--participants") o.participants = next();
    else if (a == "--out") o.out = next();
    else if (a == "--shard") std::sscanf(next().c_str(), "%d/%d", &o.shard, &o.shards);
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--no-partial-volume") o.partial_volume = false;
    else if (a == "--tissue-model" && i + 1 < argc) {
      const std::string m = next();
      if (m != "linear-unmixing" && m != "gaussian-mixture") {
        std::cerr << "--tissue-model: linear-unmixing or gaussian-mixture, not '" << m << "'\n";
        return 2;
      }
      o.model = m == "linear-unmixing" ? TissueModel::kLinearUnmixing : TissueModel::kGaussianMixture;
    }
    else if (a == "--maps-only") o.maps_only = true;
    else {
      std::cerr << "usage: brainage_tissue_maps_cohort --participants CSV --out DIR [--shard I/N] [--threads 1] "
                   "[--tissue-model linear-unmixing|gaussian-mixture] [--no-partial-volume] [--maps-only]\n";
      return 2;
    }
  }
  if (o.participants.empty() || o.out.empty()) {
    std::cerr << "--participants and --out are required\n";
    return 2;
  }
  itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(o.threads);
  std::ifstream in(o.participants);
  std::string line;
  std::getline(in, line);
  const auto header = split(line);
  int id_col = -1, t1_col = -1;
  for (int c = 0; c < static_cast<int>(header.size()); ++c) {
    if (header[c] == "subject_id") id_col = c;
    if (header[c] == "t1") t1_col = c;
  }
  if (id_col < 0 || t1_col < 0) {
    std::cerr << o.participants << ": needs columns subject_id and t1\n";
    return 3;
  }
  int row = -1, failed = 0;
  while (std::getline(in, line)) {
    ++row;
    if (row % o.shards != o.shard) continue;
    const auto f = split(line);
    const std::string id = f.at(id_col);
    const fs::path dir = o.out / id;
    const auto start = std::chrono::steady_clock::now();
    try {
      if (!fs::exists(dir / "preprocess.json")) {
        if (o.maps_only) continue;
        PreprocessOptions po;
        po.threads = o.threads;
        po.render_qc = false;
        const auto result = preprocess_scan(o.participants.parent_path() / f.at(t1_col), po);
        fs::create_directories(dir);
        write_image(result.corrected_native, dir / "corrected_native.nii.gz");
        write_preprocess_outputs(result, dir);
      }
      const auto corrected = read_image(dir / "corrected_native.nii.gz");
      const auto mask = resample_mask_to_grid(read_mask(dir / "brain_mask_native.nii.gz"), corrected);
      const auto mni_to_native = read_mni_to_native_transform(dir / "native_to_mni.tfm");
      const auto t0 = std::chrono::steady_clock::now();
      TissueProbabilityOptions to;
      to.model = o.model;
      to.partial_volume = o.partial_volume;
      const auto probs = estimate_tissue_probabilities(corrected, mask, to);
      const auto maps = tissue_maps_to_model_grid(probs.probabilities, mni_to_native);
      const double map_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (int c = 0; c < 3; ++c)
        write_image(maps.modulated[c], dir / (std::string("modulated_") + kTissueNames[c] + ".nii.gz"));
      nlohmann::json j = {{"volumes_ml", probs.volumes_ml},
                          {"modulated_totals_ml", maps.modulated_totals_ml},
                          {"jacobian_determinant", maps.jacobian_determinant},
                          {"means", probs.means},
                          {"sds", probs.sds},
                          {"em_iterations", probs.iterations},
                          {"tissue_model", tissue_model_name(o.model)},
                          {"partial_volume", o.partial_volume},
                          {"seconds", map_seconds}};
      brainage::write_file_atomic(dir / "tissue.json", j.dump() + "\n");
      std::printf("%s gm %.1f wm %.1f csf %.1f mL, det %.3f, maps %.2f s, total %.1f s\n", id.c_str(),
                  probs.volumes_ml[1], probs.volumes_ml[2], probs.volumes_ml[0], maps.jacobian_determinant, map_seconds,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      std::fflush(stdout);
    } catch (const std::exception& e) {
      ++failed;
      std::printf("%s FAILED: %s\n", id.c_str(), e.what());
    }
  }
  return failed == 0 ? 0 : 7;
}
