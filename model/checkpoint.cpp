#include "model/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <fstream>
#include <map>
#include <sstream>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "common/content_hash.h"
#include "model/vbm_model.h"

namespace brainage::model {
namespace fs = std::filesystem;

fs::path checkpoint_json_path(const fs::path& path) {
  fs::path p = path;
  if (p.filename().empty()) return p / "model.json";  // "DIR/": a folder, whether or not it exists
  if (p.extension() == ".json") return p;
  if (p.extension() == ".pt") return p.replace_extension(".json");
  const fs::path stem_json(p.string() + ".json");
  std::error_code ec;
  if (!fs::is_directory(p, ec)) return stem_json;
  const fs::path folder_json = p / "model.json";  // a `train` / `ensemble` output folder
  if (fs::exists(stem_json, ec) && fs::exists(folder_json, ec))
    throw UsageError(p.string() + ": names two checkpoints, " + stem_json.string() + " and " + folder_json.string() +
                     ": pass the one meant");
  return fs::exists(stem_json, ec) ? stem_json : folder_json;
}

namespace {

/// Why an ensemble's routing_member is not one of its members' indices, or "".
std::string routing_member_problem(const CheckpointInfo& info) {
  if (info.routing_member >= 0 && info.routing_member < static_cast<int64_t>(info.members.size())) return "";
  return "routing_member " + std::to_string(info.routing_member) + " is not a member index (0.." +
         std::to_string(static_cast<int64_t>(info.members.size()) - 1) + ")";
}

nlohmann::json bias_correction_json(const CheckpointInfo& info) {
  nlohmann::json j = to_json(info.bias_correction);
  j["fitted_on"] = info.bias_correction_fitted_on;
  j["formula"] = "pred = slope*age + intercept; corrected = (pred - intercept)/slope";
  return j;
}

nlohmann::json info_to_json(const CheckpointInfo& info, const nlohmann::json& model_json) {
  return {{"model_kind", info.model_kind},
          {"model", model_json},
          {"grid", info.model.grid},
          {"preprocessing_version", info.preprocessing_version},
          {"intensity_normalisation", info.intensity_normalisation},
          {"bias_correction", bias_correction_json(info)},
          {"training", info.training},
          {"metrics", info.metrics}};
}

/// First line of a LibTorch message (they carry multi-line backtraces).
std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

[[noreturn]] void fail(const fs::path& path, const std::string& rule) {
  throw ModelError(path.string() + ": " + rule);
}

/// "checkpoint not found", with the likely meant file when `DIR/` was given for DIR.json.
std::string not_found_rule(const fs::path& json_path) {
  std::string rule = "checkpoint not found";
  std::error_code ec;
  const fs::path stem_json(json_path.parent_path().string() + ".json");
  if (json_path.filename() == "model.json" && fs::exists(stem_json, ec))
    rule += " (did you mean " + stem_json.string() + "?)";
  return rule;
}

nlohmann::json read_json_file(const fs::path& json_path) {
  if (!fs::exists(json_path)) fail(json_path, not_found_rule(json_path));
  std::ifstream in(json_path);
  if (!in) fail(json_path, "checkpoint cannot be opened");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception&) {
    fail(json_path, "checkpoint metadata is not valid JSON (corrupt or truncated)");
  }
  // Checked by type first: nlohmann's value() throws on a "format" that is not a string
  // (found by the checkpoint_json fuzzer: {"format":"brainage-checkpoint","format":1}).
  const auto format = j.is_object() ? j.find("format") : j.end();
  if (format == j.end() || !format->is_string() || format->get<std::string>() != kCheckpointFormat)
    fail(json_path, std::string("not a brainage checkpoint (\"format\" must be \"") + kCheckpointFormat + "\")");
  if (!j.contains("format_version") || !j["format_version"].is_number_integer())
    fail(json_path, "checkpoint has no integer format_version");
  const int version = j["format_version"].get<int>();
  if (version != kCheckpointFormatVersion)
    fail(json_path, "checkpoint format_version " + std::to_string(version) + " is not supported (this build reads " +
                        std::to_string(kCheckpointFormatVersion) + ")");
  return j;
}

CheckpointInfo info_from_json(const nlohmann::json& j, const fs::path& json_path) {
  CheckpointInfo info;
  try {
    info.model_kind = j.value("model_kind", std::string(kNeuralModelKind));  // absent: written before kinds existed
    if (info.model_kind == kNeuralModelKind || info.model_kind == kEnsembleModelKind)
      info.model = model_options_from_json(j.at("model"));
    else if (info.model_kind == kVbmModelKind)
      info.model.grid = j.at("grid").get<std::array<int64_t, 3>>();
    else
      fail(json_path, "model_kind \"" + info.model_kind +
                          "\" is not known (this build reads \"neural\", \"vbm\" and \"ensemble\")");
    if (info.model_kind == kEnsembleModelKind) {
      const auto& members = j.at("members");
      if (!members.is_array() || members.size() < 2)
        fail(json_path, "an ensemble checkpoint needs a \"members\" array of at least 2 members");
      for (const auto& m : members) {
        EnsembleMemberInfo member;
        member.model = model_options_from_json(m.at("model"));
        member.weights_file = m.at("weights_file").get<std::string>();
        member.weights_bytes = m.at("weights_bytes").get<int64_t>();
        member.weights_sha256 = m.at("weights_sha256").get<std::string>();
        member.training = m.value("training", nlohmann::json::object());
        if (member.model.grid != info.model.grid || member.model.channels != info.model.channels ||
            member.model.global_input != info.model.global_input)
          fail(json_path, "ensemble member " + std::to_string(info.members.size()) +
                              " differs from member 0 in grid, channels or global input");
        info.members.push_back(std::move(member));
      }
      info.routing_member = j.value("routing_member", int64_t{0});
      if (const auto why = routing_member_problem(info); !why.empty()) fail(json_path, why);
      if (j.contains("vbm_member")) {
        const auto& v = j.at("vbm_member");
        EnsembleVbmInfo vbm;
        vbm.weights_file = v.at("weights_file").get<std::string>();
        vbm.weights_bytes = v.at("weights_bytes").get<int64_t>();
        vbm.weights_sha256 = v.at("weights_sha256").get<std::string>();
        vbm.model = v.at("model");
        vbm.weight = v.at("weight").get<double>();
        vbm.training = v.value("training", nlohmann::json::object());
        if (!(vbm.weight >= 0.0 && vbm.weight <= 1.0))
          fail(json_path, "vbm_member weight " + std::to_string(vbm.weight) + " is outside [0, 1]");
        info.vbm_member = std::move(vbm);
      }
    }
    info.preprocessing_version = j.value("preprocessing_version", std::string("unknown"));
    info.intensity_normalisation = j.value("intensity_normalisation", std::string("unknown"));
    const auto& bc = j.at("bias_correction");
    info.bias_correction.slope = bc.at("slope").get<double>();
    info.bias_correction.intercept = bc.at("intercept").get<double>();
    info.bias_correction.n = static_cast<std::size_t>(std::max<int64_t>(0, bc.at("n").get<int64_t>()));
    // Before "formula" existed, fitted_on held "validation predictions: <formula>".
    const std::string fitted_on = bc.contains("fitted_on") && bc["fitted_on"].is_string()
                                      ? bc["fitted_on"].get<std::string>() : std::string("validation");
    info.bias_correction_fitted_on = fitted_on.rfind("validation predictions:", 0) == 0 ? "validation" : fitted_on;
    info.training = j.value("training", nlohmann::json::object());
    info.metrics = j.value("metrics", nlohmann::json::object());
    info.model_id = j.at("model_id").get<std::string>();
    if (j.at("grid").get<std::array<int64_t, 3>>() != info.model.grid) fail(json_path, "grid differs from model.grid");
  } catch (const ModelError& e) {
    fail(json_path, e.what());
  } catch (const nlohmann::json::exception& e) {
    fail(json_path, std::string("checkpoint metadata has a missing or ill-typed field (") + e.what() + ")");
  }
  return info;
}

}  // namespace

