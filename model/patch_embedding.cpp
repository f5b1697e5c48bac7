#include "model/patch_embedding.h"

namespace brainage::model {

PatchEmbeddingImpl::PatchEmbeddingImpl(int64_t patch_size, int64_t dim, int64_t pool, int64_t in_channels)
    : patch_(patch_size), pool_(pool), channels_(in_channels) {
  TORCH_CHECK(patch_size >= 1, "PatchEmbedding: patch size must be >= 1, got ", patch_size);
  TORCH_CHECK(pool >= 1 && patch_size % pool == 0, "PatchEmbedding: pool ", pool, " must divide the patch size ",
              patch_size);
  TORCH_CHECK(in_channels >= 1, "PatchEmbedding: in_channels must be >= 1, got ", in_channels);
  const int64_t kernel = patch_size / pool;
  conv = register_module("conv", torch::nn::Conv3d(torch::nn::Conv3dOptions(in_channels, dim, kernel).stride(kernel)));
}

torch::Tensor PatchEmbeddingImpl::forward(const torch::Tensor& volumes) {
  TORCH_CHECK(volumes.dim() == 5 && volumes.size(1) == channels_, "PatchEmbedding: expected [B,", channels_,
              ",Z,Y,X], got ", volumes.sizes());
  TORCH_CHECK(volumes.size(2) % patch_ == 0 && volumes.size(3) % patch_ == 0 && volumes.size(4) % patch_ == 0,
              "PatchEmbedding: patch size ", patch_, " must divide the grid ", volumes.size(2), "x", volumes.size(3), "x",
              volumes.size(4), " (Z,Y,X)");
  const auto pooled = pool_ > 1 ? torch::avg_pool3d(volumes, pool_) : volumes;
  const int64_t b = pooled.size(0), c = channels_, p = patch_ / pool_;
  const int64_t z = pooled.size(2), y = pooled.size(3), x = pooled.size(4);
  const int64_t pz = z / p, py = y / p, px = x / p, k = c * p * p * p;
  // [B,C,Z,Y,X] -> [B,C, PZ,p, PY,p, PX,p] -> [B, PZ,PY,PX, C, p,p,p] -> [B, T, C·p³]: the
  // patch in the same (c, kz, ky, kx) order as the Conv3d kernel, tokens in (pz, py, px) order.
  const auto patches = pooled.reshape({b, c, pz, p, py, p, px, p})
                           .permute({0, 2, 4, 6, 1, 3, 5, 7})
                           .reshape({b, pz * py * px, k});
  const auto weight = conv->weight.view({conv->weight.size(0), k});  // [d, C·p³]
  return torch::addmm(conv->bias, patches.reshape({-1, k}), weight.t()).view({b, pz * py * px, -1});
}

}  // namespace brainage::model
