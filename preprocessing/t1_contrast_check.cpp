#include "preprocessing/t1_contrast_check.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <vector>

#include "common/errors.h"
#include "preprocessing/canonical_orientation.h"
#include "preprocessing/mask_operations.h"
#include "preprocessing/model_grid.h"
#include "preprocessing/model_grid_resampling.h"

namespace brainage::preprocessing {
namespace {

/// The q-quantile (0..1) of `values` (reordered); NaN when empty.
double quantile(std::vector<float>& values, double q) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const auto k = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return values[k];
}

bool is_cortical_aal(unsigned label) { return (label >= 1 && label <= 70) || (label >= 79 && label <= 90); }

/// The q-quantile of `image` over `brain` ∩ `region`; NaN when empty.
double quantile_in(const ImageType* image, const MaskType* brain, const MaskType* region, double q) {
  const std::size_t n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  const float* v = image->GetBufferPointer();
  const unsigned char* b = brain->GetBufferPointer();
  const unsigned char* r = region->GetBufferPointer();
  std::vector<float> values;
  for (std::size_t i = 0; i < n; ++i)
    if (b[i] && r[i]) values.push_back(v[i]);
  return quantile(values, q);
}

}  // namespace

ContrastRegions make_contrast_regions(const ImageType* ch2bet_model, const MaskType* aal_model) {
  const std::size_t n = ch2bet_model->GetLargestPossibleRegion().GetNumberOfPixels();
  const auto brain = mask_above(ch2bet_model, 0.f);
  const auto core4 = erode_mask(brain, 4.0);
  const auto core15 = erode_mask(brain, 15.0);
  const float* t = ch2bet_model->GetBufferPointer();
  std::vector<float> brain_values;
  for (std::size_t i = 0; i < n; ++i)
    if (brain->GetBufferPointer()[i]) brain_values.push_back(t[i]);
  const double bright = quantile(brain_values, 0.70);
  const double dark = quantile(brain_values, 0.10);
  ContrastRegions regions{new_mask_like(ch2bet_model), new_mask_like(ch2bet_model), new_mask_like(ch2bet_model)};
  std::size_t counts[3] = {0, 0, 0};
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned label = aal_model->GetBufferPointer()[i];
    const bool in_brain = brain->GetBufferPointer()[i];
    const bool wm = core4->GetBufferPointer()[i] && label == 0 && t[i] >= bright;
    const bool gm = in_brain && is_cortical_aal(label);
    const bool csf = core15->GetBufferPointer()[i] && t[i] <= dark;
    regions.white_matter->GetBufferPointer()[i] = wm;
    regions.grey_matter->GetBufferPointer()[i] = gm;
    regions.csf->GetBufferPointer()[i] = csf;
    counts[0] += wm;
    counts[1] += gm;
    counts[2] += csf;
  }
  for (std::size_t c : counts)
    if (c == 0) throw ProcessingError("T1 contrast check: a template region (WM, GM or CSF) is empty; check ch2bet and aal");
  return regions;
}

T1ContrastResult check_t1_contrast(const ImageType* image, const MaskType* brain_mask, const ContrastRegions& regions,
                                   const T1ContrastOptions& options) {
  T1ContrastResult r;
  r.wm_median = quantile_in(image, brain_mask, regions.white_matter, 0.5);
  r.gm_median = quantile_in(image, brain_mask, regions.grey_matter, 0.5);
  r.csf_median = quantile_in(image, brain_mask, regions.csf, 0.5);
  r.csf_level = quantile_in(image, brain_mask, regions.csf, options.csf_level_quantile);
  r.csf_wm_ratio = r.wm_median > 0 ? r.csf_level / r.wm_median : 0.0;
  r.wm_gm_ratio = r.gm_median > 0 ? r.wm_median / r.gm_median : 0.0;
  r.gm_csf_ratio = r.csf_median > 0 ? r.gm_median / r.csf_median : (r.gm_median > 0 ? 1e9 : 0.0);
  char line[256];
  if (!(r.wm_gm_ratio >= options.min_wm_gm_ratio)) {
    std::snprintf(line, sizeof line,
                  "not T1-weighted: white matter is not brighter than grey matter (median WM/GM %.2f < %.2f; "
                  "T2, PD, FLAIR or inverted contrast?)",
                  r.wm_gm_ratio, options.min_wm_gm_ratio);
    r.rule = line;
  }
  r.t1_weighted = r.rule.empty();
  return r;
}

const ContrastRegions& template_contrast_regions(const std::filesystem::path& template_dir) {
  static std::mutex mutex;
  static std::map<std::filesystem::path, ContrastRegions> made;  // std::map: references stay valid
  std::lock_guard<std::mutex> lock(mutex);
  auto found = made.find(template_dir);
  if (found != made.end()) return found->second;
  for (const char* name : {"ch2bet.nii.gz", "aal.nii.gz"})
    if (!std::filesystem::exists(template_dir / name))
      throw InvalidInputError((template_dir / name).string() + ": template missing (install the Debian package mricron-data)");
  const auto identity = AffineTransformType::New();
  const auto brain_model = resample_to_model_grid(read_image(template_dir / "ch2bet.nii.gz"), identity);
  const auto aal_model = resample_mask_to_grid(read_mask(template_dir / "aal.nii.gz"), brain_model);
  return made.emplace(template_dir, make_contrast_regions(brain_model, aal_model)).first->second;
}

T1ContrastResult check_model_grid_t1_contrast(const ImageType* t1_model, const std::filesystem::path& template_dir,
                                              const T1ContrastOptions& options) {
  return check_t1_contrast(t1_model, mask_above(t1_model, 0.f), template_contrast_regions(template_dir), options);
}

}  // namespace brainage::preprocessing
