#pragma once
// 3D patch embedding: Conv3d(1 -> d, kernel = stride = p) over [B,1,Z,Y,X], flattened to
// tokens [B, T, d] in the order t = (pz * PY + py) * PX + px. With pool > 1 the volume is
// first averaged in pool³ blocks and the Conv3d has kernel = stride = p / pool: the same
// p³-voxel patches and token grid, with (p/pool)³ inputs per token.
#include <torch/torch.h>

namespace brainage::model {

class PatchEmbeddingImpl : public torch::nn::Module {
 public:
  PatchEmbeddingImpl(int64_t patch_size, int64_t dim, int64_t pool = 1);
  /// [B,1,Z,Y,X] with Z,Y,X divisible by p -> [B, T, d]. Computed as the equivalent
  /// patch-matrix product (the Conv3d with stride = kernel is exactly that), which is
  /// several times faster than LibTorch's CPU conv3d for this shape.
  torch::Tensor forward(const torch::Tensor& volumes);

  torch::nn::Conv3d conv{nullptr};

 private:
  int64_t patch_;  // edge of the patch in input voxels
  int64_t pool_;   // averaging block edge; the Conv3d kernel edge is patch_ / pool_
};
TORCH_MODULE(PatchEmbedding);

}  // namespace brainage::model
