#include "app/cli/ensemble_command.h"

#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>

#include "app/cli/cli.h"
#include "common/atomic_file.h"
#include "common/csv.h"
#include "common/errors.h"
#include "model/ensemble.h"

namespace brainage::app {
namespace fs = std::filesystem;

namespace {

/// The members that held a subject out, as oof_predictions.csv's "member" field: "3", or
/// "3;7" with repeated partitions.
std::string join_members(const std::vector<int>& members) {
  std::string out;
  for (int k : members) out += (out.empty() ? "" : ";") + std::to_string(k);
  return out;
}

}  // namespace

int run_ensemble(const EnsembleCommandOptions& options) {
  if (options.output_dir.empty()) throw UsageError("ensemble: -o/--output DIR is required");
  if (options.members.size() < 2)
    throw UsageError("ensemble: at least 2 member folders are needed, got " + std::to_string(options.members.size()));
  // A refused assembly leaves no output folder behind (one that existed is left as it was).
  const bool existed = fs::exists(options.output_dir);
  ensure_writable_directory(options.output_dir);
  model::EnsembleSummary summary;
  try {
    summary = model::assemble_ensemble(options.members, options.output_dir / "model", options.combination);
  } catch (...) {
    std::error_code ignored;
    if (!existed && fs::is_empty(options.output_dir, ignored)) fs::remove(options.output_dir, ignored);
    throw;
  }
  std::ostringstream csv;
  csv << std::setprecision(6);
  const bool with_vbm = !summary.oof_vbm.empty();
  std::vector<std::string> header{"subject_id", "age", "predicted_age", "bias_corrected_age", "member"};
  if (with_vbm) header.insert(header.end(), {"transformer_age", "vbm_age"});
  csv << csv_record(header);
  const auto& oof = summary.oof;
  for (std::size_t i = 0; i < oof.ages.size(); ++i) {
    csv << csv_field(oof.subject_ids[i]) << ',' << oof.ages[i] << ',' << oof.predictions[i] << ','
        << summary.calibration.apply(oof.predictions[i]) << ',' << join_members(oof.members[i]);
    if (with_vbm) csv << ',' << summary.oof_transformer[i] << ',' << summary.oof_vbm[i];
    csv << '\n';
  }
  write_file_atomic(options.output_dir / "oof_predictions.csv", csv.str());
  const auto& raw = summary.metrics.at("oof_raw");
  const auto& corrected = summary.metrics.at("oof_bias_corrected");
  std::cout << "ensemble " << summary.model_id << " of " << options.members.size() << " members; out-of-fold on "
            << oof.ages.size() << " subjects: MAE " << std::fixed << std::setprecision(2)
            << raw.value("mae", std::nan("")) << " y raw, " << corrected.value("mae", std::nan(""))
            << " y bias-corrected (slope " << std::setprecision(3) << summary.calibration.slope << ", intercept "
            << std::setprecision(2) << summary.calibration.intercept << (summary.calibration.usable() ? "" : ", not applied")
            << std::defaultfloat << ")\n";
  if (with_vbm)
    std::cout << "VBM weight " << summary.vbm_weight
              << (options.combination.vbm_weight < 0 ? " (chosen on the out-of-fold predictions)" : "")
              << "; out-of-fold MAE transformers alone " << std::fixed << std::setprecision(2)
              << summary.metrics.at("oof_transformer_raw").value("mae", std::nan("")) << " y, VBM alone "
              << summary.metrics.at("oof_vbm_raw").value("mae", std::nan("")) << " y\n" << std::defaultfloat;
  std::cout << "routing records and maps from member " << summary.routing_member << "\n";
  std::cout << "model: " << summary.checkpoint.string() << "\n";
  return 0;
}

int ensemble_main(const std::vector<std::string>& args) {
  std::vector<std::string> members;
  std::string out, vbm, weight, routing;
  po::options_description desc("ensemble options");
  desc.add_options()
    ("members", po::value(&members)->multitoken(),
     "member training folders (model.{pt,json}, validation_predictions.csv), one per fold of one K-fold partition")
    ("output,o", po::value(&out)->required(),
     "output folder: model.json + model.member<k>.pt (the ensemble checkpoint), oof_predictions.csv")
    ("vbm", po::value(&vbm),
     "a `train --model-kind vbm` folder (model.{pt,json}, oof_predictions.csv) averaged with the transformers: "
     "age = (1 - w) * transformer mean + w * VBM age")
    ("vbm-weight", po::value(&weight)->default_value("cv"),
     "w in [0, 1], or cv: the w with the lowest out-of-fold MAE over 0, 0.1, ..., 1 (cv favours VBM heavily on "
     "the 149; the shipped default uses 0.5 so that ERMoE-ba keeps an equal share, docs/RESULTS.md)")
    ("routing-member", po::value(&routing)->default_value("balanced"),
     "the member whose routing records and expert maps predict reports: an index, or balanced: the member whose "
     "validation routing was most balanced (lowest expert-load CV)");
  po::positional_options_description pos;
  pos.add("members", -1);
  const auto vm = parse_command_line("ensemble", "<member dirs...> -o DIR", args, desc, pos);
  if (!vm) return 0;
  EnsembleCommandOptions o;
  for (const auto& m : members) o.members.emplace_back(m);
  o.output_dir = out;
  if (vm->count("vbm") && vbm.empty()) throw UsageError("--vbm: an empty folder name");
  o.combination.vbm_dir = vbm;
  if (weight != "cv") {
    try {
      std::size_t used = 0;
      o.combination.vbm_weight = std::stod(weight, &used);
      if (used != weight.size()) throw std::invalid_argument(weight);
    } catch (const std::exception&) {
      throw UsageError("--vbm-weight: '" + weight + "' is neither a number nor cv");
    }
    if (!(o.combination.vbm_weight >= 0.0 && o.combination.vbm_weight <= 1.0))
      throw UsageError("--vbm-weight: " + weight + " is outside [0, 1]");
    if (vbm.empty()) throw UsageError("--vbm-weight needs --vbm DIR");
  }
  if (routing != "balanced") {
    try {
      std::size_t used = 0;
      o.combination.routing_member = std::stoll(routing, &used);
      if (used != routing.size() || o.combination.routing_member < 0) throw std::invalid_argument(routing);
    } catch (const std::exception&) {
      throw UsageError("--routing-member: '" + routing + "' is neither a member index nor balanced");
    }
  }
  return run_ensemble(o);
}

}  // namespace brainage::app
