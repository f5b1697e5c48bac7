#include "preprocessing/tissue_probability.h"

#include <itkImageRegionConstIterator.h>
#include <itkImageRegionIterator.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>
#include <vnl/vnl_det.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/errors.h"
#include "preprocessing/intensity_normalization.h"
#include "preprocessing/model_grid.h"
#include "preprocessing/model_grid_resampling.h"

namespace brainage::preprocessing {
namespace {

/// One Gaussian of the mixture: pure tissue `a` (b == a) or a mix of α of `a` and 1-α of `b`.
struct Component {
  int a = 0, b = 0;
  double alpha = 1;  // fraction of tissue a
  double weight = 0, mean = 0, var = 1;
};

/// The mixture's components from the pure classes' parameters and the pair weights.
std::vector<Component> components(const std::array<double, 3>& mean, const std::array<double, 3>& var,
                                  const std::array<double, 3>& pure_weight, const std::array<double, 2>& pair_weight,
                                  const TissueProbabilityOptions& o) {
  std::vector<Component> out;
  for (int c = 0; c < 3; ++c) out.push_back({c, c, 1.0, pure_weight[c], mean[c], var[c]});
  if (!o.partial_volume) return out;
  const double per_alpha = 1.0 / static_cast<double>(o.mixing_fractions.size());
  for (int p = 0; p < 2; ++p)
    for (double alpha : o.mixing_fractions)
      out.push_back({p, p + 1, alpha, pair_weight[p] * per_alpha, alpha * mean[p] + (1 - alpha) * mean[p + 1],
                     alpha * var[p] + (1 - alpha) * var[p + 1]});
  return out;
}

/// Component densities × weights at `x`, into `r`; returns their sum (the mixture density).
double weighted_densities(const std::vector<Component>& comps, double x, std::vector<double>& r) {
  double total = 0;
  for (std::size_t k = 0; k < comps.size(); ++k) {
    const auto& c = comps[k];
    const double d = x - c.mean;
    r[k] = c.weight * std::exp(-0.5 * d * d / c.var) / std::sqrt(2 * M_PI * c.var);
    total += r[k];
  }
  return total;
}

/// Three zero maps on `image`'s grid.
std::array<ImageType::Pointer, 3> zero_maps(const ImageType* image) {
  std::array<ImageType::Pointer, 3> maps;
  for (auto& map : maps) {
    map = ImageType::New();
    map->CopyInformation(image);
    map->SetRegions(image->GetLargestPossibleRegion());
    map->Allocate();
    map->FillBuffer(0.0f);
  }
  return maps;
}

/// The K-means partition of the brain (no label smoothing); throws below 100 voxels.
TissueClassificationResult kmeans_partition(const ImageType* image, const MaskType* brain_mask,
                                            const TissueProbabilityOptions& o) {
  TissueClassificationOptions kmeans = o.kmeans;
  kmeans.smoothing_radius = 0;
  return classify_tissue(image, brain_mask, kmeans);
}

/// `brain_mask` without the voxels darker than `fraction` × the brain's 99th intensity
/// percentile (a skull-stripped input's zeros and their blurred edge); fraction ≤ 0 keeps
/// every voxel.
MaskType::Pointer without_dark_voxels(const ImageType* image, const MaskType* brain_mask, double fraction) {
  // An empty mask throws here (classify_tissue would throw below 100 voxels anyway).
  const double floor = fraction * brain_intensity_percentile(image, brain_mask, 99.0, "tissue probabilities");
  auto out = MaskType::New();
  out->CopyInformation(brain_mask);
  out->SetRegions(brain_mask->GetLargestPossibleRegion());
  out->Allocate();
  itk::ImageRegionConstIterator<ImageType> i(image, image->GetLargestPossibleRegion());
  itk::ImageRegionConstIterator<MaskType> m(brain_mask, brain_mask->GetLargestPossibleRegion());
  itk::ImageRegionIterator<MaskType> o(out, out->GetLargestPossibleRegion());
  for (; !i.IsAtEnd(); ++i, ++m, ++o) o.Set(m.Get() && (fraction <= 0 || i.Get() > floor) ? 1 : 0);
  return out;
}

/// kLinearUnmixing: fractions between adjacent K-means class means (see the header).
TissueProbabilityResult linear_unmixing(const ImageType* image, const MaskType* brain_mask,
                                        const TissueProbabilityOptions& o) {
  const auto hard = kmeans_partition(image, without_dark_voxels(image, brain_mask, o.fit_floor_fraction), o);
  const auto& mean = hard.class_means;
  if (!(mean[0] < mean[1] && mean[1] < mean[2]))
    throw ProcessingError("tissue probabilities: the CSF/GM/WM class means are not distinct (" + std::to_string(mean[0]) +
                          ", " + std::to_string(mean[1]) + ", " + std::to_string(mean[2]) + ")");
  TissueProbabilityResult result;
  result.probabilities = zero_maps(image);
  result.means = mean;
  const double voxel_ml = image->GetSpacing()[0] * image->GetSpacing()[1] * image->GetSpacing()[2] / 1000.0;
  std::array<double, 3> sum_sq{}, count{};
  itk::ImageRegionConstIterator<ImageType> i(image, image->GetLargestPossibleRegion());
  itk::ImageRegionConstIterator<MaskType> m(brain_mask, brain_mask->GetLargestPossibleRegion());
  itk::ImageRegionConstIterator<MaskType> l(hard.labels, hard.labels->GetLargestPossibleRegion());
  std::array<itk::ImageRegionIterator<ImageType>, 3> p{
      itk::ImageRegionIterator<ImageType>(result.probabilities[0], image->GetLargestPossibleRegion()),
      itk::ImageRegionIterator<ImageType>(result.probabilities[1], image->GetLargestPossibleRegion()),
      itk::ImageRegionIterator<ImageType>(result.probabilities[2], image->GetLargestPossibleRegion())};
  for (; !i.IsAtEnd(); ++i, ++m, ++l, ++p[0], ++p[1], ++p[2]) {
    if (!m.Get()) continue;
    const double x = i.Get();
    const double csf = std::clamp((mean[1] - x) / (mean[1] - mean[0]), 0.0, 1.0);
    const double wm = std::clamp((x - mean[1]) / (mean[2] - mean[1]), 0.0, 1.0);
    const std::array<double, 3> fraction{csf, 1.0 - csf - wm, wm};  // at most one of csf, wm is > 0
    for (int c = 0; c < 3; ++c) {
      p[c].Set(static_cast<float>(fraction[c]));
      result.volumes_ml[c] += fraction[c] * voxel_ml;
    }
    if (l.Get() != kBackground) {
      const int c = l.Get() - 1;
      sum_sq[c] += (x - mean[c]) * (x - mean[c]);
      count[c] += 1;
    }
  }
  for (int c = 0; c < 3; ++c) result.sds[c] = count[c] > 0 ? std::sqrt(sum_sq[c] / count[c]) : 0.0;
  return result;
}

/// kGaussianMixture: EM posteriors (see the header).
TissueProbabilityResult gaussian_mixture(const ImageType* image, const MaskType* brain_mask,
                                         const TissueProbabilityOptions& o) {
  if (o.histogram_bins < 16) throw ProcessingError("tissue probabilities: histogram_bins must be >= 16");
  for (double alpha : o.mixing_fractions)
    if (!(alpha > 0 && alpha < 1)) throw ProcessingError("tissue probabilities: mixing fractions must lie in (0, 1)");

  // Initialisation: the K-means partition, its class moments.
  const auto hard = kmeans_partition(image, brain_mask, o);
  std::vector<float> values;
  std::array<double, 3> mean{}, var{}, count{};
  {
    itk::ImageRegionConstIterator<ImageType> i(image, image->GetLargestPossibleRegion());
    itk::ImageRegionConstIterator<MaskType> l(hard.labels, hard.labels->GetLargestPossibleRegion());
    for (; !i.IsAtEnd(); ++i, ++l) {
      if (l.Get() == kBackground) continue;
      values.push_back(i.Get());
      const int c = l.Get() - 1;
      count[c] += 1;
      mean[c] += i.Get();
      var[c] += static_cast<double>(i.Get()) * i.Get();
    }
  }
  const double n = static_cast<double>(values.size());
  std::vector<float> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  auto quantile = [&](double q) { return static_cast<double>(sorted[static_cast<std::size_t>(q * (n - 1))]); };
  const double lo = quantile(0.001), hi = quantile(0.999);
  if (!(hi > lo)) throw ProcessingError("tissue probabilities: the brain's intensities have no spread");
  const double range = hi - lo;
  const double min_var = (1e-3 * range) * (1e-3 * range);
  std::array<double, 3> pure_weight{};
  for (int c = 0; c < 3; ++c) {
    if (count[c] < 1) {  // an empty K-means class: a narrow class at its seed
      mean[c] = hard.class_means[c];
      var[c] = (0.05 * range) * (0.05 * range);
      pure_weight[c] = 1e-3;
      continue;
    }
    mean[c] /= count[c];
    var[c] = std::max(min_var, var[c] / count[c] - mean[c] * mean[c]);
    pure_weight[c] = count[c] / n;
  }
  std::array<double, 2> pair_weight{0, 0};
  if (o.partial_volume) {  // start the mixed classes at 10 % of the voxels each
    for (auto& w : pure_weight) w *= 0.8;
    pair_weight = {0.1, 0.1};
  }

  // EM on the histogram (bin centres, counts); values beyond the 0.1/99.9 % quantiles go to
  // the end bins.
  const int bins = o.histogram_bins;
  const double width = range / bins;
  std::vector<double> centre(bins), hist(bins, 0.0);
  for (int b = 0; b < bins; ++b) centre[b] = lo + (b + 0.5) * width;
  for (float v : values) hist[std::clamp(static_cast<int>((v - lo) / width), 0, bins - 1)] += 1;

  TissueProbabilityResult result;
  std::vector<Component> comps = components(mean, var, pure_weight, pair_weight, o);
  std::vector<double> r(comps.size());
  double previous = -1e300;
  for (int iteration = 0; iteration < o.max_iterations; ++iteration) {
    // E-step: responsibilities summed per component; M-step: pure classes from their own
    // responsibilities (the mixed classes follow them), every weight from its share.
    std::vector<double> sum_r(comps.size(), 0.0), sum_rx(3, 0.0), sum_rxx(3, 0.0);
    double log_likelihood = 0;
    for (int b = 0; b < bins; ++b) {
      if (hist[b] == 0) continue;
      const double total = weighted_densities(comps, centre[b], r);
      if (!(total > 0)) continue;
      log_likelihood += hist[b] * std::log(total);
      for (std::size_t k = 0; k < comps.size(); ++k) {
        const double resp = hist[b] * r[k] / total;
        sum_r[k] += resp;
        if (k < 3) {
          sum_rx[k] += resp * centre[b];
          sum_rxx[k] += resp * centre[b] * centre[b];
        }
      }
    }
    log_likelihood /= n;
    for (int c = 0; c < 3; ++c) {
      if (sum_r[c] > 1e-9 * n) {
        mean[c] = sum_rx[c] / sum_r[c];
        var[c] = std::max(min_var, sum_rxx[c] / sum_r[c] - mean[c] * mean[c] + width * width / 12.0);
      }
      pure_weight[c] = std::max(1e-6, sum_r[c] / n);
    }
    if (o.partial_volume) {
      const std::size_t per_pair = o.mixing_fractions.size();
      for (int p = 0; p < 2; ++p) {
        double s = 0;
        for (std::size_t k = 0; k < per_pair; ++k) s += sum_r[3 + p * per_pair + k];
        pair_weight[p] = std::max(1e-6, s / n);
      }
    }
    // The classes keep their order (CSF < GM < WM); EM on a real brain never swaps them,
    // but a degenerate input could.
    if (!(mean[0] < mean[1] && mean[1] < mean[2]))
      throw ProcessingError("tissue probabilities: the CSF/GM/WM means lost their order during EM");
    comps = components(mean, var, pure_weight, pair_weight, o);
    result.iterations = iteration + 1;
    result.log_likelihood = log_likelihood;
    if (std::abs(log_likelihood - previous) < o.tolerance) break;
    previous = log_likelihood;
  }

  // Posteriors per voxel at its own intensity; a mixed component gives α to tissue a.
  const double voxel_ml = image->GetSpacing()[0] * image->GetSpacing()[1] * image->GetSpacing()[2] / 1000.0;
  result.probabilities = zero_maps(image);
  {
    itk::ImageRegionConstIterator<ImageType> i(image, image->GetLargestPossibleRegion());
    itk::ImageRegionConstIterator<MaskType> m(brain_mask, brain_mask->GetLargestPossibleRegion());
    std::array<itk::ImageRegionIterator<ImageType>, 3> p{
        itk::ImageRegionIterator<ImageType>(result.probabilities[0], image->GetLargestPossibleRegion()),
        itk::ImageRegionIterator<ImageType>(result.probabilities[1], image->GetLargestPossibleRegion()),
        itk::ImageRegionIterator<ImageType>(result.probabilities[2], image->GetLargestPossibleRegion())};
    for (; !i.IsAtEnd(); ++i, ++m, ++p[0], ++p[1], ++p[2]) {
      if (!m.Get()) continue;
      // Beyond the fitted range the nearest end's posteriors hold (a voxel far below CSF is
      // CSF, not whichever Gaussian has the widest tail).
      const double x = std::clamp(static_cast<double>(i.Get()), lo, hi);
      const double total = weighted_densities(comps, x, r);
      std::array<double, 3> post{};
      if (total > 0) {
        for (std::size_t k = 0; k < comps.size(); ++k) {
          post[comps[k].a] += comps[k].alpha * r[k] / total;
          if (comps[k].b != comps[k].a) post[comps[k].b] += (1 - comps[k].alpha) * r[k] / total;
        }
      } else {  // underflow everywhere: the class with the nearest mean
        int best = 0;
        for (int c = 1; c < 3; ++c)
          if (std::abs(x - mean[c]) < std::abs(x - mean[best])) best = c;
        post[best] = 1;
      }
      for (int c = 0; c < 3; ++c) {
        p[c].Set(static_cast<float>(post[c]));
        result.volumes_ml[c] += post[c] * voxel_ml;
      }
    }
  }
  for (int c = 0; c < 3; ++c) {
    result.means[c] = mean[c];
    result.sds[c] = std::sqrt(var[c]);
  }
  return result;
}

}  // namespace

const char* tissue_model_name(TissueModel model) {
  return model == TissueModel::kLinearUnmixing ? "linear-unmixing" : "gaussian-mixture";
}

TissueProbabilityResult estimate_tissue_probabilities(const ImageType* image, const MaskType* brain_mask,
                                                      const TissueProbabilityOptions& o) {
  if (image->GetLargestPossibleRegion() != brain_mask->GetLargestPossibleRegion())
    throw ProcessingError("tissue probabilities: the mask's grid differs from the image's");
  return o.model == TissueModel::kLinearUnmixing ? linear_unmixing(image, brain_mask, o)
                                                 : gaussian_mixture(image, brain_mask, o);
}

double affine_jacobian_determinant(const AffineTransformType* mni_to_native) {
  return std::abs(vnl_det(mni_to_native->GetMatrix().GetVnlMatrix()));
}

ModelGridTissueMaps tissue_maps_to_model_grid(const std::array<ImageType::Pointer, 3>& native,
                                              const AffineTransformType* mni_to_native) {
  ModelGridTissueMaps out;
  out.jacobian_determinant = affine_jacobian_determinant(mni_to_native);
  if (!(out.jacobian_determinant > 1e-6))
    throw ProcessingError("tissue maps: the MNI -> native affine is singular (|det| " +
                          std::to_string(out.jacobian_determinant) + ")");
  const double voxel_ml = kModelGridSpacing * kModelGridSpacing * kModelGridSpacing / 1000.0;
  const double scale = out.jacobian_determinant * voxel_ml;
  for (int c = 0; c < 3; ++c) {
    if (!native[c]) throw ProcessingError(std::string("tissue maps: the ") + kTissueNames[c] + " map is missing");
    out.probabilities[c] = resample_to_model_grid(native[c], mni_to_native);
    auto modulated = make_model_grid_image();
    itk::ImageRegionConstIterator<ImageType> p(out.probabilities[c], out.probabilities[c]->GetLargestPossibleRegion());
    itk::ImageRegionIterator<ImageType> m(modulated, modulated->GetLargestPossibleRegion());
    double total = 0;
    for (; !p.IsAtEnd(); ++p, ++m) {
      const double v = p.Get() * scale;
      m.Set(static_cast<float>(v));
      total += v;
    }
    out.modulated[c] = modulated;
    out.modulated_totals_ml[c] = total;
  }
  return out;
}

}  // namespace brainage::preprocessing
