#pragma once
// Options of the ERMoE-ba brain-age transformer and of its two baselines. Every field
// is recorded in the checkpoint JSON (model/checkpoint.h) and restored from it.
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

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

/// How the input volume becomes tokens (model/patch_embedding.h, model/conv_stem.h).
enum class StemKind {
  kPatch,  // one linear projection per patch (optionally of pool³ block averages): the first design
  kConv,   // avg-pool, then 3³ stride-2 Conv3d + GroupNorm + GELU layers, then a linear projection
};
std::string to_string(StemKind kind);
/// "patch" | "conv"; throws ModelError otherwise.
StemKind stem_kind_from_string(const std::string& text);

/// What the head predicts and the training loss.
enum class LossKind {
  kL1,  // one output: (age - age_mean) / age_std; loss = L1 on the age / age_std
  kKl,  // logits over 1-year age bins; loss = KL(Gaussian soft label || softmax); age = expectation (SFCN)
};
std::string to_string(LossKind kind);
/// "l1" | "kl"; throws ModelError otherwise.
LossKind loss_kind_from_string(const std::string& text);

/// A per-scan scalar joined to the pooled token representation before the head.
enum class GlobalInput {
  kNone,            // no global input
  kLogBrainVolume,  // ln(brain tissue volume in mL) = ln(sum of the modulated CSF+GM+WM maps)
};
std::string to_string(GlobalInput input);
/// "none" | "log_brain_volume"; throws ModelError otherwise.
GlobalInput global_input_from_string(const std::string& text);

/// The input channel names a model may list (ModelOptions::channels), in no particular order.
inline const std::vector<std::string>& known_channels() {
  static const std::vector<std::string> names{"t1", "gm", "wm", "csf"};
  return names;
}

struct ModelOptions {
  /** Default = {"t1"}. Input channels, in this order, each one of "t1" (the normalised T1 on
      the model grid), "gm", "wm", "csf" (the modulated tissue maps divided by the 2 mm voxel's
      0.008 mL: the subject's tissue per template voxel as a fraction of the voxel, O(1)).
      prediction::model_input builds them; the model sees [B, channels.size(), Z, Y, X]. */
  std::vector<std::string> channels{"t1"};
  /** Default = kPatch (the first design; every checkpoint before stems existed). */
  StemKind stem = StemKind::kPatch;
  /** Default = 16. Conv stem: channels of the first Conv3d, doubled by each further layer
      (16-32 at patch 8, 16-32-64 at patch 16); a multiple of 8 (GroupNorm of 8 groups). */
  int64_t stem_width = 16;
  /** Default = 2. Conv stem: the volume is averaged in pool³ blocks before the first Conv3d
      (2: 4 mm voxels; the convolutions then cost 8x less); patch_size / stem_pool must be a
      power of two >= 2 (the number of stride-2 layers is its log2). */
  int64_t stem_pool = 2;
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
  /** Default = false (every checkpoint before it existed). true: in eval mode the model
      returns the mean of the ages it reads from the volume and from its left-right mirror
      image (X flipped about the MNI midline; test-time augmentation as in Wang et al. 2019,
      Neurocomputing 338:34-45). The age is then exactly invariant to a left-right flip
      (a header whose handedness is wrong) and the forward costs twice as much. Routing
      records and KL logits come from the unflipped pass. Training is unchanged. */
  bool test_time_flip = false;
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
  /** Default = 0 (off: ERMoE as published, no auxiliary loss). ERMoE only: weight of the
      Switch/GShard load-balancing loss computed on the Eigenbasis Scores normalised over
      the experts (p_t,e = s_t,e / Σ_e s_t,e). Without it the shipped ERMoE-ba v2 members
      sent 95 % of their tokens to one expert (docs/RESULTS.md, twelfth session). */
  double ermoe_balance_weight = 0.0;
  /** Default = false (the batch-wide loss of Switch/GShard). true: the load-balancing loss
      (softmax MoE, or ERMoE with ermoe_balance_weight > 0) is computed on each scan's
      tokens and averaged over the scans, so every scan must use every expert: routing can
      no longer send whole scans to one expert and is pushed to divide each brain by
      anatomy (the expert maps; issue 18 asks every expert for >= 5 % of every scan). */
  bool balance_per_scan = false;
  /** Default = 0.1. Dropout on attention/FFN outputs and before the head (training only). */
  double dropout = 0.1;
  /** Default = 47.0. Target normalisation: the head predicts (age - age_mean) / age_std. */
  double age_mean = 47.0;
  /** Default = 15.0. See age_mean. */
  double age_std = 15.0;
  /** Default = kL1 (every checkpoint before soft labels existed). */
  LossKind loss = LossKind::kL1;
  /** Default = 1.0. KL loss: standard deviation of the Gaussian soft label, years. */
  double label_sigma = 1.0;
  /** Default = 0.0. KL loss: centre of the first 1-year age bin, years (set by the trainer
      from the training ages minus a margin). */
  double age_bin_start = 0.0;
  /** Default = 0 (no bins: L1). KL loss: number of 1-year bins; centres age_bin_start + i. */
  int64_t age_bins = 0;
  /** Default = kNone. Global scalar input joined to the pooled representation. */
  GlobalInput global_input = GlobalInput::kNone;
  /** Default = 0.0. Training mean of the raw global input (ln mL), for standardisation. */
  double global_mean = 0.0;
  /** Default = 1.0. Training standard deviation of the raw global input. */
  double global_std = 1.0;

  int64_t in_channels() const { return static_cast<int64_t>(channels.size()); }
  /// Whether any channel is a tissue map (the scan's modulated maps must then be read).
  bool uses_tissue_maps() const;
  /// Width of the global input vector G (0 or 1).
  int64_t global_width() const { return global_input == GlobalInput::kNone ? 0 : 1; }
  /// Head outputs: 1 (L1) or age_bins (KL).
  int64_t head_outputs() const { return loss == LossKind::kKl ? age_bins : 1; }

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
