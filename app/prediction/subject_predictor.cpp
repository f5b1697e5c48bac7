#include "app/cohort/subject_predictor.h"

#include <torch/torch.h>

#include <fstream>
#include <thread>

#include "app/cohort/content_hash.h"
#include "common/atomic_file.h"
#include "common/build_info.h"
#include "common/errors.h"
#include "model/checkpoint.h"
#include "model/routing_stats.h"
#include "model/runtime.h"
#include "preprocessing/model_grid.h"
#include "viz/expert_maps.h"

namespace brainage::app {
namespace fs = std::filesystem;

std::string preprocessing_pipeline_key(const preprocessing::PreprocessOptions& o) {
  std::string text = std::string(build_info::kVersion) + "|" + build_info::kGitSha + "|" + o.template_dir.string() +
                     "|" + std::to_string(o.assume_skull_stripped) + std::to_string(o.detect_skull_stripped) +
                     std::to_string(o.skip_bias_correction) + "|" + std::to_string(o.min_brain_volume_ml) + "|" +
                     std::to_string(o.max_brain_volume_ml) + "|" + std::to_string(o.max_final_metric) + "|" +
                     std::to_string(o.max_affine_scale);
  return cohort::to_hex(cohort::fnv1a64(text)).substr(0, 8);
}

namespace {

const char* const kCacheFiles[] = {"t1_mni2mm.nii.gz", "preprocess.json"};

bool cache_complete(const fs::path& entry) {
  std::error_code ec;
  for (const char* f : kCacheFiles)
    if (!fs::is_regular_file(entry / f, ec)) return false;
  return true;
}

struct Preprocessed {
  preprocessing::ImageType::Pointer t1_model;
  nlohmann::json report;
  fs::path entry;
  bool cached = false;
};

/// Preprocesses `scan` into the cache (or reads the cached entry).
Preprocessed preprocess_cached(const fs::path& scan, const SubjectPredictorOptions& options) {
  std::error_code ec;
  if (!fs::exists(scan, ec)) throw InvalidInputError(scan.string() + ": file does not exist");
  const std::string key =
      cohort::to_hex(cohort::hash_file(scan)) + "-" + preprocessing_pipeline_key(options.preprocess);
  Preprocessed out;
  out.entry = options.cache_dir / key;
  if (!cache_complete(out.entry)) {
    preprocessing::PreprocessOptions po = options.preprocess;
    po.threads = options.threads_per_subject;
    const auto result = preprocessing::preprocess_scan(scan, po);
    ensure_writable_directory(options.cache_dir);
    const fs::path tmp = options.cache_dir /
                         ("." + key + ".tmp-" + std::to_string(::getpid()) + "-" +
                          std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id())));
    fs::remove_all(tmp, ec);
    try {
      preprocessing::write_preprocess_outputs(result, tmp);
    } catch (...) {  // e.g. disk full: no half-written entry left behind
      fs::remove_all(tmp, ec);
      throw;
    }
    fs::rename(tmp, out.entry, ec);  // fails when another job finished the same scan first: keep theirs
    if (ec) fs::remove_all(tmp, ec);
    out.t1_model = result.t1_model;
    out.report = result.report;
  } else {
    out.cached = true;
    out.t1_model = preprocessing::read_image(out.entry / "t1_mni2mm.nii.gz");
    std::ifstream in(out.entry / "preprocess.json");
    try {
      out.report = nlohmann::json::parse(in);
    } catch (const std::exception&) {
      throw InvalidInputError((out.entry / "preprocess.json").string() + ": cached preprocessing report is not JSON");
    }
  }
  return out;
}

}  // namespace

