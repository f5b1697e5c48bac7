#include "model/ensemble.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "common/csv.h"
#include "common/errors.h"
#include "model/checkpoint.h"
#include "model/trainer.h"
#include "model/vbm_model.h"

namespace brainage::model {
namespace fs = std::filesystem;

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

double parse_number(const std::string& text, const fs::path& csv, std::size_t line, const char* column) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw ModelError(csv.string() + ": line " + std::to_string(line) + ": " + column + " '" + text +
                   "' is not a finite number");
}

/// MAE, RMSE and Pearson r of `predictions` against `ages` (years).
nlohmann::json error_metrics(const std::vector<double>& ages, const std::vector<double>& predictions) {
  double abs_sum = 0, sq_sum = 0;
  for (std::size_t i = 0; i < ages.size(); ++i) {
    const double e = predictions[i] - ages[i];
    abs_sum += std::abs(e);
    sq_sum += e * e;
  }
  const double n = static_cast<double>(ages.size());
  return {{"mae", abs_sum / n}, {"rmse", std::sqrt(sq_sum / n)}, {"r", pearson(ages, predictions)}};
}

/// Why member `k` (`dir`) cannot join member 0, or "".
std::string mismatch(const CheckpointInfo& first, const CheckpointInfo& info) {
  if (info.model.grid != first.model.grid) return "its grid differs from member 0's";
  if (info.model.channels != first.model.channels)
    return "its channels " + join(info.model.channels) + " differ from member 0's " + join(first.model.channels);
  if (info.model.global_input != first.model.global_input)
    return "its global input " + to_string(info.model.global_input) + " differs from member 0's " +
           to_string(first.model.global_input);
  if (info.preprocessing_version != first.preprocessing_version)
    return "its preprocessing_version '" + info.preprocessing_version + "' differs from member 0's '" +
           first.preprocessing_version + "'";
  return "";
}

/// One row of a predictions CSV (subject_id, age, predicted_age).
struct PredictionRow {
  std::string subject_id;
  double age = 0;        // years
  double predicted = 0;  // years
};

/// The rows of `csv` (columns subject_id, age, predicted_age; others ignored). Throws
/// ModelError naming the file: unreadable, a missing column, a short row, a bad number.
std::vector<PredictionRow> read_prediction_csv(const fs::path& csv) {
  CsvTable table;
  try {
    table = read_delimited_file(csv);
  } catch (const InvalidInputError& e) {
    throw ModelError(e.what());
  }
  const int id = column_index(table.header, "subject_id");
  const int age = column_index(table.header, "age");
  const int pred = column_index(table.header, "predicted_age");
  if (id < 0 || age < 0 || pred < 0) throw ModelError(csv.string() + ": needs the columns subject_id, age, predicted_age");
  std::vector<PredictionRow> rows;
  for (std::size_t r = 0; r < table.rows.size(); ++r) {
    const auto& row = table.rows[r];
    const std::size_t line = table.line_numbers[r];
    if (row.size() != table.header.size())
      throw ModelError(csv.string() + ": line " + std::to_string(line) + " has " + std::to_string(row.size()) +
                       " fields, the header has " + std::to_string(table.header.size()));
    rows.push_back({row[static_cast<std::size_t>(id)], parse_number(row[static_cast<std::size_t>(age)], csv, line, "age"),
                    parse_number(row[static_cast<std::size_t>(pred)], csv, line, "predicted_age")});
  }
  return rows;
}

}  // namespace

