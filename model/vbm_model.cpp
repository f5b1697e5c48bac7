#include "model/vbm_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/errors.h"
#include "model/trainer.h"

namespace brainage::model {
namespace {

void check_maps(const torch::Tensor& maps, int64_t min_channels, const std::array<int64_t, 3>* grid) {
  if (!maps.defined() || maps.dim() != 5)
    throw ModelError("vbm: maps must be [N, C, Z, Y, X], got " + std::to_string(maps.defined() ? maps.dim() : 0) + "-D");
  if (maps.size(1) < min_channels)
    throw ModelError("vbm: maps have " + std::to_string(maps.size(1)) + " channels, the model reads channel " +
                     std::to_string(min_channels - 1));
  if (grid && (maps.size(2) != (*grid)[0] || maps.size(3) != (*grid)[1] || maps.size(4) != (*grid)[2]))
    throw ModelError("vbm: maps are " + std::to_string(maps.size(2)) + "x" + std::to_string(maps.size(3)) + "x" +
                     std::to_string(maps.size(4)) + ", the model's grid is " + std::to_string((*grid)[0]) + "x" +
                     std::to_string((*grid)[1]) + "x" + std::to_string((*grid)[2]));
}

int64_t max_channel(const std::vector<int64_t>& channels) {
  if (channels.empty()) throw ModelError("vbm: no input channel selected");
  for (int64_t c : channels)
    if (c < 0) throw ModelError("vbm: channel " + std::to_string(c) + " is negative");
  return *std::max_element(channels.begin(), channels.end());
}

/// [N, C', z, y, x] sampled maps -> [N, C' × mask voxels] double features.
torch::Tensor masked_features(const torch::Tensor& sampled, const torch::Tensor& mask) {
  const auto flat_mask = mask.reshape({-1});
  const auto flat = sampled.reshape({sampled.size(0), sampled.size(1), -1}).index({torch::indexing::Slice(),
                                                                                   torch::indexing::Slice(), flat_mask});
  return flat.reshape({sampled.size(0), -1}).to(torch::kDouble);
}

torch::Tensor select_channels(const torch::Tensor& maps, const std::vector<int64_t>& channels) {
  return maps.index_select(1, torch::tensor(channels, torch::kLong)).to(torch::kFloat);
}

struct Standardiser {
  torch::Tensor mean, scale;
  Standardiser(const torch::Tensor& x, bool by_sd) {
    mean = x.mean(0);
    scale = by_sd ? x.std(0, /*unbiased=*/false) : torch::ones_like(mean);
    // A feature (nearly) constant in training, e.g. a voxel inside every subject's white
    // matter (sd at float rounding level), would get a weight × 1/sd that turns a new
    // subject's ordinary difference there into an absurd age: sds are floored at 1 % of
    // the mean sd (all ones when nothing varies).
    const double floor = 0.01 * scale.mean().item<double>();
    scale = floor > 0 ? torch::clamp_min(scale, floor) : torch::ones_like(scale);
  }
  torch::Tensor operator()(const torch::Tensor& x) const { return (x - mean) / scale; }
};

double mean_absolute_error(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += std::abs(a[i] - b[i]);
  return s / static_cast<double>(a.size());
}

}  // namespace

namespace {

/// [out, in] matrix that smooths one axis of `in` voxels with a Gaussian (σ in voxels,
/// truncated at 3σ, zero beyond the grid) and keeps every `stride`-th voxel from stride/2.
/// σ = 0: plain sampling.
torch::Tensor axis_operator(int64_t in, double sigma, int64_t stride) {
  const int64_t start = stride / 2;
  const int64_t out = (in - start + stride - 1) / stride;
  auto m = torch::zeros({out, in}, torch::kFloat);
  const auto radius = static_cast<int64_t>(std::ceil(3.0 * sigma));
  double norm = 0;
  for (int64_t d = -radius; d <= radius; ++d) norm += sigma > 0 ? std::exp(-0.5 * d * d / (sigma * sigma)) : 1.0;
  auto a = m.accessor<float, 2>();
  for (int64_t o = 0; o < out; ++o) {
    const int64_t centre = start + o * stride;
    for (int64_t d = -radius; d <= radius; ++d) {
      const int64_t i = centre + d;
      if (i < 0 || i >= in) continue;
      a[o][i] = static_cast<float>((sigma > 0 ? std::exp(-0.5 * d * d / (sigma * sigma)) : 1.0) / norm);
    }
  }
  return m;
}

}  // namespace

VbmScaling vbm_scaling_from_string(const std::string& name) {
  if (name == "none") return VbmScaling::kNone;
  if (name == "proportional") return VbmScaling::kTotalTissue;
  if (name == "parenchyma") return VbmScaling::kParenchyma;
  throw ModelError("vbm: scaling must be none, proportional or parenchyma, got '" + name + "'");
}

std::string to_string(VbmScaling scaling) {
  switch (scaling) {
    case VbmScaling::kTotalTissue: return "proportional";
    case VbmScaling::kParenchyma: return "parenchyma";
    case VbmScaling::kNone: break;
  }
  return "none";
}

torch::Tensor globally_scaled(const torch::Tensor& maps, VbmScaling scaling) {
  if (scaling == VbmScaling::kNone) return maps.to(torch::kFloat);
  check_maps(maps, 3, nullptr);
  using torch::indexing::Slice;
  const bool parenchyma = scaling == VbmScaling::kParenchyma;
  const double reference_ml = parenchyma ? 1200.0 : 1500.0;
  const auto total = maps.index({Slice(), parenchyma ? Slice(1, 3) : Slice(0, 3)})
                         .to(torch::kDouble)
                         .sum({1, 2, 3, 4});  // [N] mL
  if (!(total.min().item<double>() > 0))
    throw ModelError(std::string("vbm: a subject's ") + (parenchyma ? "GM+WM" : "tissue") + " maps sum to zero");
  return (maps.to(torch::kDouble) * (reference_ml / total).view({-1, 1, 1, 1, 1})).to(torch::kFloat);
}

torch::Tensor left_right_symmetrised(const torch::Tensor& maps) {
  check_maps(maps, 1, nullptr);
  const auto m = maps.to(torch::kFloat);
  return (0.5 * (m + m.flip({4}))).contiguous();
}

torch::Tensor smooth_and_sample(const torch::Tensor& maps, double fwhm_mm, double voxel_mm, int64_t stride) {
  check_maps(maps, 1, nullptr);
  if (stride < 1) throw ModelError("vbm: stride must be >= 1, got " + std::to_string(stride));
  torch::NoGradGuard no_grad;
  // Separable: one small matrix product per axis, each also sampling that axis, so the
  // later axes run on fewer voxels (LibTorch's CPU conv3d is ~50x slower for this).
  const double sigma = fwhm_mm > 0 ? fwhm_mm / (2.0 * std::sqrt(2.0 * std::log(2.0))) / voxel_mm : 0.0;
  const auto n = maps.size(0), c = maps.size(1);
  auto x = maps.to(torch::kFloat).reshape({n * c, maps.size(2), maps.size(3), maps.size(4)});
  x = torch::matmul(x, axis_operator(maps.size(4), sigma, stride).t());                  // [B, Z, Y, x]
  x = torch::einsum("bzyx,oy->bzox", {x, axis_operator(maps.size(3), sigma, stride)});  // [B, Z, y, x]
  x = torch::einsum("bzyx,oz->boyx", {x, axis_operator(maps.size(2), sigma, stride)});  // [B, z, y, x]
  return x.reshape({n, c, x.size(1), x.size(2), x.size(3)}).contiguous();
}

std::vector<torch::Tensor> ridge_dual_weights(const torch::Tensor& x, const torch::Tensor& y,
                                              const std::vector<double>& lambdas_relative) {
  // K = X Xᵀ = Q diag(e) Qᵀ; α(λ) = Q diag(1 / (e + λ)) Qᵀ y; w = Xᵀ α.
  const auto gram = torch::matmul(x, x.t());
  const double scale = gram.trace().item<double>() / static_cast<double>(x.size(0));
  auto [eigenvalues, eigenvectors] = torch::linalg::eigh(gram, "L");
  eigenvalues = eigenvalues.clamp_min(0);
  const auto qty = torch::matmul(eigenvectors.t(), y);
  std::vector<torch::Tensor> out;
  for (double lambda : lambdas_relative) {
    const auto alpha = torch::matmul(eigenvectors, qty / (eigenvalues + lambda * std::max(scale, 1e-300)));
    out.push_back(torch::matmul(x.t(), alpha));
  }
  return out;
}

namespace {

/// The maps as fitting and prediction both read them: globally scaled, then (optionally)
/// averaged with their left-right mirror image.
torch::Tensor prepared_maps(const torch::Tensor& maps, VbmScaling scaling, bool left_right_symmetric) {
  const auto scaled = globally_scaled(maps, scaling);
  return left_right_symmetric ? left_right_symmetrised(scaled) : scaled;
}

}  // namespace

namespace {

/// The rows fit_vbm trains on: the subjects' maps, then their augmentation copies, as the
/// model reads them (globally scaled, mirrored if asked, the chosen channels), kept apart so
/// no [N + M, ...] full-resolution tensor is built; `ages` holds a copy's subject's age.
struct FitRows {
  torch::Tensor subjects, copies;  // [N, C', Z, Y, X], [M, C', Z, Y, X] (copies undefined when M = 0)
  torch::Tensor tissue;            // [N, 1, Z, Y, X] the subjects' CSF+GM+WM (mL), for the mask
  std::vector<double> ages;        // [N + M]
  std::vector<std::vector<int64_t>> copies_of;  // per subject: its copies' rows (N + j)