namespace {

/// What, besides the weights, changes the age a checkpoint reads (appended to the weights'
/// SHA-256 before the model id is taken; empty for every option set before it existed, so
/// old ids stay as they were).
std::string behaviour_salt(const ModelOptions& options) { return options.test_time_flip ? "test_time_flip" : ""; }

/// Writes `<stem>.pt` with `write_weights(temp path)`, then the JSON; returns the model id
/// (from the weights' SHA-256, salted with `id_salt` when it is not empty).
std::string write_checkpoint(const fs::path& stem_in, const std::string& id_kind, const nlohmann::json& model_json,
                             CheckpointInfo& info, const std::function<void(const fs::path&)>& write_weights,
                             const std::string& id_salt = "") {
  fs::path stem = stem_in;
  if (stem.extension() == ".json" || stem.extension() == ".pt") stem.replace_extension();
  const fs::path weights = fs::path(stem.string() + ".pt");
  const fs::path json_path = fs::path(stem.string() + ".json");
  if (!stem.parent_path().empty()) ensure_writable_directory(stem.parent_path());
  write_via_temp(weights, [&](const fs::path& temp) {
    try {
      write_weights(temp);
    } catch (const c10::Error& e) {
      throw OutputError(weights.string() + ": torch::save failed: " + first_line(e.what_without_backtrace()));
    }
  });
  const std::string sha = sha256_file_hex(weights);
  info.model_id = id_kind + "-" + (id_salt.empty() ? sha : sha256_hex(sha + id_salt)).substr(0, 12);
  nlohmann::json j = {{"format", kCheckpointFormat},
                      {"format_version", kCheckpointFormatVersion},
                      {"weights_file", weights.filename().string()},
                      {"weights_bytes", static_cast<int64_t>(fs::file_size(weights))},
                      {"weights_sha256", sha},
                      {"model_id", info.model_id}};
  j.update(info_to_json(info, model_json));
  write_file_atomic(json_path, j.dump(2) + "\n");
  return info.model_id;
}

}  // namespace

