#include "app/prediction/preprocessed_scan.h"

#include <itkImageFileReader.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <thread>

#include "common/atomic_file.h"
#include "common/build_info.h"
#include "common/content_hash.h"
#include "common/errors.h"
#include "preprocessing/itk_factories.h"
#include "preprocessing/model_grid.h"

namespace brainage::prediction {
namespace fs = std::filesystem;

std::string preprocessing_pipeline_key(const preprocessing::PreprocessOptions& options) {
  const nlohmann::json key = {{"brainage_version", build_info::kVersion},
                              {"git_sha", build_info::kGitSha},
                              {"parameters", preprocessing::preprocess_parameters_json(options)}};
  return sha256_hex(key.dump()).substr(0, 16);
}

namespace {

const char* const kModulatedTissueFiles[] = {"tissue_modulated_csf_mni2mm.nii.gz", "tissue_modulated_gm_mni2mm.nii.gz",
                                             "tissue_modulated_wm_mni2mm.nii.gz"};
const char* const kCacheFiles[] = {"t1_mni2mm.nii.gz", "preprocess.json", kModulatedTissueFiles[0],
                                   kModulatedTissueFiles[1], kModulatedTissueFiles[2]};

/// The modulated CSF/GM/WM maps in `dir`; all null when any is missing (or not on the model grid).
std::array<preprocessing::ImageType::Pointer, 3> read_modulated_tissue(const fs::path& dir) {
  std::array<preprocessing::ImageType::Pointer, 3> maps{};
  std::error_code ec;
  for (int c = 0; c < 3; ++c)
    if (!fs::is_regular_file(dir / kModulatedTissueFiles[c], ec)) return {};
  for (int c = 0; c < 3; ++c) {
    maps[c] = preprocessing::read_image(dir / kModulatedTissueFiles[c]);
    if (!preprocessing::is_model_grid(maps[c])) return {};
  }
  return maps;
}

bool cache_complete(const fs::path& entry) {
  std::error_code ec;
  for (const char* f : kCacheFiles)
    if (!fs::is_regular_file(entry / f, ec)) return false;
  return true;
}

/// The flags a scan carries on: the pipeline's (each "QC failed: ..." when the scan failed
/// QC and that is accepted), the input's header warnings (qform/sform disagreement, a
/// sheared sform, extra volumes: "input: ..."), plus a note for a skull-stripped input.
std::vector<std::string> carried_flags(const nlohmann::json& report, std::vector<std::string> flags, bool qc_failed) {
  if (qc_failed)
    for (auto& f : flags) f = "QC failed: " + f;
  if (report.contains("warnings") && report["warnings"].is_array())
    for (const auto& w : report["warnings"])
      if (w.is_string()) flags.push_back("input: " + w.get<std::string>());
  if (report.contains("skull_stripped_input") && report["skull_stripped_input"].value("value", false))
    flags.push_back("input already skull-stripped");
  return flags;
}

void require_qc_passed(const fs::path& scan, bool passed, const std::vector<std::string>& flags, bool accept_failed) {
  if (passed || accept_failed) return;
  std::string text;
  for (const auto& f : flags) text += (text.empty() ? "" : "; ") + f;
  throw ProcessingError(scan.string() + ": preprocessing failed QC (" + text + ")");
}

/// Whether `scan` is a file whose header puts it on the model grid (header only, no voxels).
bool is_model_grid_file(const fs::path& scan) {
  std::error_code ec;
  if (!fs::is_regular_file(scan, ec)) return false;
  preprocessing::ensure_itk_factories();  // before any reader (thread safety, library messages)
  try {
    auto reader = itk::ImageFileReader<preprocessing::ImageType>::New();
    reader->SetFileName(scan.string());
    reader->UpdateOutputInformation();
    return preprocessing::is_model_grid(reader->GetOutput());
  } catch (const itk::ExceptionObject&) {
    return false;  // not readable as an image: the pipeline's validation reports it
  }
}

/// The input itself when it is a plain image on the model grid, else null (a scan that is
/// not is never read here: its header says so).
preprocessing::ImageType::Pointer model_grid_image(const fs::path& scan) {
  if (!is_model_grid_file(scan)) return nullptr;
  try {
    auto image = preprocessing::read_image(scan);
    return preprocessing::is_model_grid(image) ? image : nullptr;
  } catch (const Error&) {
    return nullptr;  // not readable as a plain image: the pipeline's validation reports it
  }
}

/// Stores a fresh result as a cache entry: a temporary folder renamed into place.
void store_in_cache(const preprocessing::PreprocessResult& result, const fs::path& cache_dir, const fs::path& entry) {
  ensure_writable_directory(cache_dir);
  std::error_code ec;
  const fs::path tmp = cache_dir / ("." + entry.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                                    std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id())));
  fs::remove_all(tmp, ec);
  try {
    preprocessing::write_preprocess_outputs(result, tmp);
  } catch (...) {  // e.g. disk full: no half-written entry left behind
    fs::remove_all(tmp, ec);
    throw;
  }
  fs::rename(tmp, entry, ec);  // fails when another job finished the same scan first: keep theirs
  if (ec) fs::remove_all(tmp, ec);
}

