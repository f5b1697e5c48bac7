#pragma once
// 3D patch embedding: Conv3d(C -> d, kernel = stride = p) over [B,C,Z,Y,X], flattened to
// tokens [B, T, d] in the order t = (pz * PY + py) * PX + px. With pool > 1 the volume is
// first averaged in pool³ blocks and the Conv3d has kernel = stride = p / pool: the same
// p³-voxel patches and token grid, with C·(p/pool)³ inputs per token.
#include <torch/torch.h>

namespace brainage::model {

class PatchEmbeddingImpl : public torch::nn::Module {
 public:
  /// `in_channels` C (default 1: the first design, one T1 channel). Throws c10::Error for a
  /// patch, pool or channel count that does not fit.
  PatchEmbeddingImpl(int64_t patch_size, int64_t dim, int64_t pool = 1, int64_t in_channels = 1);
  /// [B,C,Z,Y,X] with Z,Y,X divisible by p -> [B, T, d]. Computed as the equivalent
  /// patch-matrix product (the Conv3d with stride = kernel is exactly that), which is
  /// several times faster than LibTorch's CPU conv3d for this shape.
  torch::Tensor forward(const torch::Tensor& volumes);

  torch::nn::Conv3d conv{nullptr};

 private:
  int64_t patch_;     // edge of the patch in input voxels
  int64_t pool_;      // averaging block edge; the Conv3d kernel edge is patch_ / pool_
  int64_t channels_;  // C
};
TORCH_MODULE(PatchEmbedding);

}  // namespace brainage::model
