#pragma once
// The routing block of prediction.json as plain C++ (no Torch): per MoE layer, each
// token's top-1 expert (0-based) and its Eigenbasis score, plus the token grid that says
// which voxels a token covers (docs/ARCHITECTURE.md, "Tokens").
#include <array>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace brainage::viz {

/// One MoE layer's top-1 routing. `layer` is the model's 1-based layer number; the
/// summary layer built by summarise_layers() has layer = 0.
struct RoutingLayer {
  int layer{0};
  std::vector<int> expert;   // [num_tokens], 0-based top-1 expert
  std::vector<float> score;  // [num_tokens], top-1 Eigenbasis score in [0, 1]
};

struct RoutingSummary {
  int num_experts{0};
  int top_k{0};
  int patch_size{0};
  std::array<int, 3> token_grid{0, 0, 0};  // PX, PY, PZ
  std::vector<RoutingLayer> layers;

  std::size_t num_tokens() const {
    return static_cast<std::size_t>(token_grid[0]) * token_grid[1] * token_grid[2];
  }
  /// t = (pz * PY + py) * PX + px.
  std::size_t token_index(int px, int py, int pz) const {
    return (static_cast<std::size_t>(pz) * token_grid[1] + py) * token_grid[0] + px;
  }
};

/// Parses and validates a "routing" JSON object. `source` names the file in messages.
/// Throws InvalidInputError (missing field, token count != PX*PY*PZ, expert out of range,
/// score not finite, no layers).
RoutingSummary parse_routing(const nlohmann::json& routing, const std::string& source);

/// Reads prediction.json and parses its "routing" block.
RoutingSummary read_routing(const std::filesystem::path& prediction_json);

/// The documented summary over MoE layers: per token, the expert chosen as top-1 by the
/// most layers (majority vote); a tie goes to the tied expert chosen by the deepest layer.
/// Its score is the mean top-1 score of the layers that chose the winning expert.
RoutingLayer summarise_layers(const RoutingSummary& routing);

}  // namespace brainage::viz
