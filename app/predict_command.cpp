#include "app/predict_command.h"

#include <unistd.h>

#include <chrono>
#include <iomanip>
#include <iostream>

#include "app/cli.h"
#include "app/visualize_command.h"
#include "common/atomic_file.h"
#include "common/build_info.h"
#include "common/errors.h"
#include "model/routing_stats.h"
#include "preprocessing/model_grid.h"
#include "preprocessing/preprocess_pipeline.h"

namespace brainage::app {
namespace fs = std::filesystem;

fs::path default_model_path() {
  std::vector<fs::path> tried;
  if (const char* env = std::getenv("BRAINAGE_MODEL")) tried.emplace_back(env);
  tried.push_back(fs::path(build_info::kSourceDir) / "data" / "model" / "brainage-default.json");
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) tried.push_back(exe.parent_path().parent_path() / "share" / "brainage" / "model" / "brainage-default.json");
  for (const auto& p : tried)
    if (fs::exists(model::checkpoint_json_path(p))) return model::checkpoint_json_path(p);
  std::string list;
  for (const auto& p : tried) list += (list.empty() ? "" : ", ") + p.string();
  throw ModelError(tried.front().string() + ": no default model found (tried " + list +
                   "); train one with `brainage train` and pass --model, or set BRAINAGE_MODEL");
}

nlohmann::json predict_volume(model::LoadedModel& loaded, const torch::Tensor& volume, const fs::path& model_path) {
  torch::NoGradGuard no_grad;
  loaded.model->eval();
  const auto t0 = std::chrono::steady_clock::now();
  const auto out = loaded.model->forward(volume, /*with_routing=*/true);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double age = out.age[0].item<double>();
  return {{"predicted_age", age},
          {"bias_corrected_age", loaded.info.bias_correction.apply(age)},
          {"bias_correction", {{"slope", loaded.info.bias_correction.slope},
                               {"intercept", loaded.info.bias_correction.intercept},
                               {"fitted", loaded.info.bias_correction.n > 0}}},
          {"model_id", loaded.info.model_id},
          {"model", fs::absolute(model_path).string()},
          {"forward_seconds", seconds},
          {"routing", model::routing_summary(out, loaded.info.model, 0)}};
}

int run_predict(const PredictOptions& options) {
  if (options.maps && options.output_dir.empty()) throw UsageError("predict: --maps needs -o DIR (the maps go to DIR/maps)");
  configure_all_threads(options.threads);
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path model_path = options.model.empty() ? default_model_path() : model::checkpoint_json_path(options.model);
  auto loaded = model::load_checkpoint(model_path);  // fail fast, before the slow preprocessing
  const auto& grid = loaded.info.model.grid;         // Z, Y, X
  const auto& g = preprocessing::kModelGridSize;     // x, y, z
  if (grid[0] != g[2] || grid[1] != g[1] || grid[2] != g[0])
    throw ModelError(model_path.string() + ": the model expects a " + std::to_string(grid[2]) + "x" +
                     std::to_string(grid[1]) + "x" + std::to_string(grid[0]) + " grid, preprocessing produces " +
                     std::to_string(g[0]) + "x" + std::to_string(g[1]) + "x" + std::to_string(g[2]));
  if (!options.output_dir.empty()) check_writable_directory(options.output_dir);  // before the slow part too
  const std::string expected_version = std::string("brainage-preprocess ") + build_info::kVersion;
  if (loaded.info.preprocessing_version != expected_version)
    std::cerr << "warning: " << model_path.string() << " was trained on inputs of '" << loaded.info.preprocessing_version
              << "', this build preprocesses with '" << expected_version << "'\n";

  preprocessing::PreprocessOptions pre_options;
  pre_options.assume_skull_stripped = options.assume_skull_stripped;
  pre_options.threads = options.threads;
  pre_options.render_qc = !options.output_dir.empty();
  const auto pre = preprocessing::preprocess_scan(options.scan, pre_options);
  if (!pre.qc_passed) {
    std::string flags;
    for (const auto& f : pre.qc_flags) flags += (flags.empty() ? "" : "; ") + f;
    throw ProcessingError(options.scan.string() + ": preprocessing failed QC (" + flags + ")");
  }
  const std::vector<float> buffer = preprocessing::image_to_buffer(pre.t1_model);
  const auto volume =
      torch::from_blob(const_cast<float*>(buffer.data()), {1, 1, grid[0], grid[1], grid[2]}, torch::kFloat32).clone();

  nlohmann::json prediction = {{"scan", fs::absolute(options.scan).lexically_normal().string()}};
  prediction.update(predict_volume(loaded, volume, model_path));
  prediction["qc_flags"] = pre.qc_flags;
  prediction["seconds_total"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (!options.output_dir.empty()) {
    ensure_writable_directory(options.output_dir);
    preprocessing::write_preprocess_outputs(pre, options.output_dir);
    write_file_atomic(options.output_dir / "prediction.json", prediction.dump(2) + "\n");
    if (options.maps) {
      // Hook for the expert maps: the same renderer `brainage visualize DIR` runs.
      VisualizeOptions vis;
      vis.input = options.output_dir;
      vis.maps.output_dir = options.output_dir / "maps";
      run_visualize(vis);
    }
  }
  if (options.json) {
    std::cout << prediction.dump(2) << "\n";
  } else {
    std::cout << std::fixed << std::setprecision(1) << "predicted age: " << prediction["predicted_age"].get<double>()
              << " years";
    if (loaded.info.bias_correction.n > 0)
      std::cout << " (bias-corrected: " << prediction["bias_corrected_age"].get<double>() << ")";
    std::cout << "\nmodel: " << loaded.info.model_id << "\n";
    if (!options.output_dir.empty()) std::cout << "outputs: " << options.output_dir.string() << "\n";
  }
  return 0;
}

int predict_main(const std::vector<std::string>& args) {
  PredictOptions o;
  std::string scan, output, model;
  po::options_description desc("predict options");
  desc.add_options()
    ("scan", po::value(&scan)->required(), "T1 scan: .nii, .nii.gz or a DICOM series folder")
    ("output,o", po::value(&output), "write preprocessing outputs + prediction.json here")
    ("model", po::value(&model), "checkpoint (.json, .pt or stem); default data/model/brainage-default.json")
    ("json", po::bool_switch(&o.json), "print the prediction JSON (age, model id, routing summary)")
    ("maps", po::bool_switch(&o.maps), "also render expert maps into DIR/maps (needs -o)")
    ("skull-stripped", po::bool_switch(&o.assume_skull_stripped), "the input is already brain-extracted")
    ("threads", po::value(&o.threads)->default_value(0), "threads (0 = all cores)");
  po::positional_options_description pos;
  pos.add("scan", 1);
  if (!parse_command_line("predict", "<scan> [-o DIR] [--model CKPT] [--json] [--maps]", args, desc, pos)) return 0;
  o.scan = scan;
  o.output_dir = output;
  o.model = model;
  return run_predict(o);
}

}  // namespace brainage::app
