#include "model/patch_embedding.h"

namespace brainage::model {

PatchEmbeddingImpl::PatchEmbeddingImpl(int64_t patch_size, int64_t dim) : patch_(patch_size) {
  TORCH_CHECK(patch_size >= 1, "PatchEmbedding: patch size must be >= 1, got ", patch_size);
  conv = register_module("conv", torch::nn::Conv3d(torch::nn::Conv3dOptions(1, dim, patch_size).stride(patch_size)));
}

torch::Tensor PatchEmbeddingImpl::forward(const torch::Tensor& volumes) {
  TORCH_CHECK(volumes.dim() == 5 && volumes.size(1) == 1, "PatchEmbedding: expected [B,1,Z,Y,X], got ",
              volumes.sizes());
  const int64_t b = volumes.size(0), p = patch_;
  const int64_t z = volumes.size(2), y = volumes.size(3), x = volumes.size(4);
  TORCH_CHECK(z % p == 0 && y % p == 0 && x % p == 0, "PatchEmbedding: patch size ", p,
              " must divide the grid ", z, "x", y, "x", x, " (Z,Y,X)");
  const int64_t pz = z / p, py = y / p, px = x / p;
  // [B,1,Z,Y,X] -> [B, PZ,p, PY,p, PX,p] -> [B, PZ,PY,PX, p,p,p] -> [B, T, p³]: the patch
  // in the same (kz, ky, kx) order as the Conv3d kernel, tokens in (pz, py, px) order.
  const auto patches = volumes.reshape({b, pz, p, py, p, px, p})
                           .permute({0, 1, 3, 5, 2, 4, 6})
                           .reshape({b, pz * py * px, p * p * p});
  const auto weight = conv->weight.view({conv->weight.size(0), p * p * p});  // [d, p³]
  return torch::addmm(conv->bias, patches.reshape({-1, p * p * p}), weight.t()).view({b, pz * py * px, -1});
}

}  // namespace brainage::model
