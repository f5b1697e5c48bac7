#include "model/conv_stem.h"

namespace brainage::model {

ConvStemImpl::ConvStemImpl(int64_t in_channels, int64_t patch_size, int64_t dim, int64_t width, int64_t pool)
    : channels_(in_channels), patch_(patch_size), pool_(pool) {
  TORCH_CHECK(in_channels >= 1, "ConvStem: in_channels must be >= 1, got ", in_channels);
  TORCH_CHECK(width >= 8 && width % 8 == 0, "ConvStem: width must be a multiple of 8 (GroupNorm of 8 groups), got ",
              width);
  TORCH_CHECK(pool >= 1 && patch_size % pool == 0, "ConvStem: pool ", pool, " must divide the patch size ", patch_size);
  int64_t reduction = patch_size / pool;
  TORCH_CHECK(reduction >= 2 && (reduction & (reduction - 1)) == 0, "ConvStem: patch size / pool = ", reduction,
              " must be a power of two >= 2");
  int64_t in = in_channels, out = width;
  for (int64_t i = 0; reduction > 1; reduction /= 2, ++i) {
    convs_.push_back(register_module("conv" + std::to_string(i),
                                     torch::nn::Conv3d(torch::nn::Conv3dOptions(in, out, 3).stride(2).padding(1))));
    norms_.push_back(register_module("norm" + std::to_string(i), torch::nn::GroupNorm(torch::nn::GroupNormOptions(8, out))));
    in = out;
    out *= 2;
  }
  project_ = register_module("project", torch::nn::Linear(in, dim));
}

torch::Tensor ConvStemImpl::forward(const torch::Tensor& volumes) {
  TORCH_CHECK(volumes.dim() == 5 && volumes.size(1) == channels_, "ConvStem: expected [B,", channels_, ",Z,Y,X], got ",
              volumes.sizes());
  TORCH_CHECK(volumes.size(2) % patch_ == 0 && volumes.size(3) % patch_ == 0 && volumes.size(4) % patch_ == 0,
              "ConvStem: patch size ", patch_, " must divide the grid ", volumes.size(2), "x", volumes.size(3), "x",
              volumes.size(4), " (Z,Y,X)");
  // Centring: with padding 1, token j's receptive field is centred on input voxel
  // p·j + (pool-1)/2, its patch on p·j + (p-1)/2. Shifting the volume by (p - pool)/2 voxels
  // towards the origin (cropped at the start of each axis, zeros appended at the end) puts
  // every token's receptive field on its own patch (exactly for an even pool), so the maps
  // drawn on the token grid show what each token saw.
  const int64_t s = (patch_ - pool_) / 2;
  torch::Tensor shifted = volumes;
  if (s > 0) {
    const int64_t z = volumes.size(2) - s, y = volumes.size(3) - s, x = volumes.size(4) - s;
    shifted = torch::zeros_like(volumes);
    shifted.narrow(2, 0, z).narrow(3, 0, y).narrow(4, 0, x).copy_(volumes.narrow(2, s, z).narrow(3, s, y).narrow(4, s, x));
  }
  auto x = pool_ > 1 ? torch::avg_pool3d(shifted, pool_) : shifted;  // [B, C, Z/pool, Y/pool, X/pool]
  for (size_t i = 0; i < convs_.size(); ++i) x = torch::gelu(norms_[i](convs_[i](x)));  // each halves Z, Y, X
  // [B, w', PZ, PY, PX] -> [B, T, w'] with t = (pz * PY + py) * PX + px -> [B, T, d]
  return project_(x.flatten(2).transpose(1, 2));
}

}  // namespace brainage::model