cohort::SubjectProcessor make_subject_predictor(const SubjectPredictorOptions& options) {
  struct Shared {
    model::LoadedModel loaded;
    std::mutex forward_mutex;  // one forward at a time: ~0.3 s against ~10 s of preprocessing
    std::string model_path;
  };
  auto shared = std::make_shared<Shared>();
  shared->loaded = model::load_checkpoint(options.model);
  shared->model_path = model::checkpoint_json_path(options.model).string();
  const auto& g = shared->loaded.info.model.grid;  // Z, Y, X
  const auto& m = preprocessing::kModelGridSize;   // x, y, z
  if (g[0] != m[2] || g[1] != m[1] || g[2] != m[0])
    throw ModelError(shared->model_path + ": the model expects a " + std::to_string(g[2]) + "x" + std::to_string(g[1]) +
                     "x" + std::to_string(g[0]) + " grid, preprocessing produces " + std::to_string(m[0]) + "x" +
                     std::to_string(m[1]) + "x" + std::to_string(m[2]));

  return [shared, options](const cohort::Subject& subject, const cohort::SubjectWorkspace& ws) {
    const Preprocessed pre = preprocess_cached(subject.scan, options);

    cohort::SubjectOutcome out;
    std::vector<std::string> flags;
    if (pre.report.contains("qc")) flags = pre.report["qc"].value("flags", std::vector<std::string>());
    const bool passed = pre.report.contains("qc") ? pre.report["qc"].value("passed", true) : true;
    if (!passed) {
      std::string text;
      for (const auto& f : flags) text += (text.empty() ? "" : "; ") + f;
      throw ProcessingError(subject.scan.string() + ": preprocessing failed QC (" + text + ")");
    }
    out.qc_flags = flags;
    if (pre.report.contains("skull_stripped_input") && pre.report["skull_stripped_input"].value("value", false))
      out.qc_flags.push_back("input already skull-stripped");
    if (fs::exists(pre.entry / "qc.png")) out.qc_image = pre.entry / "qc.png";

    std::vector<float> buffer = preprocessing::image_to_buffer(pre.t1_model);
    const auto& grid = shared->loaded.info.model.grid;
    double age = 0;
    nlohmann::json routing;
    {
      std::lock_guard<std::mutex> lock(shared->forward_mutex);
      // Every LibTorch call of a worker happens under this lock, the thread setting first:
      // LibTorch's and OpenBLAS's thread counts are process-wide, and changing them while
      // another worker runs a tensor operation (a BLAS call, or even a copy on the intra-op
      // pool) crashed `evaluate --jobs 2` (SIGSEGV, seen with a warm preprocessing cache,
      // where both workers reach this point at once). The tensor views `buffer`, which
      // outlives the forward.
      model::configure_threads(options.threads_per_subject);
      const torch::Tensor input =
          torch::from_blob(buffer.data(), {1, 1, grid[0], grid[1], grid[2]}, torch::kFloat32);
      torch::NoGradGuard no_grad;
      const auto output = shared->loaded.model->forward(input, /*with_routing=*/options.write_prediction_folder);
      age = output.age[0].item<double>();
      if (options.write_prediction_folder) routing = model::routing_summary(output, shared->loaded.info.model, 0);
    }
    out.predicted_age = age;
    out.details = {{"model_id", shared->loaded.info.model_id},
                   {"preprocessing_cache", pre.entry.filename().string()},
                   {"brain_volume_ml", pre.report.value("brain_volume_ml", 0.0)}};
    if (options.write_prediction_folder) {
      // The prediction folder of docs/ARCHITECTURE.md (what `brainage predict -o` writes),
      // then the expert maps into <subject>/maps, as `brainage predict --maps` does.
      for (const auto& e : fs::directory_iterator(pre.entry)) {
        const fs::path dst = ws.dir / e.path().filename();
        write_via_temp(dst, [&](const fs::path& tmp) { fs::copy_file(e.path(), tmp); });
      }
      const nlohmann::json pj = {{"scan", subject.scan.string()},
                                 {"predicted_age", age},
                                 {"bias_corrected_age", shared->loaded.info.bias_correction.apply(age)},
                                 {"model_id", shared->loaded.info.model_id},
                                 {"model", shared->model_path},
                                 {"qc_flags", out.qc_flags},
                                 {"routing", routing}};
      write_file_atomic(ws.dir / "prediction.json", pj.dump(2) + "\n");
      viz::MapsOptions maps;
      maps.prediction_dir = ws.dir;
      maps.output_dir = ws.dir / "maps";
      maps.render_3d = false;  // per cohort subject: label maps, tables and 2D figures; the 3D view is
                               // `brainage visualize <subject dir>` on the cases one looks at
      static std::mutex render_mutex;  // one VTK render at a time
      std::lock_guard<std::mutex> lock(render_mutex);
      try {  // the prediction stands when a figure cannot be drawn: the failure becomes a flag
        const auto report = viz::render_expert_maps(maps);
        for (const auto& w : report.warnings) out.qc_flags.push_back("maps: " + w);
      } catch (const Error& e) {
        out.qc_flags.push_back(std::string("maps failed: ") + e.what());
      }
    }
    return out;
  };
}

}  // namespace brainage::app