OutOfFoldPredictions read_out_of_fold_predictions(const std::vector<fs::path>& member_dirs,
                                                  const std::vector<std::string>& partitions) {
  const auto partition_of = [&](std::size_t k) { return partitions.empty() ? std::string() : partitions.at(k); };
  OutOfFoldPredictions oof;
  std::map<std::string, std::size_t> row_of;                         // subject -> index in oof
  std::map<std::pair<std::string, std::string>, int> held_out_by;  // (partition, subject) -> member
  std::map<std::string, int> partition_members;                     // partition -> its first member
  std::vector<double> sums;
  for (std::size_t k = 0; k < member_dirs.size(); ++k) {
    const fs::path csv = member_dirs[k] / "validation_predictions.csv";
    if (!fs::exists(csv))
      throw ModelError(csv.string() + ": member " + std::to_string(k) +
                       " has no validation predictions (train it with a validation fold: --folds K --fold k)");
    partition_members.emplace(partition_of(k), static_cast<int>(k));
    for (const auto& row : read_prediction_csv(csv)) {
      const auto [held, first] = held_out_by.emplace(std::make_pair(partition_of(k), row.subject_id), static_cast<int>(k));
      if (!first)
        throw ModelError(csv.string() + ": subject '" + row.subject_id + "' is held out by member " +
                         std::to_string(held->second) + " and member " + std::to_string(k) +
                         ": the members do not share one K-fold partition (train them with the same --split-seed)");
      const auto [at, fresh] = row_of.emplace(row.subject_id, oof.subject_ids.size());
      if (fresh) {
        oof.subject_ids.push_back(row.subject_id);
        oof.ages.push_back(row.age);
        oof.members.emplace_back();
        sums.push_back(0.0);
      } else if (std::abs(oof.ages[at->second] - row.age) > 0.01) {
        throw ModelError(csv.string() + ": subject '" + row.subject_id + "' is " + std::to_string(row.age) +
                         " y old there and " + std::to_string(oof.ages[at->second]) + " y for member " +
                         std::to_string(oof.members[at->second].front()));
      }
      oof.members[at->second].push_back(static_cast<int>(k));
      sums[at->second] += row.predicted;
    }
  }
  for (std::size_t i = 0; i < sums.size(); ++i) {
    if (oof.members[i].size() != partition_members.size()) {
      std::string lacking;  // the partitions in which no member held the subject out
      for (const auto& [name, first_member] : partition_members)
        if (!held_out_by.count({name, oof.subject_ids[i]}))
          lacking += (lacking.empty() ? "" : ", ") + std::string("member ") + std::to_string(first_member);
      throw ModelError("subject '" + oof.subject_ids[i] + "' is held out in " + std::to_string(oof.members[i].size()) +
                       " of the members' " + std::to_string(partition_members.size()) +
                       " K-fold partitions, not in that of " + lacking +
                       " (its split seed and fold count): a member of that partition is missing");
    }
    oof.predictions.push_back(sums[i] / static_cast<double>(oof.members[i].size()));
  }
  return oof;
}

std::map<std::string, std::pair<double, double>> read_vbm_out_of_fold_predictions(const fs::path& vbm_dir) {
  const fs::path csv = vbm_dir / "oof_predictions.csv";
  if (!fs::exists(csv))
    throw ModelError(csv.string() + ": the VBM folder has no out-of-fold predictions (fit it with this build's "
                     "`brainage train --model-kind vbm`)");
  std::map<std::string, std::pair<double, double>> out;
  for (const auto& row : read_prediction_csv(csv))
    if (!out.emplace(row.subject_id, std::make_pair(row.age, row.predicted)).second)
      throw ModelError(csv.string() + ": subject '" + row.subject_id + "' appears twice");
  return out;
}

