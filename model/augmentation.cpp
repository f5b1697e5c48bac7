#include "model/augmentation.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace brainage::model {
namespace {

/// dst(p) = src(centre + A (p - centre) + t) with trilinear interpolation and zeros
/// outside; p = (x, y, z) voxel indices, A row-major 3x3. Volumes are [Z][Y][X] floats.
void resample_affine(const float* src, float* dst, int64_t nz, int64_t ny, int64_t nx, const double a[9],
                     const double t[3]) {
  const double cx = 0.5 * (nx - 1), cy = 0.5 * (ny - 1), cz = 0.5 * (nz - 1);
  at::parallel_for(0, nz, 1, [&](int64_t z0, int64_t z1) {
    for (int64_t z = z0; z < z1; ++z) {
      for (int64_t y = 0; y < ny; ++y) {
        const double dy = y - cy, dz = z - cz;
        // Source coordinates are affine in x: start + x * step.
        double sx = cx + a[0] * (0 - cx) + a[1] * dy + a[2] * dz + t[0];
        double sy = cy + a[3] * (0 - cx) + a[4] * dy + a[5] * dz + t[1];
        double sz = cz + a[6] * (0 - cx) + a[7] * dy + a[8] * dz + t[2];
        float* out = dst + (z * ny + y) * nx;
        for (int64_t x = 0; x < nx; ++x, sx += a[0], sy += a[3], sz += a[6]) {
          const double fx = std::floor(sx), fy = std::floor(sy), fz = std::floor(sz);
          const int64_t ix = static_cast<int64_t>(fx), iy = static_cast<int64_t>(fy), iz = static_cast<int64_t>(fz);
          if (ix < -1 || iy < -1 || iz < -1 || ix >= nx || iy >= ny || iz >= nz) {
            out[x] = 0.f;
            continue;
          }
          const double wx = sx - fx, wy = sy - fy, wz = sz - fz;
          double value = 0;
          for (int dzz = 0; dzz < 2; ++dzz) {
            const int64_t zz = iz + dzz;
            if (zz < 0 || zz >= nz) continue;
            const double wzz = dzz ? wz : 1 - wz;
            for (int dyy = 0; dyy < 2; ++dyy) {
              const int64_t yy = iy + dyy;
              if (yy < 0 || yy >= ny) continue;
              const double w = wzz * (dyy ? wy : 1 - wy);
              const float* row = src + (zz * ny + yy) * nx;
              if (ix >= 0) value += w * (1 - wx) * row[ix];
              if (ix + 1 < nx) value += w * wx * row[ix + 1];
            }
          }
          out[x] = static_cast<float>(value);
        }
      }
    }
  });
}

}  // namespace

torch::Tensor augment_batch(const torch::Tensor& volumes, const AugmentationOptions& o, std::mt19937_64& rng,
                            const std::vector<bool>& jitter_channels) {
  TORCH_CHECK(volumes.dim() == 5 && volumes.size(1) >= 1, "augment_batch: expected [B,C,Z,Y,X], got ",
              volumes.sizes());
  TORCH_CHECK(jitter_channels.empty() || static_cast<int64_t>(jitter_channels.size()) == volumes.size(1),
              "augment_batch: jitter_channels has ", jitter_channels.size(), " entries for ", volumes.size(1), " channels");
  TORCH_CHECK(volumes.scalar_type() == torch::kFloat32 && volumes.device().is_cpu(),
              "augment_batch: expects float32 CPU volumes");
  torch::NoGradGuard no_grad;
  if (!o.enabled) return volumes.clone();
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto sym = [&](double x) { return (2 * unit(rng) - 1) * x; };
  const int64_t b = volumes.size(0), nc = volumes.size(1), nz = volumes.size(2), ny = volumes.size(3), nx = volumes.size(4);
  const auto input = volumes.contiguous();
  auto output = torch::empty_like(input);
  for (int64_t i = 0; i < b; ++i) {
    // Draw every parameter, used or not, so the stream of draws does not depend on them.
    const bool flip = unit(rng) < o.flip_probability;
    const bool affine = unit(rng) < o.affine_probability;
    const double deg = M_PI / 180.0;
    const double ax = sym(o.max_rotation_deg) * deg, ay = sym(o.max_rotation_deg) * deg,
                 az = sym(o.max_rotation_deg) * deg;
    const double scale = 1 + sym(o.max_scale);
    const double t[3] = {sym(o.max_translation_vox), sym(o.max_translation_vox), sym(o.max_translation_vox)};
    const double gain = 1 + sym(o.intensity_scale), offset = sym(o.intensity_shift);
    double a[9];
    if (affine) {
      // A = Rz Ry Rx / scale in voxel units (the grid is isotropic), about the grid centre.
      const double cxr = std::cos(ax), sxr = std::sin(ax), cyr = std::cos(ay), syr = std::sin(ay),
                   czr = std::cos(az), szr = std::sin(az);
      const double rx[9] = {1, 0, 0, 0, cxr, -sxr, 0, sxr, cxr};
      const double ry[9] = {cyr, 0, syr, 0, 1, 0, -syr, 0, cyr};
      const double rz[9] = {czr, -szr, 0, szr, czr, 0, 0, 0, 1};
      auto mul = [](const double* p, const double* q, double* r) {
        for (int row = 0; row < 3; ++row)
          for (int col = 0; col < 3; ++col)
            r[row * 3 + col] = p[row * 3] * q[col] + p[row * 3 + 1] * q[3 + col] + p[row * 3 + 2] * q[6 + col];
      };
      double rzy[9];
      mul(rz, ry, rzy);
      mul(rzy, rx, a);
      for (double& v : a) v /= scale;
    }
    for (int64_t c = 0; c < nc; ++c) {
      auto src = input.select(0, i).select(0, c);
      auto dst = output.select(0, i).select(0, c);
      if (affine)
        resample_affine(src.data_ptr<float>(), dst.data_ptr<float>(), nz, ny, nx, a, t);
      else
        dst.copy_(src);
      if (flip) dst.copy_(dst.flip({2}));  // X: left-right about the MNI midline
      // Intensity jitter inside the head only: background stays 0.
      if (jitter_channels.empty() || jitter_channels[c]) dst.mul_(gain).add_((dst != 0).to(torch::kFloat32) * offset);
    }
  }
  return output;
}

}  // namespace brainage::model
