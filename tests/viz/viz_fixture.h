#pragma once
// A synthetic prediction folder on the real model grid: Colin27 (mricron-data) resampled
// to 2 mm as the anatomy, ch2bet > 0 as the brain mask, a crude intensity-based tissue
// map, a known MNI->native translation, a native scan on a lattice-aligned grid, and a
// routing record whose experts are known (octants of the token grid).
#include <itkIdentityTransform.h>
#include <itkImageRegionIteratorWithIndex.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "preprocessing/model_grid.h"
#include "tests/test_data.h"
#include "viz/native_space.h"
#include "viz/routing_summary.h"
#include "viz/volume_io.h"

namespace brainage::testing {

namespace viz = brainage::viz;

/// scratch_dir() unique to this process: ctest runs the cases of one suite in parallel.
inline std::filesystem::path process_scratch_dir(const std::string& name) {
  return scratch_dir(name + "-" + std::to_string(::getpid()));
}

template <typename TImage>
typename TImage::Pointer model_grid(typename TImage::PixelType fill) {
  auto im = TImage::New();
  typename TImage::SizeType size;
  typename TImage::PointType origin;
  typename TImage::DirectionType dir;
  dir.SetIdentity();
  dir(0, 0) = -1.0;
  dir(1, 1) = -1.0;
  for (unsigned a = 0; a < 3; ++a) size[a] = preprocessing::kModelGridSize[a];
  origin[0] = -preprocessing::kModelGridOriginRAS[0];
  origin[1] = -preprocessing::kModelGridOriginRAS[1];
  origin[2] = preprocessing::kModelGridOriginRAS[2];
  im->SetRegions(size);
  im->SetSpacing(preprocessing::kModelGridSpacing);
  im->SetOrigin(origin);
  im->SetDirection(dir);
  im->Allocate();
  im->FillBuffer(fill);
  return im;
}

/// `source` resampled onto `reference`'s grid through `transform` (output point -> source
/// point); linear or nearest neighbour.
template <typename TImage>
typename TImage::Pointer resample_onto(const TImage* source, const itk::ImageBase<3>* reference,
                                       const itk::Transform<double, 3, 3>* transform, bool nearest) {
  auto r = itk::ResampleImageFilter<TImage, TImage>::New();
  r->SetInput(source);
  r->SetTransform(transform);
  if (nearest)
    r->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<TImage, double>::New());
  else
    r->SetInterpolator(itk::LinearInterpolateImageFunction<TImage, double>::New());
  r->SetDefaultPixelValue(0);
  r->SetOutputParametersFromImage(reference);
  r->Update();
  typename TImage::Pointer out = r->GetOutput();
  out->DisconnectPipeline();
  return out;
}

/// Octant pattern: expert = (px >= PX/2) + 2 (py >= PY/2) + 4 (pz >= PZ/2), mod E; layer
/// `shift` rotates it by `shift` experts.
inline std::vector<int> octant_experts(const std::array<int, 3>& g, int num_experts, int shift) {
  std::vector<int> e(static_cast<std::size_t>(g[0] * g[1] * g[2]));
  for (int pz = 0; pz < g[2]; ++pz)
    for (int py = 0; py < g[1]; ++py)
      for (int px = 0; px < g[0]; ++px) {
        const int o = (px >= g[0] / 2 ? 1 : 0) + (py >= g[1] / 2 ? 2 : 0) + (pz >= g[2] / 2 ? 4 : 0);
        e[static_cast<std::size_t>((pz * g[1] + py) * g[0] + px)] = (o + shift) % num_experts;
      }
  return e;
}

struct SyntheticPrediction {
  std::filesystem::path dir;
  std::filesystem::path scan;
  viz::RoutingSummary routing;
  std::array<double, 3> shift_lps{10.0, -6.0, 4.0};  // native point = MNI point + shift (LPS mm)
};

