#include "model/patch_embedding.h"

namespace brainage::model {

PatchEmbeddingImpl::PatchEmbeddingImpl(int64_t patch_size, int64_t dim, int64_t pool) : patch_(patch_size), pool_(pool) {
  TORCH_CHECK(patch_size >= 1, "PatchEmbedding: patch size must be >= 1, got ", patch_size);
  TORCH_CHECK(pool >= 1 && patch_size % pool == 0, "PatchEmbedding: pool ", pool, " must divide the patch size ",
              patch_size);
  const int64_t kernel = patch_size / pool;
  conv = register_module("conv", torch::nn::Conv3d(torch::nn::Conv3dOptions(1, dim, kernel).stride(kernel)));
}

torch::Tensor PatchEmbeddingImpl::forward(const torch::Tensor& volumes) {
  TORCH_CHECK(volumes.dim() == 5 && volumes.size(1) == 1, "PatchEmbedding: expected [B,1,Z,Y,X], got ",
              volumes.sizes());
  TORCH_CHECK(volumes.size(2) % patch_ == 0 && volumes.size(3) % patch_ == 0 && volumes.size(4) % patch_ == 0,
              "PatchEmbedding: patch size ", patch_, " must divide the grid ", volumes.size(2), "x", volumes.size(3), "x",
              volumes.size(4), " (Z,Y,X)");
  const auto pooled = pool_ > 1 ? torch::avg_pool3d(volumes, pool_) : volumes;
  const int64_t b = pooled.size(0), p = patch_ / pool_;
  const int64_t z = pooled.size(2), y = pooled.size(3), x = pooled.size(4);
  const int64_t pz = z / p, py = y / p, px = x / p;
  // [B,1,Z,Y,X] -> [B, PZ,p, PY,p, PX,p] -> [B, PZ,PY,PX, p,p,p] -> [B, T, p³]: the patch
  // in the same (kz, ky, kx) order as the Conv3d kernel, tokens in (pz, py, px) order.
  const auto patches = pooled.reshape({b, pz, p, py, p, px, p})
                           .permute({0, 1, 3, 5, 2, 4, 6})
                           .reshape({b, pz * py * px, p * p * p});
  const auto weight = conv->weight.view({conv->weight.size(0), p * p * p});  // [d, p³]
  return torch::addmm(conv->bias, patches.reshape({-1, p * p * p}), weight.t()).view({b, pz * py * px, -1});
}

}  // namespace brainage::model
