#pragma once
// Expert load and routing entropy computed from the per-layer routing records.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <vector>

#include "model/brain_age_model.h"

namespace brainage::model {

/// Assignments per expert over every token slot of the record: [E] int64.
torch::Tensor expert_load(const LayerRouting& record);
/// Coefficient of variation of the expert load (population std / mean over the E experts,
/// counting all k slots of every token). 0 = perfectly balanced; sqrt(E-1) = one expert
/// takes everything.
double load_coefficient_of_variation(const LayerRouting& record);
/// Shannon entropy (nats) of the expert-load distribution (counts / total over all k
/// slots). ln(E) = perfectly balanced, 0 = one expert takes everything.
double routing_entropy(const LayerRouting& record);

/// The "routing" block of prediction.json (docs/ARCHITECTURE.md) for sample `sample` of a
/// forward run with routing records: num_experts, top_k, patch_size, token_grid [PX,PY,PZ],
/// and per MoE layer the top-1 expert (0-based) and top-1 score of every token, with that
/// sample's load_cv and entropy. Dense models give an empty "layers" list.
nlohmann::json routing_summary(const ModelOutput& output, const ModelOptions& options, int64_t sample = 0);

}  // namespace brainage::model