std::string save_checkpoint(const fs::path& stem, BrainAgeModel& model, CheckpointInfo info) {
  info.model_kind = kNeuralModelKind;
  info.model = model->options();
  const std::string kind = info.model.ffn == FfnKind::kErmoe ? "ermoe-ba" : to_string(info.model.ffn);
  return write_checkpoint(
      stem, kind, to_json(info.model), info, [&](const fs::path& temp) { torch::save(model, temp.string()); },
      behaviour_salt(info.model));
}

std::string save_checkpoint(const fs::path& stem, const VbmModel& model, CheckpointInfo info) {
  info.model_kind = kVbmModelKind;
  info.model.grid = model.grid;
  info.bias_correction = model.bias_correction;
  return write_checkpoint(stem, kVbmModelKind, model.to_json(), info,
                          [&](const fs::path& temp) { model.save_tensors(temp); });
}

CheckpointInfo read_checkpoint_info(const fs::path& path) {
  const fs::path json_path = checkpoint_json_path(path);
  return info_from_json(read_json_file(json_path), json_path);
}

namespace {

/// The weights file `name` beside `json_path` (or `fallback` beside it when `name` is absent
/// and `fallback` exists), verified against `bytes` and `sha`. Throws ModelError.
fs::path verified_weights(const fs::path& json_path, const std::string& name, int64_t bytes, const std::string& sha,
                          const fs::path& fallback) {
  if (name.empty() || fs::path(name).has_parent_path())
    fail(json_path, "weights_file must be a file name beside the JSON");
  fs::path weights = json_path.parent_path() / name;
  if (!fs::exists(weights) && !fallback.empty() && fs::exists(fallback)) weights = fallback;
  if (!fs::exists(weights)) fail(weights, "checkpoint weights file not found (named by " + json_path.string() + ")");
  const auto actual_bytes = static_cast<int64_t>(fs::file_size(weights));
  if (actual_bytes != bytes)
    fail(weights, "checkpoint weights are " + std::to_string(actual_bytes) + " bytes, the JSON says " +
                      std::to_string(bytes) + " (truncated or replaced)");
  std::string actual_sha;
  try {
    actual_sha = sha256_file_hex(weights);
  } catch (const InvalidInputError& e) {
    fail(weights, std::string("checkpoint weights unreadable (") + e.what() + ")");
  }
  if (actual_sha != sha) fail(weights, "checkpoint weights SHA-256 " + actual_sha + " differs from the JSON's " + sha + " (corrupt)");
  return weights;
}

/// A transformer of `options` with the (verified) `weights`, in eval mode. Throws ModelError
/// when the archive does not load into it or a parameter's shape differs.
BrainAgeModel load_transformer(const ModelOptions& options, const fs::path& weights) {
  BrainAgeModel model(options);
  std::map<std::string, std::vector<int64_t>> expected;
  for (const auto& p : model->named_parameters()) expected[p.key()] = p.value().sizes().vec();
  try {
    torch::load(model, weights.string());
  } catch (const c10::Error& e) {
    fail(weights, std::string("checkpoint weights do not load into the model its JSON describes (") +
                      first_line(e.what_without_backtrace()) + ")");
  } catch (const std::exception& e) {
    fail(weights, std::string("checkpoint weights do not load (") + first_line(e.what()) + ")");
  }
  for (const auto& p : model->named_parameters())
    if (expected[p.key()] != p.value().sizes().vec())
      fail(weights, "checkpoint parameter '" + p.key() + "' has a shape that does not fit the model options");
  model->eval();
  return model;
}

std::string member_file_name(const std::string& stem, std::size_t k) {
  return stem + ".member" + std::to_string(k) + ".pt";
}

std::string vbm_member_file_name(const std::string& stem) { return stem + ".vbm.pt"; }

/// Copies `source` to `target` via a temporary (no half-written file). Throws OutputError.
void copy_weights(const fs::path& source, const fs::path& target, const std::string& what) {
  write_via_temp(target, [&](const fs::path& temp) {
    std::error_code ec;
    fs::copy_file(source, temp, fs::copy_options::overwrite_existing, ec);
    if (ec) throw OutputError(target.string() + ": cannot copy " + what + " from " + source.string() + " (" + ec.message() + ")");
  });
}

/// Removes weights files an earlier ensemble left under `stem` that the new JSON does not
/// name (members beyond `member_count`, a VBM member the new one lacks), so a folder
/// rewritten with -o holds only what its checkpoint uses. Best effort: a file that cannot
/// be removed is left (the JSON never refers to it).
void remove_stale_weights(const fs::path& stem, std::size_t member_count, bool has_vbm_member) {
  std::error_code ignored;
  const std::string name = stem.filename().string();
  for (std::size_t k = member_count;; ++k) {
    const fs::path stale = stem.parent_path() / member_file_name(name, k);
    if (!fs::exists(stale, ignored)) break;
    fs::remove(stale, ignored);
  }
  if (!has_vbm_member) fs::remove(stem.parent_path() / vbm_member_file_name(name), ignored);
}

}  // namespace