namespace {

/// The VBM checkpoint of `vbm_dir`, verified, and checked against the members' grid and
/// preprocessing. Throws ModelError naming it.
/// The training scans' CSF/WM contrast range (training.data.tissue_contrast, which predict's
/// contrast check reads): members trained before it was recorded lack it; the VBM part's is
/// taken instead when it was fitted on the same subjects (its scans are the same scans).
void adopt_vbm_tissue_contrast(nlohmann::json& ensemble_data, const nlohmann::json& vbm_training) {
  const auto vbm_data = vbm_training.value("data", nlohmann::json::object());
  if (ensemble_data.contains("tissue_contrast") || !vbm_data.contains("tissue_contrast")) return;
  auto sorted_ids = [](const nlohmann::json& ids) {
    auto v = ids.is_array() ? ids.get<std::vector<std::string>>() : std::vector<std::string>{};
    std::sort(v.begin(), v.end());
    return v;
  };
  const auto ours = sorted_ids(ensemble_data.value("subject_ids", nlohmann::json()));
  if (!ours.empty() && ours == sorted_ids(vbm_training.value("subject_ids", nlohmann::json())))
    ensemble_data["tissue_contrast"] = vbm_data["tissue_contrast"];
}

LoadedModel load_vbm_member(const fs::path& vbm_dir, const CheckpointInfo& member0) {
  const fs::path json = vbm_dir / "model.json";
  const std::string who = "ensemble VBM model (" + json.string() + "): ";
  LoadedModel loaded;
  try {
    loaded = load_checkpoint(json, /*accept_vbm=*/true);
  } catch (const ModelError& e) {
    throw ModelError(who + e.what());
  }
  if (loaded.info.model_kind != kVbmModelKind)
    throw ModelError(who + "is a checkpoint of kind \"" + loaded.info.model_kind +
                     "\", not a VBM model (train --model-kind vbm)");
  if (loaded.info.model.grid != member0.model.grid) throw ModelError(who + "its grid differs from the transformers'");
  if (loaded.info.preprocessing_version != member0.preprocessing_version)
    throw ModelError(who + "its preprocessing_version '" + loaded.info.preprocessing_version +
                     "' differs from the transformers' '" + member0.preprocessing_version + "'");
  return loaded;
}

/// (1 − w) · a + w · b, element-wise.
std::vector<double> weighted(const std::vector<double>& a, const std::vector<double>& b, double w) {
  std::vector<double> out(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) out[i] = (1.0 - w) * a[i] + w * b[i];
  return out;
}

/// {max_abs_years, p99_abs_years, subjects}: how far the transformer part's and the VBM
/// part's out-of-fold ages lie apart on the training subjects (metrics.oof_part_difference;
/// docs/ROBUSTNESS.md, twenty-second session: too wide to refuse scans by).
nlohmann::json part_difference_summary(const std::vector<double>& transformer, const std::vector<double>& vbm) {
  std::vector<double> differences;
  for (std::size_t i = 0; i < transformer.size(); ++i) differences.push_back(std::abs(transformer[i] - vbm[i]));
  std::sort(differences.begin(), differences.end());
  const auto at = [&](double q) {
    return differences[static_cast<std::size_t>(std::floor(q * static_cast<double>(differences.size() - 1)))];
  };
  return {{"max_abs_years", differences.back()}, {"p99_abs_years", at(0.99)}, {"subjects", differences.size()}};
}

/// The VBM part of assemble_ensemble: summary.oof_vbm (the VBM model's OOF age of every
/// subject the members held out, ages checked), summary.vbm_weight (options.vbm_weight, or
/// the lowest-MAE w of 0, 0.1, ..., 1) and the combined summary.oof.predictions. Returns
/// the scan [{vbm_weight, oof_mae}]. Throws ModelError naming the file or the output.
nlohmann::json combine_with_vbm(const EnsembleOptions& options, const fs::path& output_stem, EnsembleSummary& summary) {
  const auto& oof = summary.oof;
  nlohmann::json weight_scan = nlohmann::json::array();
  const auto vbm_oof = read_vbm_out_of_fold_predictions(options.vbm_dir);
  const fs::path vbm_csv = options.vbm_dir / "oof_predictions.csv";
  for (std::size_t i = 0; i < oof.ages.size(); ++i) {
    const auto it = vbm_oof.find(oof.subject_ids[i]);
    if (it == vbm_oof.end())
      throw ModelError(vbm_csv.string() + ": no out-of-fold prediction of subject '" + oof.subject_ids[i] +
                       "' (fit the VBM model on the same subjects as the members)");
    const auto [vbm_age, vbm_prediction] = it->second;
    if (std::abs(vbm_age - oof.ages[i]) > 0.01)
      throw ModelError(vbm_csv.string() + ": subject '" + oof.subject_ids[i] + "' is " + std::to_string(vbm_age) +
                       " y old there and " + std::to_string(oof.ages[i]) +
                       " y in the members' predictions (fit both on the same manifest)");
    summary.oof_vbm.push_back(vbm_prediction);
  }
  if (options.vbm_weight > 1.0)
    throw ModelError(output_stem.string() + ": VBM weight " + std::to_string(options.vbm_weight) + " is outside [0, 1]");
  double best_mae = std::numeric_limits<double>::infinity();
  for (int step = 0; step <= 10; ++step) {
    const double w = step / 10.0;
    const double mae = error_metrics(oof.ages, weighted(summary.oof_transformer, summary.oof_vbm, w)).at("mae");
    weight_scan.push_back({{"vbm_weight", w}, {"oof_mae", mae}});
    if (options.vbm_weight < 0 && mae < best_mae - 1e-12) {
      best_mae = mae;
      summary.vbm_weight = w;
    }
  }
  if (options.vbm_weight >= 0) summary.vbm_weight = options.vbm_weight;
  summary.oof.predictions = weighted(summary.oof_transformer, summary.oof_vbm, summary.vbm_weight);
  return weight_scan;
}

/// `requested` when ≥ 0 (checked against the member count), else the member with the lowest
/// validation per-scan expert-load CV (training["val_scan_load_cv"]) when every member
/// recorded it, else the lowest cohort-wide one ("val_load_cv"); 0 when none recorded either.
int64_t choose_routing_member(const std::vector<EnsembleMemberInfo>& members, int64_t requested,
                              const fs::path& output_stem) {
  const auto count = static_cast<int64_t>(members.size());
  if (requested >= count)
    throw ModelError(output_stem.string() + ": routing member " + std::to_string(requested) +
                     " is not a member index (0.." + std::to_string(count - 1) + ")");
  if (requested >= 0) return requested;
  const bool per_scan = std::all_of(members.begin(), members.end(), [](const EnsembleMemberInfo& m) {
    return m.training.contains("val_scan_load_cv") && m.training["val_scan_load_cv"].is_number();
  });
  const char* key = per_scan ? "val_scan_load_cv" : "val_load_cv";
  int64_t best = 0;
  double best_cv = std::numeric_limits<double>::infinity();
  for (int64_t k = 0; k < count; ++k) {
    const auto& training = members[static_cast<std::size_t>(k)].training;
    if (!training.contains(key) || !training[key].is_number()) continue;
    const double cv = training[key].get<double>();
    if (cv < best_cv) {
      best_cv = cv;
      best = k;
    }
  }
  return best;
}

}  // namespace

