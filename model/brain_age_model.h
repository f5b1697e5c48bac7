#pragma once
// The ERMoE-ba brain-age transformer (and its dense / softmax-MoE baselines):
//   [B,1,Z,Y,X] --PatchEmbedding (Conv3d, stride p)--> [B,T,d] + position embeddings
//   --depth x pre-norm blocks (MHSA + FFN | ERMoE | softmax MoE)--> LayerNorm
//   --mean over tokens--> Linear(d,1) --> age in years (head output * age_std + age_mean).
// Token order (docs/ARCHITECTURE.md): t = (pz * PY + py) * PX + px.
#include <torch/torch.h>

#include <vector>

#include "model/model_options.h"
#include "model/moe_layers.h"
#include "model/attention.h"
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
  std::vector<LayerRouting> layers;  // one per block (filled when records are requested)
  torch::Tensor aux_loss;            // scalar: weighted load-balancing loss (0 unless softmax MoE)
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
};
TORCH_MODULE(TransformerBlock);

class BrainAgeModelImpl : public torch::nn::Module {
 public:
  explicit BrainAgeModelImpl(const ModelOptions& options);

  /// volumes [B,1,Z,Y,X] (Z,Y,X = options.grid) -> ages [B]; routing records per block
  /// when `with_routing` (they cost nothing extra to keep; detached copies).
  ModelOutput forward(const torch::Tensor& volumes, bool with_routing = false);

  /// Re-orthonormalises every ERMoE expert basis (QR retraction); call after each
  /// optimiser step. No-op for the baselines.
  void retract_bases();
  /// max over ERMoE layers and experts of ||U_eᵀU_e − I||_max (0 for the baselines).
  double max_basis_orthonormality_error() const;

  const ModelOptions& options() const { return options_; }

 private:
  ModelOptions options_;
  PatchEmbedding embed_{nullptr};
  torch::Tensor position_;  // [1, T, d]
  torch::nn::ModuleList blocks_;
  std::vector<TransformerBlock> block_list_;
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(BrainAgeModel);

}  // namespace brainage::model
