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
  if (p.extension() == ".json") return p;
  if (p.extension() == ".pt") return p.replace_extension(".json");
  return fs::path(p.string() + ".json");
}

namespace {

nlohmann::json bias_correction_json(const BiasCorrection& correction) {
  nlohmann::json j = to_json(correction);
  j["fitted_on"] = "validation predictions: pred = slope*age + intercept; corrected = (pred - intercept)/slope";
  return j;
}

nlohmann::json info_to_json(const CheckpointInfo& info, const nlohmann::json& model_json) {
  return {{"model_kind", info.model_kind},
          {"model", model_json},
          {"grid", info.model.grid},
          {"preprocessing_version", info.preprocessing_version},
          {"intensity_normalisation", info.intensity_normalisation},
          {"bias_correction", bias_correction_json(info.bias_correction)},
          {"training", info.training},
          {"metrics", info.metrics}};
}

/// First line of a LibTorch message (they carry multi-line backtraces).
std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

[[noreturn]] void fail(const fs::path& path, const std::string& rule) {
  throw ModelError(path.string() + ": " + rule);
}

nlohmann::json read_json_file(const fs::path& json_path) {
  if (!fs::exists(json_path)) fail(json_path, "checkpoint not found");
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
    if (info.model_kind == kNeuralModelKind)
      info.model = model_options_from_json(j.at("model"));
    else if (info.model_kind == kVbmModelKind)
      info.model.grid = j.at("grid").get<std::array<int64_t, 3>>();
    else
      fail(json_path, "model_kind \"" + info.model_kind + "\" is not known (this build reads \"neural\" and \"vbm\")");
    info.preprocessing_version = j.value("preprocessing_version", std::string("unknown"));
    info.intensity_normalisation = j.value("intensity_normalisation", std::string("unknown"));
    const auto& bc = j.at("bias_correction");
    info.bias_correction.slope = bc.at("slope").get<double>();
    info.bias_correction.intercept = bc.at("intercept").get<double>();
    info.bias_correction.n = static_cast<std::size_t>(std::max<int64_t>(0, bc.at("n").get<int64_t>()));
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

/// Writes `<stem>.pt` with `write_weights(temp path)`, then the JSON; returns the model id.
std::string write_checkpoint(const fs::path& stem_in, const std::string& id_kind, const nlohmann::json& model_json,
                             CheckpointInfo& info, const std::function<void(const fs::path&)>& write_weights) {
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
  info.model_id = id_kind + "-" + sha.substr(0, 12);
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
  return write_checkpoint(stem, kind, to_json(info.model), info,
                          [&](const fs::path& temp) { torch::save(model, temp.string()); });
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

LoadedModel load_checkpoint(const fs::path& path, bool accept_vbm) {
  const fs::path json_path = checkpoint_json_path(path);
  const auto j = read_json_file(json_path);
  LoadedModel loaded;
  loaded.info = info_from_json(j, json_path);
  std::string weights_name, sha;
  int64_t bytes = -1;
  try {
    weights_name = j.at("weights_file").get<std::string>();
    sha = j.at("weights_sha256").get<std::string>();
    bytes = j.at("weights_bytes").get<int64_t>();
  } catch (const nlohmann::json::exception&) {
    fail(json_path, "checkpoint metadata lacks weights_file / weights_sha256 / weights_bytes");
  }
  if (weights_name.empty() || fs::path(weights_name).has_parent_path())
    fail(json_path, "weights_file must be a file name beside the JSON");
  fs::path weights = json_path.parent_path() / weights_name;
  // A checkpoint renamed as a pair (model.{pt,json} -> brainage-default.{pt,json}) still
  // loads: the .pt beside the JSON with the same stem, verified by the same SHA-256.
  if (!fs::exists(weights) && fs::exists(fs::path(json_path).replace_extension(".pt")))
    weights = fs::path(json_path).replace_extension(".pt");
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
  loaded.model = BrainAgeModel(loaded.info.model);
  std::map<std::string, std::vector<int64_t>> expected;
  for (const auto& p : loaded.model->named_parameters()) expected[p.key()] = p.value().sizes().vec();
  try {
    torch::load(loaded.model, weights.string());
  } catch (const c10::Error& e) {
    fail(weights, std::string("checkpoint weights do not load into the model its JSON describes (") +
                      first_line(e.what_without_backtrace()) + ")");
  } catch (const std::exception& e) {
    fail(weights, std::string("checkpoint weights do not load (") + first_line(e.what()) + ")");
  }
  for (const auto& p : loaded.model->named_parameters())
    if (expected[p.key()] != p.value().sizes().vec())
      fail(weights, "checkpoint parameter '" + p.key() + "' has a shape that does not fit the model options");
  loaded.model->eval();
  return loaded;
}

}  // namespace brainage::model
