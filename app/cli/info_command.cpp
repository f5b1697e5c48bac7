#include "app/cli/info_command.h"

#include <iostream>

#include "app/cli/cli.h"
#include "preprocessing/preprocess_pipeline.h"
#include "preprocessing/scan_info.h"
#include "preprocessing/scan_reader.h"

namespace brainage::app {

int run_info(const InfoOptions& options) {
  preprocessing::ScanValidationOptions validation;
  validation.allow_multivolume = true;  // info describes 4D files too, with a warning
  const auto scan = preprocessing::load_scan(options.scan, validation);
  auto info = preprocessing::describe_scan(scan);
  // The voxel-size rules of `preprocess`/`predict`, said before anyone waits for a refusal.
  if (const auto why = preprocessing::voxel_size_refusal(info.spacing); !why.empty())
    info.warnings.push_back("preprocess and predict will refuse this scan: " + why);
  if (options.json)
    std::cout << preprocessing::to_json(info).dump(2) << "\n";
  else
    std::cout << preprocessing::to_text(info);
  return 0;
}

int info_main(const std::vector<std::string>& args) {
  InfoOptions options;
  std::string scan;
  po::options_description desc("info options");
  desc.add_options()
    ("scan", po::value(&scan)->required(), "T1 scan: .nii, .nii.gz or a DICOM series folder")
    ("json", po::bool_switch(&options.json), "print JSON instead of text (default: text)");
  po::positional_options_description pos;
  pos.add("scan", 1);
  if (!parse_command_line("info", "<scan> [--json]", args, desc, pos)) return 0;
  options.scan = scan;
  return run_info(options);
}

}  // namespace brainage::app
