#include "app/cli/predict_command.h"

#include <unistd.h>

#include <iomanip>
#include <iostream>

#include "app/cli/cli.h"
#include "app/cli/visualize_command.h"
#include "common/atomic_file.h"
#include "common/build_info.h"
#include "common/errors.h"
#include "app/prediction/scan_prediction.h"
#include "common/x_display.h"

namespace brainage::app {
namespace fs = std::filesystem;

fs::path default_model_path() {
  // $BRAINAGE_MODEL, when set, is the model: a wrong path is an error, never the bundled
  // default in its place (a cluster script would get another model's ages).
  if (const char* env = std::getenv("BRAINAGE_MODEL"); env && *env) {
    const fs::path named = model::checkpoint_json_path(env);
    if (!fs::exists(named))
      throw ModelError(std::string("BRAINAGE_MODEL=") + env + ": checkpoint not found (" + named.string() +
                       "); fix the variable or unset it for the bundled default");
    return named;
  }
  std::vector<fs::path> tried;
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

int run_predict(const PredictOptions& options) {
  if (options.maps && options.output_dir.empty()) throw UsageError("predict: --maps needs -o DIR (the maps go to DIR/maps)");
  configure_all_threads(options.threads);
  const fs::path model_path = options.model.empty() ? default_model_path() : model::checkpoint_json_path(options.model);
  prediction::Predictor predictor(model_path);  // fail fast, before the slow preprocessing
  if (options.maps && !predictor.has_routing())
    throw UsageError("predict: --maps draws the experts' routing, and " + model_path.string() + " is a " +
                     predictor.model_kind() + " model without experts (its inputs are the tissue maps in -o DIR)");
  if (!options.output_dir.empty()) check_writable_directory(options.output_dir);  // before the slow part too
  const std::string expected_version = prediction::preprocessing_version();
  if (predictor.info().preprocessing_version != expected_version)
    std::cerr << "warning: " << model_path.string() << " was trained on inputs of '"
              << predictor.info().preprocessing_version << "', this build preprocesses with '" << expected_version
              << "'\n";
  if (options.maps) ensure_x_display();  // the 3D view: a private Xvfb on a headless machine

  prediction::ScanPredictionOptions o;
  o.preprocess.preprocess.assume_skull_stripped = options.assume_skull_stripped;
  o.preprocess.preprocess.threads = options.threads;
  o.preprocess.preprocess.render_qc = !options.output_dir.empty();
  o.output_dir = options.output_dir;
  const auto record = prediction::predict_scan(predictor, options.scan, o);
  if (options.maps) {
    // The expert maps: the same renderer `brainage visualize DIR` runs.
    VisualizeOptions vis;
    vis.input = options.output_dir;
    vis.maps.output_dir = options.output_dir / "maps";
    run_visualize(vis);
  }
  // Flags (a header that needed a decision, an input already stripped, an age outside the
  // training range, ...) on stderr, so no one reads the age without them.
  for (const auto& flag : record.qc_flags) std::cerr << "warning: " << options.scan.string() << ": " << flag << "\n";
  if (options.json) {
    std::cout << prediction::prediction_json(record).dump(2) << "\n";
  } else {
    std::cout << std::fixed << std::setprecision(1) << "predicted age: " << record.predicted_age << " years";
    if (record.bias_correction.usable()) std::cout << " (bias-corrected: " << record.bias_corrected_age << ")";
    std::cout << "\nmodel: " << record.model_id << "\n";
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
    ("model", po::value(&model)->notifier(require_model_named), "checkpoint (.json, .pt, stem, or a train/ensemble output folder); default data/model/brainage-default.json")
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
