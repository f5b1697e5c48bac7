#pragma once
// The ERMoE-ba brain-age transformer (and its dense / softmax-MoE baselines):
//   [B,C,Z,Y,X] --stem: PatchEmbedding (Conv3d, stride p) | ConvStem (3³ stride-2 convs)-->
//   [B,T,d] + position embeddings [1,T,d] on the token grid
//   --depth x pre-norm blocks (MHSA + FFN | ERMoE | softmax MoE)--> LayerNorm
//   --mean over tokens--> [B,d] (++ standardised global input [B,G])
//   --Linear(d+G, 1)--> age = output * age_std + age_mean            (loss "l1")
//   --Linear(d+G, K)--> logits over K 1-year bins, age = expectation  (loss "kl", SFCN)
// C = options.channels (t1, gm, wm, csf), T = (Z/p)(Y/p)(X/p). Token order
// (docs/ARCHITECTURE.md): t = (pz * PY + py) * PX + px. The defaults (C = 1, patch stem,
// L1, no global input) are the first design: its checkpoints load and predict unchanged.
#include <torch/torch.h>

#include <vector>

#include "model/model_options.h"
#include "model/moe_layers.h"
#include "model/attention.h"
#include "model/conv_stem.h"
#include "model/patch_embedding.h"

namespace brainage::model {

/// What a transformer block's feed-forward routed, for one forward pass.
struct LayerRouting {
  int64_t layer = 0;         // 1-based block index
  bool is_moe = false;       // false for dense blocks: the tensors below are undefined
  torch::Tensor expert_ids;  // [B, T, k] int64, best first
  torch::Tensor scores;      // [B, T, E] float: Eigenbasis Scores (ERMoE) or router probabilities (softmax MoE)
};

struct ModelOutput {
  torch::Tensor age;                 // [B] years
  torch::Tensor logits;              // [B, K] age-bin logits (loss "kl"); undefined for "l1"
  std::vector<LayerRouting> layers;  // one per block (filled when records are requested)
  torch::Tensor aux_loss;            // scalar: weighted load-balancing loss (softmax MoE; ERMoE with ermoe_balance_weight > 0; else 0)
  torch::Tensor member_ages;         // [B, K] years: each ensemble member's age (`age` = their mean); undefined for one model
  torch::Tensor vbm_age;             // [B] years: an ensemble's VBM model's age (then `age` = (1 − w) · mean of member_ages + w · vbm_age); else undefined
};

class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(const ModelOptions& options, bool moe);
  /// x [B,T,d] -> [B,T,d]; `routing`/`aux` receive the feed-forward's record and aux loss.
  torch::Tensor forward(const torch::Tensor& x, LayerRouting* routing, torch::Tensor* aux);

  bool is_moe() const { return ermoe_ || softmax_moe_; }
  ErmoeLayer ermoe() const { return ermoe_; }

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  MultiHeadSelfAttention attention_{nullptr};
  FeedForward dense_{nullptr};
  ErmoeLayer ermoe_{nullptr};
  SoftmaxMoeLayer softmax_moe_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  bool balance_per_scan_ = false;  // ModelOptions::balance_per_scan
};
TORCH_MODULE(TransformerBlock);

class BrainAgeModelImpl : public torch::nn::Module {
 public:
  explicit BrainAgeModelImpl(const ModelOptions& options);

  /// volumes [B,C,Z,Y,X] (C = options.channels.size(), Z,Y,X = options.grid) -> ages [B]
  /// (and the bin logits [B,K] with the KL loss); routing records per block when
  /// `with_routing` (they cost nothing extra to keep; detached copies). `global` [B,G] is the
  /// raw global input (G = options.global_width(); ln mL for log_brain_volume), standardised
  /// here with options.global_mean/global_std; required exactly when G > 0. Throws c10::Error
  /// on a shape that does not fit. In eval mode with options.test_time_flip the age is the
  /// mean over the volume and its left-right mirror image (X flipped); the rest of the
  /// output is the unflipped pass's.
  ModelOutput forward(const torch::Tensor& volumes, bool with_routing = false,
                      const torch::Tensor& global = torch::Tensor());

  /// Re-orthonormalises every ERMoE expert basis (QR retraction); call after each
  /// optimiser step. No-op for the baselines.
  void retract_bases();
  /// max over ERMoE layers and experts of ||U_eᵀU_e − I||_max (0 for the baselines).
  double max_basis_orthonormality_error() const;

  const ModelOptions& options() const { return options_; }

 private:
  /// One pass of forward() on `volumes` as given.
  ModelOutput forward_once(const torch::Tensor& volumes, bool with_routing, const torch::Tensor& global);

  ModelOptions options_;
  PatchEmbedding embed_{nullptr};  // stem "patch"
  ConvStem stem_{nullptr};         // stem "conv"
  torch::Tensor position_;  // [1, T, d]
  torch::Tensor bin_centres_;  // [K] years (loss "kl"; not a parameter or buffer: derived from the options)
  torch::nn::ModuleList blocks_;
  std::vector<TransformerBlock> block_list_;
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(BrainAgeModel);

}  // namespace brainage::model
