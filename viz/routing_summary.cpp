#include "viz/routing_summary.h"

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/errors.h"

namespace brainage::viz {

namespace {
[[noreturn]] void fail(const std::string& source, const std::string& rule) {
  throw InvalidInputError(source + ": routing " + rule);
}

int positive_int(const nlohmann::json& j, const char* key, const std::string& source) {
  if (!j.contains(key) || !j[key].is_number_integer()) fail(source, std::string("needs integer \"") + key + "\"");
  const int v = j[key].get<int>();
  if (v <= 0) fail(source, std::string("\"") + key + "\" must be > 0, got " + std::to_string(v));
  return v;
}
}  // namespace

RoutingSummary parse_routing(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail(source, "block must be a JSON object");
  RoutingSummary r;
  if (j.contains("num_experts") && j["num_experts"].is_number_integer() && j["num_experts"].get<int>() == 0)
    fail(source, "has no experts: the model is a dense (no MoE) baseline, so there are no expert maps");
  r.num_experts = positive_int(j, "num_experts", source);
  r.top_k = j.contains("top_k") && j["top_k"].is_number_integer() ? j["top_k"].get<int>() : 1;
  r.patch_size = positive_int(j, "patch_size", source);
  if (!j.contains("token_grid") || !j["token_grid"].is_array() || j["token_grid"].size() != 3)
    fail(source, "needs \"token_grid\" [PX, PY, PZ]");
  for (int a = 0; a < 3; ++a) {
    if (!j["token_grid"][a].is_number_integer() || j["token_grid"][a].get<int>() <= 0)
      fail(source, "\"token_grid\" entries must be positive integers");
    r.token_grid[a] = j["token_grid"][a].get<int>();
  }
  if (!j.contains("layers") || !j["layers"].is_array() || j["layers"].empty())
    fail(source, "needs a non-empty \"layers\" array");
  const std::size_t n = r.num_tokens();
  for (const auto& jl : j["layers"]) {
    RoutingLayer layer;
    layer.layer = jl.contains("layer") && jl["layer"].is_number_integer() ? jl["layer"].get<int>()
                                                                           : static_cast<int>(r.layers.size()) + 1;
    const std::string where = "layer " + std::to_string(layer.layer);
    if (!jl.contains("expert") || !jl["expert"].is_array()) fail(source, where + " needs an \"expert\" array");
    if (jl["expert"].size() != n)
      fail(source, where + " has " + std::to_string(jl["expert"].size()) + " experts, token grid " +
                       std::to_string(r.token_grid[0]) + "x" + std::to_string(r.token_grid[1]) + "x" +
                       std::to_string(r.token_grid[2]) + " needs " + std::to_string(n));
    layer.expert.reserve(n);
    for (const auto& e : jl["expert"]) {
      if (!e.is_number_integer()) fail(source, where + " expert entries must be integers");
      const int v = e.get<int>();
      if (v < 0 || v >= r.num_experts)
        fail(source, where + " expert " + std::to_string(v) + " outside [0, " + std::to_string(r.num_experts) + ")");
      layer.expert.push_back(v);
    }
    if (jl.contains("score") && jl["score"].is_array()) {
      if (jl["score"].size() != n) fail(source, where + " \"score\" length differs from \"expert\" length");
      layer.score.reserve(n);
      for (const auto& s : jl["score"]) {
        if (!s.is_number() || !std::isfinite(s.get<double>())) fail(source, where + " scores must be finite numbers");
        layer.score.push_back(s.get<float>());
      }
    } else {
      layer.score.assign(n, 0.0f);  // scores are optional in older records
    }
    r.layers.push_back(std::move(layer));
  }
  return r;
}

RoutingSummary read_routing(const std::filesystem::path& prediction_json) {
  std::ifstream in(prediction_json);
  if (!in) throw InvalidInputError(prediction_json.string() + ": cannot open prediction record");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw InvalidInputError(prediction_json.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.contains("routing"))
    throw InvalidInputError(prediction_json.string() + ": no \"routing\" block (was it written by brainage predict?)");
  return parse_routing(j["routing"], prediction_json.string());
}

RoutingLayer summarise_layers(const RoutingSummary& r) {
  RoutingLayer out;
  out.layer = 0;
  const std::size_t n = r.num_tokens();
  out.expert.resize(n);
  out.score.resize(n);
  std::vector<int> votes(static_cast<std::size_t>(r.num_experts));
  for (std::size_t t = 0; t < n; ++t) {
    std::fill(votes.begin(), votes.end(), 0);
    for (const auto& l : r.layers) ++votes[static_cast<std::size_t>(l.expert[t])];
    int best_votes = 0;
    for (int v : votes) best_votes = std::max(best_votes, v);
    int winner = -1;
    for (auto it = r.layers.rbegin(); it != r.layers.rend() && winner < 0; ++it)  // deepest layer first
      if (votes[static_cast<std::size_t>(it->expert[t])] == best_votes) winner = it->expert[t];
    double sum = 0.0;
    int count = 0;
    for (const auto& l : r.layers)
      if (l.expert[t] == winner) {
        sum += l.score[t];
        ++count;
      }
    out.expert[t] = winner;
    out.score[t] = static_cast<float>(sum / count);
  }
  return out;
}

}  // namespace brainage::viz