EnsembleSummary assemble_ensemble(const std::vector<fs::path>& member_dirs, const fs::path& output_stem,
                                  const EnsembleOptions& options) {
  const int64_t k_members = static_cast<int64_t>(member_dirs.size());
  if (k_members < 2)
    throw ModelError(output_stem.string() + ": an ensemble needs at least 2 member folders, got " +
                     std::to_string(k_members));
  CheckpointInfo info;
  std::vector<fs::path> weights;
  nlohmann::json sources = nlohmann::json::array(), member_val_mae = nlohmann::json::array();
  for (int64_t k = 0; k < k_members; ++k) {
    const fs::path json = member_dirs[k] / "model.json";
    if (!fs::is_directory(member_dirs[k]))
      throw ModelError(member_dirs[k].string() + ": ensemble member " + std::to_string(k) + " is not a folder");
    const std::string who = "ensemble member " + std::to_string(k) + " (" + json.string() + "): ";
    LoadedModel loaded;
    try {
      loaded = load_checkpoint(json);  // verifies size, SHA-256 and shapes; refuses VBM
    } catch (const ModelError& e) {
      throw ModelError(who + e.what());
    }
    if (loaded.info.model_kind != kNeuralModelKind)
      throw ModelError(who + "is a \"" + loaded.info.model_kind + "\" checkpoint; members are single transformers");
    if (k > 0) {
      const std::string why = mismatch(info, loaded.info);
      if (!why.empty()) throw ModelError(who + why);
    } else {
      info = loaded.info;  // preprocessing, normalisation, model of member 0
      info.members.clear();
    }
    for (int64_t j = 0; j < k; ++j)
      if (info.members[static_cast<std::size_t>(j)].training.value("source_model_id", "") == loaded.info.model_id)
        throw ModelError(who + "has the same weights as member " + std::to_string(j) + " (model id " +
                         loaded.info.model_id + "): a member folder given twice");
    if (loaded.info.metrics.value("final_weights", std::string()) == to_string(FinalWeights::kBestValidation))
      throw ModelError(who + "was trained with --final best: its epoch was chosen on its validation fold, so its "
                       "predictions there are not out-of-fold (train members with --final last)");
    const nlohmann::json options = loaded.info.training.value("options", nlohmann::json::object());
    EnsembleMemberInfo member;
    member.model = loaded.info.model;
    member.training = {{"source", fs::absolute(json).lexically_normal().string()},
                       {"source_model_id", loaded.info.model_id}};
    for (const char* key : {"seed", "split_seed", "folds", "fold", "epochs", "final_weights"})
      if (options.contains(key)) member.training[key] = options[key];
    if (loaded.info.metrics.contains("val_mae")) {
      member.training["val_mae"] = loaded.info.metrics["val_mae"];
      member_val_mae.push_back(loaded.info.metrics["val_mae"]);
    }
    for (const char* key : {"val_load_cv", "val_scan_load_cv"})
      if (loaded.info.metrics.contains(key)) member.training[key] = loaded.info.metrics[key];
    info.members.push_back(std::move(member));
    weights.push_back(loaded.weights);
    sources.push_back(fs::absolute(member_dirs[k]).lexically_normal().string());
  }

  EnsembleSummary summary;
  summary.routing_member = choose_routing_member(info.members, options.routing_member, output_stem);
  info.routing_member = summary.routing_member;
  std::vector<std::string> partitions;  // split seed and fold count of each member
  for (const auto& member : info.members)
    partitions.push_back(member.training.value("split_seed", nlohmann::json()).dump() + "/" +
                         member.training.value("folds", nlohmann::json()).dump());
  summary.oof = read_out_of_fold_predictions(member_dirs, partitions);
  auto& oof = summary.oof;
  if (oof.ages.empty())
    throw ModelError((member_dirs[0] / "validation_predictions.csv").string() +
                     ": the members' validation_predictions.csv hold no subjects: nothing to calibrate on");
  summary.oof_transformer = oof.predictions;
  // Which subjects each member never saw: its out-of-fold predictions can be reproduced
  // from the checkpoint alone (docs/RESULTS.md, twentieth session).
  for (std::size_t i = 0; i < oof.subject_ids.size(); ++i)
    for (const int k : oof.members[i])
      info.members[static_cast<std::size_t>(k)].training["validation_subject_ids"].push_back(oof.subject_ids[i]);

  // The VBM model (optional): its inner-CV OOF age of every subject, then the weight.
  LoadedModel vbm;
  nlohmann::json weight_scan = nlohmann::json::array();
  if (!options.vbm_dir.empty()) {
    vbm = load_vbm_member(options.vbm_dir, info);
    weight_scan = combine_with_vbm(options, output_stem, summary);
  }
  std::string why_not;
  summary.calibration = BiasCorrection::fit(oof.ages, oof.predictions, &why_not);
  std::vector<double> corrected;
  for (double p : oof.predictions) corrected.push_back(summary.calibration.apply(p));
  summary.metrics = {{"members", k_members},
                     {"routing_member", summary.routing_member},
                     {"oof_n", oof.ages.size()},
                     {"oof_raw", error_metrics(oof.ages, oof.predictions)},
                     {"oof_bias_corrected", error_metrics(oof.ages, corrected)},
                     {"member_val_mae", member_val_mae},
                     {"oof_note",
                      "each training subject predicted by the one member that held it out, or by the mean of "
                      "one such member per partition with repeated partitions (not the ensemble mean's error: the "
                      "other members trained on that subject); "
                      "bias_corrected uses the correction fitted on these same predictions (in-sample)"}};
  if (!why_not.empty()) summary.metrics["calibration_not_usable"] = why_not;
  if (vbm.vbm) {
    summary.metrics["oof_transformer_raw"] = error_metrics(oof.ages, summary.oof_transformer);
    summary.metrics["oof_vbm_raw"] = error_metrics(oof.ages, summary.oof_vbm);
    summary.metrics["vbm_weight"] = summary.vbm_weight;
    summary.metrics["vbm_weight_chosen_on_oof"] = options.vbm_weight < 0;
    summary.metrics["vbm_weight_scan"] = weight_scan;
    summary.metrics["oof_part_difference"] = part_difference_summary(summary.oof_transformer, summary.oof_vbm);
    summary.metrics["oof_note"] =
        "oof_raw: (1 - vbm_weight) * the held-out member's age + vbm_weight * the VBM model's inner-CV age; "
        "oof_transformer_raw / oof_vbm_raw: each alone. The held-out member's (or, with repeated partitions, the "
        "held-out members' mean) out-of-fold error, not the ensemble mean's; when vbm_weight_chosen_on_oof, the "
        "weight was chosen on these same predictions (optimistic by a little); bias_corrected uses the correction "
        "fitted on them (in-sample)";
    EnsembleVbmInfo member;
    member.model = vbm.vbm->to_json();
    member.weight = summary.vbm_weight;
    member.training = {{"source", fs::absolute(options.vbm_dir / "model.json").lexically_normal().string()},
                       {"source_model_id", vbm.info.model_id},
                       {"metrics", vbm.info.metrics},
                       {"data", vbm.info.training.value("data", nlohmann::json::object())},
                       {"augmentation", vbm.info.training.value("augmentation", nlohmann::json::object())}};
    info.vbm_member = std::move(member);
  }

  info.bias_correction = summary.calibration;
  info.bias_correction_fitted_on = "out-of-fold (K-fold inner CV)";
  info.metrics = summary.metrics;
  info.training = {{"method",
                    "cross-validated seed ensemble (CV bagging): member k trained on the folds other than k of one "
                    "age-stratified K-fold partition (or of one of several, with repeats), seed + k, last-epoch weights; prediction = mean of the members' "
                    "ages, spread = their sd; routing records and maps from one member (routing_member; by "
                    "default the one whose validation routing was most balanced)"},
                   {"member_dirs", sources},
                   {"data", info.training.value("data", nlohmann::json::object())}};
  if (vbm.vbm) adopt_vbm_tissue_contrast(info.training["data"], vbm.info.training);
  if (vbm.vbm)
    info.training["method"] = info.training["method"].get<std::string>() +
                              "; averaged with a VBM ridge model: age = (1 - w) * transformer mean + w * VBM age, w = " +
                              std::to_string(summary.vbm_weight);
  summary.model_id = save_ensemble_checkpoint(output_stem, weights, info, vbm.weights);
  summary.checkpoint = checkpoint_json_path(output_stem);
  return summary;
}

}  // namespace brainage::model