std::string save_ensemble_checkpoint(const fs::path& stem_in, const std::vector<fs::path>& members_weights,
                                     CheckpointInfo info, const fs::path& vbm_weights) {
  fs::path stem = stem_in;
  if (stem.extension() == ".json" || stem.extension() == ".pt") stem.replace_extension();
  if (members_weights.size() < 2 || members_weights.size() != info.members.size())
    throw ModelError(stem.string() + ": an ensemble needs at least 2 members with one weights file each (got " +
                     std::to_string(members_weights.size()) + " files for " + std::to_string(info.members.size()) +
                     " members)");
  if (const auto why = routing_member_problem(info); !why.empty()) throw ModelError(stem.string() + ": " + why);
  if (!stem.parent_path().empty()) ensure_writable_directory(stem.parent_path());
  info.model_kind = kEnsembleModelKind;
  info.model = info.members[0].model;
  nlohmann::json members = nlohmann::json::array();
  std::string all_shas;
  for (std::size_t k = 0; k < members_weights.size(); ++k) {
    auto& member = info.members[k];
    member.weights_file = member_file_name(stem.filename().string(), k);
    const fs::path target = stem.parent_path() / member.weights_file;
    copy_weights(members_weights[k], target, "member weights");
    member.weights_bytes = static_cast<int64_t>(fs::file_size(target));
    member.weights_sha256 = sha256_file_hex(target);
    all_shas += member.weights_sha256 + behaviour_salt(member.model);
    members.push_back({{"weights_file", member.weights_file},
                       {"weights_bytes", member.weights_bytes},
                       {"weights_sha256", member.weights_sha256},
                       {"model", to_json(member.model)},
                       {"training", member.training}});
  }
  std::string kind = info.model.ffn == FfnKind::kErmoe ? "ermoe-ba" : to_string(info.model.ffn);
  nlohmann::json vbm_json;
  if (info.vbm_member) {
    if (vbm_weights.empty()) throw ModelError(stem.string() + ": the ensemble's VBM member has no weights file");
    auto& vbm = *info.vbm_member;
    vbm.weights_file = vbm_member_file_name(stem.filename().string());
    const fs::path target = stem.parent_path() / vbm.weights_file;
    copy_weights(vbm_weights, target, "VBM weights");
    vbm.weights_bytes = static_cast<int64_t>(fs::file_size(target));
    vbm.weights_sha256 = sha256_file_hex(target);
    all_shas += vbm.weights_sha256 + std::to_string(vbm.weight);
    kind += "-vbm";
    vbm_json = {{"weights_file", vbm.weights_file},
                {"weights_bytes", vbm.weights_bytes},
                {"weights_sha256", vbm.weights_sha256},
                {"model", vbm.model},
                {"weight", vbm.weight},
                {"training", vbm.training}};
  }
  info.model_id = kind + "-ensemble-" + sha256_hex(all_shas).substr(0, 12);
  nlohmann::json j = {{"format", kCheckpointFormat},
                      {"format_version", kCheckpointFormatVersion},
                      {"model_id", info.model_id},
                      {"members", members},
                      {"routing_member", info.routing_member}};
  if (info.vbm_member) j["vbm_member"] = vbm_json;
  j.update(info_to_json(info, to_json(info.model)));
  write_file_atomic(fs::path(stem.string() + ".json"), j.dump(2) + "\n");
  remove_stale_weights(stem, members_weights.size(), info.vbm_member.has_value());
  return info.model_id;
}