  /// [N + M, P] features at one FWHM inside `mask`.
  torch::Tensor features(const VbmOptions& o, double fwhm_mm, const torch::Tensor& mask) const {
    auto x = masked_features(smooth_and_sample(subjects, fwhm_mm, o.voxel_mm, o.stride), mask);
    if (copies.defined()) x = torch::cat({x, masked_features(smooth_and_sample(copies, fwhm_mm, o.voxel_mm, o.stride), mask)});
    return x;
  }
  /// The subjects `subject_rows` and every copy of them.
  torch::Tensor with_copies(const std::vector<int64_t>& subject_rows) const {
    std::vector<int64_t> rows = subject_rows;
    for (int64_t i : subject_rows) rows.insert(rows.end(), copies_of[i].begin(), copies_of[i].end());
    return torch::tensor(rows, torch::kLong);
  }
};

FitRows fit_rows(const torch::Tensor& maps, const std::vector<double>& ages, const VbmOptions& o,
                 const VbmAugmentation& augmentation) {
  using torch::indexing::Slice;
  FitRows rows;
  const auto n = static_cast<int64_t>(ages.size());
  {
    const auto scaled = prepared_maps(maps, o.scaling, o.left_right_symmetric);
    rows.subjects = select_channels(scaled, o.channels);
    // The mask follows the total tissue (CSF+GM+WM: the maps' first three channels), whichever are read.
    rows.tissue = scaled.index({Slice(), Slice(0, 3)}).sum(1, /*keepdim=*/true);
  }
  rows.ages = ages;
  rows.copies_of.assign(static_cast<std::size_t>(n), {});
  const int64_t m = augmentation.maps.defined() ? augmentation.maps.size(0) : 0;
  if (m == 0) return rows;
  const std::array<int64_t, 3> grid{maps.size(2), maps.size(3), maps.size(4)};
  check_maps(augmentation.maps, maps.size(1), &grid);
  if (static_cast<int64_t>(augmentation.subject_index.size()) != m)
    throw ModelError("vbm: " + std::to_string(m) + " augmentation copies with " +
                     std::to_string(augmentation.subject_index.size()) + " subject indices");
  for (int64_t j = 0; j < m; ++j) {
    const int64_t i = augmentation.subject_index[static_cast<std::size_t>(j)];
    if (i < 0 || i >= n)
      throw ModelError("vbm: augmentation copy " + std::to_string(j) + " names subject row " + std::to_string(i) +
                       ", not one of the " + std::to_string(n) + " subjects");
    rows.ages.push_back(ages[static_cast<std::size_t>(i)]);
    rows.copies_of[static_cast<std::size_t>(i)].push_back(n + j);
  }
  rows.copies = select_channels(prepared_maps(augmentation.maps, o.scaling, o.left_right_symmetric), o.channels);
  return rows;
}

}  // namespace

VbmFitResult fit_vbm(const torch::Tensor& maps, const std::vector<double>& ages, const VbmOptions& o,
                     const VbmAugmentation& augmentation) {
  check_maps(maps, max_channel(o.channels) + 1, nullptr);
  const auto n = static_cast<int64_t>(ages.size());
  if (maps.size(0) != n)
    throw ModelError("vbm: " + std::to_string(maps.size(0)) + " maps for " + std::to_string(n) + " ages");
  if (o.inner_folds < 2 || n < 2 * o.inner_folds)
    throw ModelError("vbm: needs >= 2 inner folds and >= 2 subjects per fold, got " + std::to_string(n) +
                     " subjects for " + std::to_string(o.inner_folds) + " folds");
  if (o.fwhm_mm.empty() || o.lambdas.empty()) throw ModelError("vbm: no FWHM or λ candidate");
  torch::NoGradGuard no_grad;
  const FitRows rows = fit_rows(maps, ages, o, augmentation);
  const auto ages_t = torch::tensor(rows.ages, torch::kDouble);  // [N + M]

  // Inner folds over the subjects; a subject's copies train with it and are never scored.
  std::vector<std::pair<torch::Tensor, std::vector<int64_t>>> folds;
  for (int64_t f = 0; f < o.inner_folds; ++f) {
    TrainOptions split;
    split.folds = o.inner_folds;
    split.fold = f;
    split.seed = o.seed;
    const auto [train, test] = split_subjects(ages, split);
    folds.emplace_back(rows.with_copies(train), test);
  }

  VbmFitResult result;
  double best_mae = std::numeric_limits<double>::infinity();
  std::size_t best_f = 0, best_l = 0;
  torch::Tensor best_mask;
  nlohmann::json mae_table = nlohmann::json::array();
  for (std::size_t fi = 0; fi < o.fwhm_mm.size(); ++fi) {
    const auto total = smooth_and_sample(rows.tissue, o.fwhm_mm[fi], o.voxel_mm, o.stride).mean(0)[0];  // [z, y, x]
    const auto mask = total > o.mask_fraction * total.max().item<double>();
    const auto x = rows.features(o, o.fwhm_mm[fi], mask);  // [N + M, P]
    if (x.size(1) == 0) throw ModelError("vbm: the brain mask on the sampled grid is empty");
    std::vector<std::vector<double>> oof(o.lambdas.size(), std::vector<double>(n, 0.0));
    for (const auto& [tr, test] : folds) {
      const auto te = torch::tensor(test, torch::kLong);
      const Standardiser standardise(x.index_select(0, tr), o.standardize);
      const auto y = ages_t.index_select(0, tr);
      const double y_mean = y.mean().item<double>();
      const auto weights = ridge_dual_weights(standardise(x.index_select(0, tr)), y - y_mean, o.lambdas);
      const auto x_test = standardise(x.index_select(0, te));
      for (std::size_t li = 0; li < o.lambdas.size(); ++li) {
        const auto pred = (torch::matmul(x_test, weights[li]) + y_mean).contiguous();
        for (std::size_t k = 0; k < test.size(); ++k) oof[li][test[k]] = pred[k].item<double>();
      }
    }
    nlohmann::json row = nlohmann::json::array();
    for (std::size_t li = 0; li < o.lambdas.size(); ++li) {
      const double mae = mean_absolute_error(oof[li], ages);
      row.push_back(mae);
      if (mae < best_mae) {
        best_mae = mae;
        best_f = fi;
        best_l = li;
        best_mask = mask;
        result.inner_oof_predictions = oof[li];
      }
    }
    mae_table.push_back(row);
  }

  // Refit on every training subject at the chosen setting.
  VbmModel& m = result.model;
  m.channels = o.channels;
  m.grid = {maps.size(2), maps.size(3), maps.size(4)};
  m.fwhm_mm = o.fwhm_mm[best_f];
  m.voxel_mm = o.voxel_mm;
  m.stride = o.stride;
  m.lambda_relative = o.lambdas[best_l];
  m.scaling = o.scaling;
  m.left_right_symmetric = o.left_right_symmetric;
  m.mask = best_mask;
  const auto x = rows.features(o, m.fwhm_mm, m.mask);
  const Standardiser standardise(x, o.standardize);
  m.feature_mean = standardise.mean;
  m.feature_scale = standardise.scale;
  m.intercept = ages_t.mean().item<double>();
  m.weights = ridge_dual_weights(standardise(x), ages_t - m.intercept, {m.lambda_relative})[0];
  m.bias_correction = BiasCorrection::fit(ages, result.inner_oof_predictions);
  result.selection = {{"fwhm_mm", o.fwhm_mm},
                      {"lambdas_relative", o.lambdas},
                      {"inner_cv_mae", mae_table},
                      {"chosen_fwhm_mm", m.fwhm_mm},
                      {"chosen_lambda_relative", m.lambda_relative},
                      {"chosen_inner_cv_mae", best_mae},
                      {"features", x.size(1)},
                      {"augmentation_copies", x.size(0) - n}};
  return result;
}

torch::Tensor VbmModel::predict_raw(const torch::Tensor& maps) const {
  check_maps(maps, max_channel(channels) + 1, &grid);
  torch::NoGradGuard no_grad;
  const auto scaled = prepared_maps(maps, scaling, left_right_symmetric);
  const auto x = masked_features(smooth_and_sample(select_channels(scaled, channels), fwhm_mm, voxel_mm, stride), mask);
  if (x.size(1) != weights.size(0))
    throw ModelError("vbm: " + std::to_string(x.size(1)) + " features, the model has " +
                     std::to_string(weights.size(0)) + " weights");
  return torch::matmul((x - feature_mean) / feature_scale, weights) + intercept;
}

torch::Tensor VbmModel::predict(const torch::Tensor& maps) const {
  auto raw = predict_raw(maps).contiguous();
  for (int64_t i = 0; i < raw.size(0); ++i) raw[i] = bias_correction.apply(raw[i].item<double>());
  return raw;
}

nlohmann::json VbmModel::to_json() const {
  return {{"channels", channels},
          {"channel_names", "0 csf, 1 gm, 2 wm: modulated tissue maps (mL per model-grid voxel)"},
          {"grid", grid},
          {"fwhm_mm", fwhm_mm},
          {"voxel_mm", voxel_mm},
          {"stride", stride},
          {"lambda_relative", lambda_relative},
          {"scaling", to_string(scaling)},
          {"left_right_symmetric", left_right_symmetric},
          {"intercept", intercept},
          {"features", weights.defined() ? weights.size(0) : 0}};
}

void VbmModel::save_tensors(const std::filesystem::path& file) const {
  torch::serialize::OutputArchive archive;
  archive.write("mask", mask);
  archive.write("feature_mean", feature_mean);
  archive.write("feature_scale", feature_scale);
  archive.write("weights", weights);
  archive.save_to(file.string());
}

VbmModel VbmModel::load(const nlohmann::json& j, const std::filesystem::path& file) {
  VbmModel m;
  try {
    m.channels = j.at("channels").get<std::vector<int64_t>>();
    m.grid = j.at("grid").get<std::array<int64_t, 3>>();
    m.fwhm_mm = j.at("fwhm_mm").get<double>();
    m.voxel_mm = j.at("voxel_mm").get<double>();
    m.stride = j.at("stride").get<int64_t>();
    m.lambda_relative = j.at("lambda_relative").get<double>();
    m.intercept = j.at("intercept").get<double>();
    if (j.contains("scaling"))
      m.scaling = vbm_scaling_from_string(j.at("scaling").get<std::string>());
    else  // checkpoints before the parenchyma option
      m.scaling = j.value("proportional_scaling", false) ? VbmScaling::kTotalTissue : VbmScaling::kNone;
    m.left_right_symmetric = j.value("left_right_symmetric", false);
  } catch (const nlohmann::json::exception& e) {
    throw ModelError(std::string("VBM model metadata has a missing or ill-typed field (") + e.what() + ")");
  }
  max_channel(m.channels);
  if (m.stride < 1 || !(m.voxel_mm > 0) || m.fwhm_mm < 0) throw ModelError("VBM model has an invalid stride, voxel or FWHM");
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(file.string());
    archive.read("mask", m.mask);
    archive.read("feature_mean", m.feature_mean);
    archive.read("feature_scale", m.feature_scale);
    archive.read("weights", m.weights);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw ModelError("VBM tensors do not load (" + what.substr(0, what.find('\n')) + ")");
  }
  const int64_t p = m.mask.dim() == 3 ? m.mask.sum().item<int64_t>() * static_cast<int64_t>(m.channels.size()) : -1;
  if (m.mask.scalar_type() != torch::kBool || p != m.weights.numel() || p != m.feature_mean.numel() ||
      p != m.feature_scale.numel())
    throw ModelError("VBM tensors disagree: mask voxels × channels (" + std::to_string(p) + ") must equal the " +
                     std::to_string(m.weights.numel()) + " weights, means and scales");
  for (std::size_t i = 0; i < 3; ++i) {
    const int64_t expected = (m.grid[i] - m.stride / 2 + m.stride - 1) / m.stride;
    if (m.mask.size(static_cast<int64_t>(i)) != expected)
      throw ModelError("VBM mask does not fit the grid sampled every " + std::to_string(m.stride) + " voxels");
  }
  return m;
}

}  // namespace brainage::model
