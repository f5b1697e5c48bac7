#include "model/routing_stats.h"

#include <cmath>

namespace brainage::model {

torch::Tensor expert_load(const LayerRouting& record) {
  TORCH_CHECK(record.is_moe, "expert_load: layer ", record.layer, " is not an MoE layer");
  const int64_t num_experts = record.scores.size(-1);
  return torch::bincount(record.expert_ids.reshape({-1}).cpu(), {}, num_experts);
}

double load_coefficient_of_variation(const LayerRouting& record) {
  const auto load = expert_load(record).to(torch::kFloat64);
  const double mean = load.mean().item<double>();
  if (mean <= 0) return 0.0;
  return load.std(/*unbiased=*/false).item<double>() / mean;
}

double routing_entropy(const LayerRouting& record) {
  const auto load = expert_load(record).to(torch::kFloat64);
  const double total = load.sum().item<double>();
  if (total <= 0) return 0.0;
  const auto p = load / total;
  const auto nonzero = p.masked_select(p > 0);
  return -(nonzero * nonzero.log()).sum().item<double>();
}

nlohmann::json routing_summary(const ModelOutput& output, const ModelOptions& options, int64_t sample) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& record : output.layers) {
    if (!record.is_moe) continue;
    LayerRouting one = record;
    one.expert_ids = record.expert_ids.narrow(0, sample, 1);
    one.scores = record.scores.narrow(0, sample, 1);
    const auto top1 = one.expert_ids.select(0, 0).select(1, 0).contiguous().cpu();                // [T]
    const auto score = one.scores.select(0, 0).gather(1, one.expert_ids.select(0, 0).narrow(1, 0, 1).to(one.scores.device()))
                           .squeeze(1).to(torch::kFloat64).contiguous().cpu();                 // [T]
    std::vector<int64_t> experts(top1.data_ptr<int64_t>(), top1.data_ptr<int64_t>() + top1.numel());
    std::vector<double> scores(score.data_ptr<double>(), score.data_ptr<double>() + score.numel());
    for (auto& v : scores) v = std::round(v * 1e5) / 1e5;
    layers.push_back({{"layer", record.layer},
                      {"expert", experts},
                      {"score", scores},
                      {"load_cv", load_coefficient_of_variation(one)},
                      {"entropy", routing_entropy(one)}});
  }
  return {{"num_experts", options.ffn == FfnKind::kDense ? 0 : options.num_experts},
          {"top_k", options.ffn == FfnKind::kDense ? 0 : options.top_k},
          {"patch_size", options.patch_size},
          {"token_grid", {options.tokens_x(), options.tokens_y(), options.tokens_z()}},
          {"layers", layers}};
}

}  // namespace brainage::model
