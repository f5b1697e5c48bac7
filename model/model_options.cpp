#include "model/model_options.h"

#include <algorithm>

#include "common/errors.h"

namespace brainage::model {

std::string to_string(FfnKind kind) {
  switch (kind) {
    case FfnKind::kErmoe: return "ermoe";
    case FfnKind::kSoftmaxMoe: return "softmax_moe";
    case FfnKind::kDense: return "dense";
  }
  return "unknown";
}

FfnKind ffn_kind_from_string(const std::string& text) {
  if (text == "ermoe") return FfnKind::kErmoe;
  if (text == "softmax_moe") return FfnKind::kSoftmaxMoe;
  if (text == "dense") return FfnKind::kDense;
  throw ModelError("model kind '" + text + "' is not one of ermoe, softmax_moe, dense");
}

std::string to_string(StemKind kind) { return kind == StemKind::kConv ? "conv" : "patch"; }

StemKind stem_kind_from_string(const std::string& text) {
  if (text == "patch") return StemKind::kPatch;
  if (text == "conv") return StemKind::kConv;
  throw ModelError("stem '" + text + "' is not one of patch, conv");
}

std::string to_string(LossKind kind) { return kind == LossKind::kKl ? "kl" : "l1"; }

LossKind loss_kind_from_string(const std::string& text) {
  if (text == "l1") return LossKind::kL1;
  if (text == "kl") return LossKind::kKl;
  throw ModelError("loss '" + text + "' is not one of l1, kl");
}

std::string to_string(GlobalInput input) {
  return input == GlobalInput::kLogBrainVolume ? "log_brain_volume" : "none";
}

GlobalInput global_input_from_string(const std::string& text) {
  if (text == "none") return GlobalInput::kNone;
  if (text == "log_brain_volume") return GlobalInput::kLogBrainVolume;
  throw ModelError("global input '" + text + "' is not one of none, log_brain_volume");
}

bool ModelOptions::uses_tissue_maps() const {
  return std::any_of(channels.begin(), channels.end(), [](const std::string& c) { return c != "t1"; });
}

bool ModelOptions::block_is_moe(int64_t index) const {
  if (ffn == FfnKind::kDense) return false;
  return (depth - 1 - index) % moe_every == 0;
}

void ModelOptions::validate() const {
  auto fail = [](const std::string& rule) { throw ModelError("model options: " + rule); };
  for (int i = 0; i < 3; ++i)
    if (grid[i] < 1) fail("grid dimensions must be >= 1");
  if (patch_size < 1) fail("patch_size must be >= 1");
  if (grid[0] % patch_size || grid[1] % patch_size || grid[2] % patch_size)
    fail("patch_size " + std::to_string(patch_size) + " does not divide the grid " + std::to_string(grid[0]) + "x" +
         std::to_string(grid[1]) + "x" + std::to_string(grid[2]));
  if (channels.empty()) fail("channels must name at least one input channel");
  for (size_t i = 0; i < channels.size(); ++i) {
    const auto& known = known_channels();
    if (std::find(known.begin(), known.end(), channels[i]) == known.end())
      fail("channel '" + channels[i] + "' is not one of t1, gm, wm, csf");
    if (std::find(channels.begin(), channels.begin() + i, channels[i]) != channels.begin() + i)
      fail("channel '" + channels[i] + "' is listed twice");
  }
  if (stem == StemKind::kConv) {
    if (stem_width < 8 || stem_width % 8) fail("stem_width " + std::to_string(stem_width) + " must be a multiple of 8");
    if (stem_pool < 1 || patch_size % stem_pool)
      fail("stem_pool " + std::to_string(stem_pool) + " must be >= 1 and divide patch_size " + std::to_string(patch_size));
    const int64_t reduction = patch_size / stem_pool;
    if (reduction < 2 || (reduction & (reduction - 1)))
      fail("conv stem: patch_size / stem_pool = " + std::to_string(reduction) + " must be a power of two >= 2");
  }
  if (loss == LossKind::kKl) {
    if (age_bins < 2) fail("KL loss needs age_bins >= 2, got " + std::to_string(age_bins));
    if (!(label_sigma > 0)) fail("label_sigma must be > 0");
  }
  if (!(global_std > 0)) fail("global_std must be > 0");
  if (patch_pool < 1 || patch_size % patch_pool)
    fail("patch_pool " + std::to_string(patch_pool) + " must be >= 1 and divide patch_size " + std::to_string(patch_size));
  if (dim < 1 || depth < 1 || heads < 1 || dim % heads) fail("heads must divide dim, depth >= 1");
  if (moe_every < 1) fail("moe_every must be >= 1");
  if (ffn != FfnKind::kDense) {
    if (num_experts < 1) fail("num_experts must be >= 1");
    if (top_k < 1 || top_k > num_experts) fail("top_k must be in [1, num_experts]");
    if (expert_rank < 1 || expert_rank > dim) fail("expert_rank must be in [1, dim]");
    if (expert_hidden < 1) fail("expert_hidden must be >= 1");
  }
  if (ffn_hidden < 1) fail("ffn_hidden must be >= 1");
  if (!(aux_loss_weight >= 0)) fail("aux_loss_weight must be >= 0");
  if (!(ermoe_balance_weight >= 0)) fail("ermoe_balance_weight (train --ermoe-balance) must be >= 0");
  if (!(dropout >= 0 && dropout < 1)) fail("dropout must be in [0, 1)");
  if (!(age_std > 0)) fail("age_std must be > 0");
}

nlohmann::json to_json(const ModelOptions& o) {
  return {{"grid", o.grid},
          {"patch_size", o.patch_size},
          {"patch_pool", o.patch_pool},
          {"norm_after_pool", o.norm_after_pool},
          {"test_time_flip", o.test_time_flip},
          {"dim", o.dim},
          {"depth", o.depth},
          {"heads", o.heads},
          {"ffn", to_string(o.ffn)},
          {"moe_every", o.moe_every},
          {"num_experts", o.num_experts},
          {"top_k", o.top_k},
          {"top_d_threshold", o.top_d_threshold},
          {"expert_rank", o.expert_rank},
          {"expert_hidden", o.expert_hidden},
          {"ffn_hidden", o.ffn_hidden},
          {"aux_loss_weight", o.aux_loss_weight},
          {"ermoe_balance_weight", o.ermoe_balance_weight},
          {"balance_per_scan", o.balance_per_scan},
          {"dropout", o.dropout},
          {"age_mean", o.age_mean},
          {"age_std", o.age_std},
          {"channels", o.channels},
          {"stem", to_string(o.stem)},
          {"stem_width", o.stem_width},
          {"stem_pool", o.stem_pool},
          {"loss", to_string(o.loss)},
          {"label_sigma", o.label_sigma},
          {"age_bin_start", o.age_bin_start},
          {"age_bins", o.age_bins},
          {"global_input", to_string(o.global_input)},
          {"global_mean", o.global_mean},
          {"global_std", o.global_std}};
}

ModelOptions model_options_from_json(const nlohmann::json& j) {
  ModelOptions o;
  try {
    o.grid = j.at("grid").get<std::array<int64_t, 3>>();
    o.patch_size = j.at("patch_size").get<int64_t>();
    o.patch_pool = j.value("patch_pool", int64_t{1});  // absent in checkpoints before they existed
    o.norm_after_pool = j.value("norm_after_pool", false);
    o.test_time_flip = j.value("test_time_flip", false);  // absent before it existed
    o.dim = j.at("dim").get<int64_t>();
    o.depth = j.at("depth").get<int64_t>();
    o.heads = j.at("heads").get<int64_t>();
    o.ffn = ffn_kind_from_string(j.at("ffn").get<std::string>());
    o.moe_every = j.at("moe_every").get<int64_t>();
    o.num_experts = j.at("num_experts").get<int64_t>();
    o.top_k = j.at("top_k").get<int64_t>();
    o.top_d_threshold = j.at("top_d_threshold").get<double>();
    o.expert_rank = j.at("expert_rank").get<int64_t>();
    o.expert_hidden = j.at("expert_hidden").get<int64_t>();
    o.ffn_hidden = j.at("ffn_hidden").get<int64_t>();
    o.aux_loss_weight = j.at("aux_loss_weight").get<double>();
    o.dropout = j.at("dropout").get<double>();
    o.age_mean = j.at("age_mean").get<double>();
    o.age_std = j.at("age_std").get<double>();
    // ERMoE-ba v2 fields; absent in checkpoints written before them = the first design.
    const ModelOptions old;
    o.channels = j.value("channels", old.channels);
    o.stem = stem_kind_from_string(j.value("stem", to_string(old.stem)));
    o.stem_width = j.value("stem_width", old.stem_width);
    o.stem_pool = j.value("stem_pool", old.stem_pool);
    o.loss = loss_kind_from_string(j.value("loss", to_string(old.loss)));
    o.label_sigma = j.value("label_sigma", old.label_sigma);
    o.age_bin_start = j.value("age_bin_start", old.age_bin_start);
    o.age_bins = j.value("age_bins", old.age_bins);
    o.global_input = global_input_from_string(j.value("global_input", to_string(old.global_input)));
    o.global_mean = j.value("global_mean", old.global_mean);
    o.global_std = j.value("global_std", old.global_std);
    o.ermoe_balance_weight = j.value("ermoe_balance_weight", old.ermoe_balance_weight);
    o.balance_per_scan = j.value("balance_per_scan", old.balance_per_scan);
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(std::string("model options: missing or ill-typed field (") + e.what() + ")");
  }
  o.validate();
  return o;
}

}  // namespace brainage::model
