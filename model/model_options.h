#pragma once
// Options of the ERMoE-ba brain-age transformer and of its two baselines. Every field
// is recorded in the checkpoint JSON (model/checkpoint.h) and restored from it.
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <string>

namespace brainage::model {

/// Which feed-forward sub-layer the transformer blocks use.
enum class FfnKind {
  kErmoe,       // Eigenbasis-routed MoE (ERMoE): orthonormal expert bases, no aux loss
  kSoftmaxMoe,  // baseline: learned softmax router, top-k, Switch/GShard load-balancing aux loss
  kDense,       // baseline: one dense FFN per block
};
std::string to_string(FfnKind kind);
/// "ermoe" | "softmax_moe" | "dense"; throws ModelError otherwise.
FfnKind ffn_kind_from_string(const std::string& text);

struct ModelOptions {
  /** Default = {80, 96, 80}. Input grid [Z, Y, X] in voxels (the MNI 2 mm model grid). */
  std::array<int64_t, 3> grid{80, 96, 80};
  /** Default = 16. Cubic patch edge in voxels; must divide every grid dimension. */
  int64_t patch_size = 16;
  /** Default = 1 (off). Voxels are averaged in pool³ blocks inside each patch before the
      linear projection (the Conv3d then sees (p/pool)³ values per token): far fewer
      embedding weights, so a model trained on ~100 scans learns coarse anatomy (ventricles,
      sulci, atrophy) instead of memorising voxel texture. Must divide patch_size. */
  int64_t patch_pool = 1;
  /** Default = false (ViT style: LayerNorm each token, then average). true = average the
      tokens, then LayerNorm the pooled vector (ConvNeXt style): a per-token LayerNorm
      divides out each token's magnitude, i.e. how much bright or dark tissue its patch
      holds, which is much of what brain age is read from. */
  bool norm_after_pool = false;
  /** Default = 128. Token width d. */
  int64_t dim = 128;
  /** Default = 4. Transformer blocks. */
  int64_t depth = 4;
  /** Default = 4. Attention heads (must divide dim). */
  int64_t heads = 4;
  /** Default = kErmoe. Feed-forward kind of the blocks. */
  FfnKind ffn = FfnKind::kErmoe;
  /** Default = 1. Every n-th block (counting from the last) uses the MoE kind; the others dense. */
  int64_t moe_every = 1;
  /** Default = 8. Experts per MoE layer (E). */
  int64_t num_experts = 8;
  /** Default = 2. Experts per token (k). */
  int64_t top_k = 2;
  /** Default = 0 (off). Top-D threshold on the Eigenbasis Score for slots after the first. */
  double top_d_threshold = 0.0;
  /** Default = 16. Rank r of each expert basis U_e (d x r, orthonormal columns). */
  int64_t expert_rank = 16;
  /** Default = 128. Hidden width of each expert's small network (ERMoE and softmax MoE). */
  int64_t expert_hidden = 128;
  /** Default = 256. Hidden width of the dense FFN (dense blocks and the dense baseline). */
  int64_t ffn_hidden = 256;
  /** Default = 0.01. Weight of the load-balancing aux loss (softmax MoE only). */
  double aux_loss_weight = 0.01;
  /** Default = 0.1. Dropout on attention/FFN outputs and before the head (training only). */
  double dropout = 0.1;
  /** Default = 47.0. Target normalisation: the head predicts (age - age_mean) / age_std. */
  double age_mean = 47.0;
  /** Default = 15.0. See age_mean. */
  double age_std = 15.0;

  int64_t tokens_z() const { return grid[0] / patch_size; }
  int64_t tokens_y() const { return grid[1] / patch_size; }
  int64_t tokens_x() const { return grid[2] / patch_size; }
  int64_t num_tokens() const { return tokens_z() * tokens_y() * tokens_x(); }
  /// Whether block `index` (0-based) uses the MoE kind (always false for kDense).
  bool block_is_moe(int64_t index) const;
  /// Throws ModelError naming the broken rule (patch does not divide the grid, ...).
  void validate() const;
};

nlohmann::json to_json(const ModelOptions& options);
/// Reads what to_json wrote; throws ModelError on missing/ill-typed fields.
ModelOptions model_options_from_json(const nlohmann::json& json);

}  // namespace brainage::model