LoadedModel load_checkpoint(const fs::path& path, bool accept_vbm) {
  const fs::path json_path = checkpoint_json_path(path);
  const auto j = read_json_file(json_path);
  LoadedModel loaded;
  loaded.info = info_from_json(j, json_path);
  if (loaded.info.model_kind == kEnsembleModelKind) {
    const std::string stem = json_path.stem().string();
    for (std::size_t k = 0; k < loaded.info.members.size(); ++k) {
      const auto& member = loaded.info.members[k];
      const fs::path weights = verified_weights(json_path, member.weights_file, member.weights_bytes,
                                                member.weights_sha256, json_path.parent_path() / member_file_name(stem, k));
      loaded.members.push_back(load_transformer(member.model, weights));
    }
    loaded.model = loaded.members[static_cast<std::size_t>(loaded.info.routing_member)];
    if (loaded.info.vbm_member) {
      const auto& v = *loaded.info.vbm_member;
      const fs::path weights = verified_weights(json_path, v.weights_file, v.weights_bytes, v.weights_sha256,
                                                json_path.parent_path() / vbm_member_file_name(stem));
      auto vbm = std::make_shared<VbmModel>();
      try {
        *vbm = VbmModel::load(v.model, weights);
      } catch (const ModelError& e) {
        fail(weights, e.what());
      }
      if (vbm->grid != loaded.info.model.grid) fail(json_path, "the VBM member's grid differs from the transformers'");
      loaded.vbm = vbm;
    }
    return loaded;
  }
  std::string weights_name, sha;
  int64_t bytes = -1;
  try {
    weights_name = j.at("weights_file").get<std::string>();
    sha = j.at("weights_sha256").get<std::string>();
    bytes = j.at("weights_bytes").get<int64_t>();
  } catch (const nlohmann::json::exception&) {
    fail(json_path, "checkpoint metadata lacks weights_file / weights_sha256 / weights_bytes");
  }
  // A checkpoint renamed as a pair (model.{pt,json} -> brainage-default.{pt,json}) still
  // loads: the .pt beside the JSON with the same stem, verified by the same SHA-256.
  const fs::path weights = verified_weights(json_path, weights_name, bytes, sha, fs::path(json_path).replace_extension(".pt"));
  loaded.weights = weights;

  if (loaded.info.model_kind == kVbmModelKind) {
    if (!accept_vbm)
      fail(json_path, "is a VBM checkpoint (model_kind \"vbm\"); this command runs neural checkpoints only");
    auto vbm = std::make_shared<VbmModel>();
    try {
      *vbm = VbmModel::load(j.at("model"), weights);
    } catch (const ModelError& e) {
      fail(weights, e.what());
    }
    vbm->bias_correction = loaded.info.bias_correction;
    if (vbm->grid != loaded.info.model.grid) fail(json_path, "grid differs from the VBM model's grid");
    loaded.vbm = vbm;
    return loaded;
  }
  loaded.model = load_transformer(loaded.info.model, weights);
  return loaded;
}

}  // namespace brainage::model