/// Writes the folder. Layers: [octants, octants, octants rotated by 1], so the majority
/// summary equals the octant pattern. Needs /usr/share/mricron/templates.
inline SyntheticPrediction write_synthetic_prediction(const std::filesystem::path& dir, int num_experts = 8,
                                                      int patch = 16) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  SyntheticPrediction s;
  s.dir = dir;
  const auto ch2 = viz::read_float_volume(mricron_templates_dir() / "ch2.nii.gz");
  const auto bet = viz::read_float_volume(mricron_templates_dir() / "ch2bet.nii.gz");
  auto grid = model_grid<viz::ImageType>(0.0f);
  auto identity = itk::IdentityTransform<double, 3>::New();
  auto t1 = resample_onto<viz::ImageType>(bet, grid, identity, false);
  auto bet_grid = resample_onto<viz::ImageType>(bet, grid, identity, false);
  auto mask = model_grid<viz::LabelImageType>(0);
  auto tissue = model_grid<viz::LabelImageType>(0);
  std::vector<float> in_brain;
  itk::ImageRegionIteratorWithIndex<viz::ImageType> it(bet_grid, bet_grid->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it)
    if (it.Get() > 0.5f) {
      mask->SetPixel(it.GetIndex(), 1);
      in_brain.push_back(it.Get());
    }
  std::sort(in_brain.begin(), in_brain.end());
  const float csf = in_brain[in_brain.size() * 15 / 100], gm = in_brain[in_brain.size() * 55 / 100];
  for (it.GoToBegin(); !it.IsAtEnd(); ++it)
    if (mask->GetPixel(it.GetIndex()))
      tissue->SetPixel(it.GetIndex(), it.Get() < csf ? 1 : it.Get() < gm ? 2 : 3);
  viz::write_volume(t1, dir / "t1_mni2mm.nii.gz");
  viz::write_volume(mask, dir / "brain_mask_mni2mm.nii.gz");
  viz::write_volume(tissue, dir / "tissue_mni2mm.nii.gz");

  // MNI -> native: a translation by shift (ITK registration convention).
  auto t = viz::AffineTransformType::New();
  viz::AffineTransformType::OutputVectorType tr;
  for (unsigned a = 0; a < 3; ++a) tr[a] = s.shift_lps[a];
  t->SetTranslation(tr);
  viz::write_transform(t, dir / "native_to_mni.tfm");

  // Native scan: LPS-identity direction, 2 mm, voxel centres on the shifted MNI lattice.
  auto native = viz::ImageType::New();
  viz::ImageType::SizeType size = {{90, 104, 88}};
  viz::ImageType::PointType origin;
  origin[0] = -89.0;
  origin[1] = -120.0;
  origin[2] = -80.0;
  native->SetRegions(size);
  native->SetSpacing(2.0);
  native->SetOrigin(origin);
  native->Allocate();
  auto inverse = viz::AffineTransformType::New();
  t->GetInverse(inverse);
  auto scan = resample_onto<viz::ImageType>(ch2, native, inverse, false);
  s.scan = dir / "scan_native.nii.gz";
  viz::write_volume(scan, s.scan);
  auto native_mask = resample_onto<viz::LabelImageType>(mask, native, inverse, true);
  viz::write_volume(native_mask, dir / "brain_mask_native.nii.gz");

  s.routing.num_experts = num_experts;
  s.routing.top_k = 2;
  s.routing.patch_size = patch;
  for (unsigned a = 0; a < 3; ++a) s.routing.token_grid[a] = static_cast<int>(preprocessing::kModelGridSize[a]) / patch;
  nlohmann::json layers = nlohmann::json::array();
  const int shifts[3] = {0, 0, 1};
  for (int l = 0; l < 3; ++l) {
    viz::RoutingLayer layer;
    layer.layer = l + 1;
    layer.expert = octant_experts(s.routing.token_grid, num_experts, shifts[l]);
    for (std::size_t k = 0; k < layer.expert.size(); ++k) layer.score.push_back(0.5f + 0.01f * static_cast<float>(k % 40));
    layers.push_back({{"layer", layer.layer}, {"expert", layer.expert}, {"score", layer.score}});
    s.routing.layers.push_back(layer);
  }
  nlohmann::json j = {{"scan", fs::absolute(s.scan).string()},
                      {"predicted_age", 43.2},
                      {"model_id", "synthetic-test"},
                      {"routing",
                       {{"num_experts", num_experts},
                        {"top_k", 2},
                        {"patch_size", patch},
                        {"token_grid", s.routing.token_grid},
                        {"layers", layers}}}};
  std::ofstream(dir / "prediction.json") << j.dump(1);
  return s;
}

}  // namespace brainage::testing
