#pragma once
// Convolutional stem (ERMoE-ba v2): the volume becomes tokens through a few small 3D
// convolutions instead of one linear projection per patch, so each token sees its
// neighbourhood at several scales (as the early layers of SFCN, Peng et al. 2021, Medical
// Image Analysis 68:101871, and the convolutional stems of Xiao et al. 2021, "Early
// convolutions help transformers see better", NeurIPS).
//
//   [B, C, Z, Y, X]
//   --shift by (p - pool)/2 voxels towards the origin (receptive fields centred on the patches)-->
//   --avg_pool3d(pool)-->                         [B, C, Z/pool, Y/pool, X/pool]
//   --L x (Conv3d 3³ stride 2 pad 1 -> GroupNorm(8) -> GELU)-->  widths w, 2w, ..., 2^(L-1)w
//                                                 [B, 2^(L-1)w, Z/p, Y/p, X/p]
//   --flatten to tokens, Linear(2^(L-1)w -> d)--> [B, T, d],  T = (Z/p)(Y/p)(X/p)
// with L = log2(p / pool). On the 80×96×80 model grid at pool 2: p = 8 gives 2 layers
// (16, 32 channels) and 10×12×10 = 1200 tokens of 8³ voxels (16 mm edge); p = 16 gives
// 3 layers (16, 32, 64) and 5×6×5 = 150 tokens of 16³ voxels (32 mm edge).
// Token order as the patch embedding: t = (pz * PY + py) * PX + px (docs/ARCHITECTURE.md).
// GroupNorm, not BatchNorm: statistics per scan, so batches of 8 and eval mode agree.
#include <torch/torch.h>

#include <vector>

namespace brainage::model {

class ConvStemImpl : public torch::nn::Module {
 public:
  /// `in_channels` C, token edge `patch_size` p in input voxels, token width `dim` d,
  /// first-layer width `width` w (a multiple of 8), `pool` the averaging block before the
  /// first convolution. p / pool must be a power of two >= 2. Throws c10::Error otherwise.
  ConvStemImpl(int64_t in_channels, int64_t patch_size, int64_t dim, int64_t width = 16, int64_t pool = 2);
  /// [B, C, Z, Y, X] (Z, Y, X divisible by p) -> tokens [B, T, d].
  torch::Tensor forward(const torch::Tensor& volumes);

  int64_t layers() const { return static_cast<int64_t>(convs_.size()); }

 private:
  int64_t channels_, patch_, pool_;
  std::vector<torch::nn::Conv3d> convs_;
  std::vector<torch::nn::GroupNorm> norms_;
  torch::nn::Linear project_{nullptr};
};
TORCH_MODULE(ConvStem);

}  // namespace brainage::model
