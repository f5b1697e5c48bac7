#include "app/cli/preprocess_command.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "app/cli/cli.h"
#include "common/atomic_file.h"
#include "common/errors.h"

namespace brainage::app {

int run_preprocess(const PreprocessCommandOptions& options) {
  check_writable_directory(options.output);  // before minutes of work, not after
  const auto result = preprocessing::preprocess_scan(options.scan, options.pipeline);
  preprocessing::write_preprocess_outputs(result, options.output);
  if (options.json) {
    std::cout << result.report.dump(2) << "\n";
  } else {
    const auto& r = result.report;
    std::printf("scan          %s\n", options.scan.string().c_str());
    std::printf("outputs       %s\n", options.output.string().c_str());
    std::printf("skull-stripped input  %s (%s)\n", r["skull_stripped_input"]["value"].get<bool>() ? "yes" : "no",
                r["skull_stripped_input"]["reason"].get<std::string>().c_str());
    std::printf("brain volume  %.0f mL\n", r["brain_volume_ml"].get<double>());
    std::printf("registration  Mattes MI %.3f\n", r["registration"]["final_metric"].get<double>());
    std::printf("seconds       %s\n", r["seconds"].dump().c_str());
    std::printf("QC            %s\n", result.qc_passed ? "passed" : "FAILED");
    for (const auto& flag : result.qc_flags) std::printf("  - %s\n", flag.c_str());
  }
  if (!result.qc_passed) {
    std::string flags;
    for (const auto& f : result.qc_flags) flags += (flags.empty() ? "" : "; ") + f;
    throw ProcessingError(options.scan.string() + ": preprocessing failed QC (" + flags + "); outputs written to " +
                          options.output.string());
  }
  return 0;
}

int preprocess_main(const std::vector<std::string>& args) {
  PreprocessCommandOptions options;
  const preprocessing::PreprocessOptions defaults;
  auto iterations_text = [](const std::vector<unsigned>& levels) {
    std::string text;
    for (unsigned n : levels) text += (text.empty() ? "" : " ") + std::to_string(n);
    return text;
  };
  std::string scan, output, template_dir = defaults.template_dir.string(), brain_pass = to_string(defaults.brain_pass.when),
              focused_pass = to_string(defaults.focused_pass.when);
  bool no_detect = false, no_qc_png = false;
  po::options_description desc("preprocess options");
  desc.add_options()
    ("scan", po::value(&scan)->required(), "T1 scan: .nii, .nii.gz or a DICOM series folder")
    ("output,o", po::value(&output)->required(), "output folder (created)")
    ("skull-stripped", po::bool_switch(&options.pipeline.assume_skull_stripped),
     "the input is already skull-stripped: do not strip again (default: auto-detect)")
    ("no-skull-strip-detection", po::bool_switch(&no_detect), "never auto-detect skull-stripped inputs")
    ("skip-bias-correction", po::bool_switch(&options.pipeline.skip_bias_correction),
     "skip N4 (input already bias-corrected)")
    ("bias-shrink-mm", po::value(&options.pipeline.bias.shrink_to_mm)->default_value(defaults.bias.shrink_to_mm),
     "N4 fits the bias field on a copy of about this voxel size (mm)")
    ("bias-iterations", po::value(&options.pipeline.bias.iterations)->multitoken()->default_value(
                            defaults.bias.iterations, iterations_text(defaults.bias.iterations)),
     "N4 iterations per fitting level, e.g. --bias-iterations 50 50 30 (one level per value)")
    ("brain-bias-iterations", po::value(&options.pipeline.brain_bias.iterations)->multitoken()->default_value(
                                  defaults.brain_bias.iterations, iterations_text(defaults.brain_bias.iterations)),
     "iterations per fitting level of the second N4, fitted inside the brain mask (one level per value)")
    ("focused-pass", po::value(&focused_pass)->default_value(focused_pass),
     "re-register with the metric on the brain + 3 mm: on-failure (when the first registration fails QC) | always | off")
    ("brain-pass", po::value(&brain_pass)->default_value(brain_pass),
     "re-register the scan cut by its brain mask against ch2bet: always | on-failure | off")
    ("threads", po::value(&options.pipeline.threads)->default_value(defaults.threads),
     "threads (0 = all cores)")
    ("template-dir", po::value(&template_dir)->default_value(template_dir),
     "folder with Colin27 ch2.nii.gz and ch2bet.nii.gz")
    ("min-brain-ml", po::value(&options.pipeline.min_brain_volume_ml)->default_value(defaults.min_brain_volume_ml),
     "QC: smallest plausible brain volume (mL)")
    ("max-brain-ml", po::value(&options.pipeline.max_brain_volume_ml)->default_value(defaults.max_brain_volume_ml),
     "QC: largest plausible brain volume (mL)")
    ("no-qc-png", po::bool_switch(&no_qc_png), "do not render qc.png")
    ("json", po::bool_switch(&options.json), "print preprocess.json instead of a summary");
  po::positional_options_description pos;
  pos.add("scan", 1);
  if (!parse_command_line("preprocess", "<scan> -o <dir> [options]", args, desc, pos)) return 0;
  options.scan = scan;
  options.output = output;
  options.pipeline.template_dir = template_dir;
  options.pipeline.detect_skull_stripped = !no_detect;
  options.pipeline.render_qc = !no_qc_png;
  auto pass_when = [](const std::string& flag, const std::string& value) {
    try {
      return preprocessing::pass_when_from_string(value);
    } catch (const InvalidInputError& e) {
      throw UsageError("--" + flag + ": " + e.what());
    }
  };
  options.pipeline.focused_pass.when = pass_when("focused-pass", focused_pass);
  options.pipeline.brain_pass.when = pass_when("brain-pass", brain_pass);
  // N4 needs at least one fitting level of at least one iteration (ITK otherwise fails
  // deep inside with "Input Primary is required but not set").
  for (const auto& [flag, levels] : {std::pair{"bias-iterations", &options.pipeline.bias.iterations},
                                     std::pair{"brain-bias-iterations", &options.pipeline.brain_bias.iterations}})
    if (levels->empty() || std::find(levels->begin(), levels->end(), 0u) != levels->end())
      throw UsageError(std::string("--") + flag + " needs one or more fitting levels, each of at least 1 iteration");
  if (!(options.pipeline.bias.shrink_to_mm > 0))
    throw UsageError("--bias-shrink-mm must be > 0 mm, got " + std::to_string(options.pipeline.bias.shrink_to_mm));
  configure_all_threads(options.pipeline.threads);
  return run_preprocess(options);
}

}  // namespace brainage::app