nlohmann::json read_cached_report(const fs::path& entry) {
  std::ifstream in(entry / "preprocess.json");
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception&) {
    throw InvalidInputError((entry / "preprocess.json").string() + ": cached preprocessing report is not JSON");
  }
}

}  // namespace

PreprocessedScan preprocess_for_model(const fs::path& scan, const PreprocessStepOptions& options) {
  std::error_code ec;
  if (!fs::exists(scan, ec)) throw InvalidInputError(scan.string() + ": file does not exist");
  PreprocessedScan out;
  out.scan = scan;
  if (options.accept_model_grid_input) {
    if (auto image = model_grid_image(scan)) {
      out.t1_model = image;
      if (options.read_tissue_maps) out.modulated_tissue = read_modulated_tissue(scan.parent_path());
      out.report = nlohmann::json::object();
      out.model_grid_input = true;
      return out;
    }
  }
  // A model-grid image (our t1_mni2mm.nii.gz) is already registered and normalised: run
  // through the pipeline again it is taken for a small raw scan and gets another age (IXI
  // scans: up to 8 y off, QC passed; fifteenth session). Only manifests of preprocessed
  // inputs (train) accept it.
  if (!options.accept_model_grid_input && is_model_grid_file(scan))
    throw InvalidInputError(scan.string() +
                            ": already a brainage model-grid image (80x96x80 voxels of 2 mm in MNI space, e.g. "
                            "t1_mni2mm.nii.gz); give the original scan, preprocessing it again would give a wrong age");
  if (!options.cache_dir.empty()) {
    out.cache_entry = options.cache_dir / (sha256_path_hex(scan).substr(0, 16) + "-" +
                                           preprocessing_pipeline_key(options.preprocess));
    if (cache_complete(out.cache_entry)) {
      out.from_cache = true;
      out.report = read_cached_report(out.cache_entry);
      const nlohmann::json qc = out.report.value("qc", nlohmann::json::object());
      const auto flags = qc.value("flags", std::vector<std::string>());
      const bool passed = qc.value("passed", true);
      require_qc_passed(scan, passed, flags, options.accept_failed_qc);
      out.qc_flags = carried_flags(out.report, flags, !passed);
      out.t1_model = preprocessing::read_image(out.cache_entry / "t1_mni2mm.nii.gz");
      if (options.read_tissue_maps) out.modulated_tissue = read_modulated_tissue(out.cache_entry);
      return out;
    }
  }
  out.result = preprocessing::preprocess_scan(scan, options.preprocess);
  out.fresh = true;
  if (!out.cache_entry.empty()) store_in_cache(out.result, options.cache_dir, out.cache_entry);
  require_qc_passed(scan, out.result.qc_passed, out.result.qc_flags, options.accept_failed_qc);
  out.report = out.result.report;
  out.qc_flags = carried_flags(out.report, out.result.qc_flags, !out.result.qc_passed);
  out.t1_model = out.result.t1_model;
  out.modulated_tissue = out.result.tissue_maps.modulated;
  return out;
}

void write_preprocessing_outputs(const PreprocessedScan& scan, const fs::path& dir) {
  if (scan.fresh) {
    preprocessing::write_preprocess_outputs(scan.result, dir);
    return;
  }
  if (scan.cache_entry.empty())
    throw InvalidInputError(scan.scan.string() + ": an input already on the model grid has no preprocessing outputs to write");
  ensure_writable_directory(dir);
  for (const auto& e : fs::directory_iterator(scan.cache_entry)) {
    const fs::path dst = dir / e.path().filename();
    write_via_temp(dst, [&](const fs::path& tmp) { fs::copy_file(e.path(), tmp); });
  }
}

}  // namespace brainage::prediction
