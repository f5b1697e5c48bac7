// The invariance suite (slow): transformations a scan meets between scanners and sites,
// applied to real scans (Colin27 and three IXI-HH scans of different ages), each run
// through `brainage predict` as a user runs it. For each transformation the predicted age
// and the native brain mask (and the soft GM volume) are compared with the untransformed
// scan's; the tolerances are those of docs/ROBUSTNESS.md. Every row is printed and written to
// $BRAINAGE_INVARIANCE_CSV (default: invariance.csv in the build folder).
#include <gtest/gtest.h>

#include <itkCastImageFilter.h>
#include <itkImageFileWriter.h>
#include <itkImageRegionIteratorWithIndex.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkRecursiveGaussianImageFilter.h>
#include <itkResampleImageFilter.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "preprocessing/canonical_orientation.h"
#include "preprocessing/mask_metrics.h"
#include "preprocessing/model_grid.h"
#include "tests/cli_runner.h"
#include "tests/preprocessing/synthetic_images.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::testing;
using brainage::preprocessing::ImageType;
using brainage::preprocessing::MaskType;

namespace {

// ---- transformations -----------------------------------------------------------------

ImageType::Pointer copy_of(const ImageType* image) {
  auto out = ImageType::New();
  out->CopyInformation(image);
  out->SetRegions(image->GetLargestPossibleRegion());
  out->Allocate();
  std::copy_n(image->GetBufferPointer(), image->GetLargestPossibleRegion().GetNumberOfPixels(), out->GetBufferPointer());
  return out;
}

ImageType::Pointer map_values(const ImageType* image, const std::function<float(float)>& f) {
  auto out = copy_of(image);
  const auto n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) out->GetBufferPointer()[i] = f(out->GetBufferPointer()[i]);
  return out;
}

double mean_sd(const ImageType* image, double& sd) {
  const auto n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  double s = 0, ss = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double v = image->GetBufferPointer()[i];
    s += v;
    ss += v * v;
  }
  const double mean = s / n;
  sd = std::sqrt(std::max(0.0, ss / n - mean * mean));
  return mean;
}

/// The voxel array stored in reverse along voxel axis `axis`, the header changed so that
/// every voxel keeps its physical position.
ImageType::Pointer flip_storage(const ImageType* image, int axis) {
  auto out = copy_of(image);
  const auto size = image->GetLargestPossibleRegion().GetSize();
  itk::ImageRegionIteratorWithIndex<ImageType> o(out, out->GetLargestPossibleRegion());
  for (; !o.IsAtEnd(); ++o) {
    auto index = o.GetIndex();
    index[axis] = size[axis] - 1 - index[axis];
    o.Set(image->GetPixel(index));
  }
  ImageType::IndexType last{};
  last[axis] = size[axis] - 1;
  ImageType::PointType origin;
  image->TransformIndexToPhysicalPoint(last, origin);
  auto direction = image->GetDirection();
  for (unsigned d = 0; d < 3; ++d) direction[d][axis] = -direction[d][axis];
  out->SetOrigin(origin);
  out->SetDirection(direction);
  return out;
}

/// Slices of `thickness` mm along voxel axis 2 (the other axes resampled to `in_plane` mm
/// when > 0): a Gaussian slice profile (FWHM = the new spacing) then linear resampling.
ImageType::Pointer thick_slices(const ImageType* image, double in_plane, double thickness) {
  ImageType::ConstPointer source = image;
  ImageType::SpacingType spacing = image->GetSpacing();
  ImageType::SpacingType out_spacing = spacing;
  out_spacing[2] = thickness;
  if (in_plane > 0) out_spacing[0] = out_spacing[1] = in_plane;
  ImageType::Pointer smoothed;
  for (unsigned d = 0; d < 3; ++d) {
    if (!(out_spacing[d] > spacing[d] * 1.01)) continue;
    auto g = itk::RecursiveGaussianImageFilter<ImageType, ImageType>::New();
    g->SetInput(source);
    g->SetDirection(d);
    g->SetSigma(std::sqrt(out_spacing[d] * out_spacing[d] - spacing[d] * spacing[d]) / 2.355);
    g->Update();
    smoothed = g->GetOutput();
    smoothed->DisconnectPipeline();
    source = smoothed;
  }
  ImageType::SizeType size;
  for (unsigned d = 0; d < 3; ++d)
    size[d] = static_cast<itk::SizeValueType>(std::floor(image->GetLargestPossibleRegion().GetSize()[d] * spacing[d] / out_spacing[d]));
  auto resample = itk::ResampleImageFilter<ImageType, ImageType>::New();
  resample->SetInput(source);
  resample->SetOutputSpacing(out_spacing);
  resample->SetOutputOrigin(image->GetOrigin());
  resample->SetOutputDirection(image->GetDirection());
  resample->SetSize(size);
  resample->Update();
  return resample->GetOutput();
}

template <typename TPixel>
void write_as(const ImageType* image, const fs::path& path) {
  using Out = itk::Image<TPixel, 3>;
  auto cast = itk::CastImageFilter<ImageType, Out>::New();
  cast->SetInput(image);
  auto writer = itk::ImageFileWriter<Out>::New();
  writer->SetInput(cast->GetOutput());
  writer->SetFileName(path.string());
  writer->Update();
}

/// `image` rescaled to [0, top] and rounded: integer storage as scanners write it.
ImageType::Pointer rescaled_rounded(const ImageType* image, float top) {
  float lo = 1e30f, hi = -1e30f;
  const auto n = image->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) {
    lo = std::min(lo, image->GetBufferPointer()[i]);
    hi = std::max(hi, image->GetBufferPointer()[i]);
  }
  return map_values(image, [&](float v) { return std::round((v - lo) / (hi - lo) * top); });
}

// ---- the suite -----------------------------------------------------------------------

enum class MaskMatch { kSameVoxels, kSamePhysicalSpace, kNone };

struct Transformation {
  std::string name;
  std::string kind;        // the tolerance class, as in docs/ROBUSTNESS.md
  double max_age_change;   // years
  double min_mask_dice;    // 0 = reported, not asserted
  MaskMatch match;
  std::function<void(const ImageType*, const fs::path&)> write;  // writes the transformed scan
};

/// The largest change (%) of the soft GM volume (preprocess.json
/// tissue_probability.volumes_ml.gm) a kind allows, as the tissue-map issue asks: intensity
/// and bias-field changes 2 %, a skull-stripped copy 3 %; 0 = reported, not asserted.
double max_gm_volume_change_pct(const std::string& kind) {
  if (kind == "intensity" || kind == "bias field") return 2.0;
  if (kind == "skull on/off") return 3.0;
  return 0.0;
}

std::vector<Transformation> transformations(const fs::path& stripped_source, bool one_millimetre) {
  std::vector<Transformation> t;
  auto save = [](const ImageType* image, const fs::path& path) { write_as<float>(image, path); };
  for (auto [a, b] : std::vector<std::pair<double, double>>{{0.01, 0}, {1000, 0}, {1, -1000}, {1, 1000}, {0.01, 1000}, {250, -1000}}) {
    std::ostringstream name;
    name << "intensity " << a << "x" << (b < 0 ? "" : "+") << b;
    t.push_back({name.str(), "intensity", 0.5, 0.98, MaskMatch::kSameVoxels, [=](const ImageType* im, const fs::path& p) {
                   save(map_values(im, [=](float v) { return float(a * v + b); }), p);
                 }});
  }
  t.push_back({"z-scored", "intensity", 0.5, 0.98, MaskMatch::kSameVoxels, [=](const ImageType* im, const fs::path& p) {
                 double sd;
                 const double mean = mean_sd(im, sd);
                 save(map_values(im, [=](float v) { return float((v - mean) / sd); }), p);
               }});
  t.push_back({"int16 storage", "intensity", 0.5, 0.98, MaskMatch::kSameVoxels, [](const ImageType* im, const fs::path& p) {
                 write_as<short>(rescaled_rounded(im, 30000.f), p);
               }});
  t.push_back({"uint8 storage", "intensity", 0.5, 0.98, MaskMatch::kSameVoxels, [](const ImageType* im, const fs::path& p) {
                 write_as<unsigned char>(rescaled_rounded(im, 255.f), p);
               }});
  t.push_back({"float64 storage", "intensity", 0.5, 0.98, MaskMatch::kSameVoxels, [](const ImageType* im, const fs::path& p) {
                 write_as<double>(im, p);
               }});
  const char* axis_names[] = {"x", "y", "z", "radial"};
  for (int axis : {0, 1, 2, 3})
    t.push_back({std::string("bias field 1.5x ") + axis_names[axis], "bias field", 1.0, 0, MaskMatch::kSameVoxels,
                 [=](const ImageType* im, const fs::path& p) { save(times_bias_field(im, axis, 1.5), p); }});
  for (int axis : {0, 1, 2})
    t.push_back({std::string("storage flip ") + axis_names[axis], "orientation", 1.0, 0, MaskMatch::kSamePhysicalSpace,
                 [=](const ImageType* im, const fs::path& p) { save(flip_storage(im, axis), p); }});
  const char* rot_names[] = {"pitch", "roll", "yaw"};
  for (int axis : {0, 1, 2})
    for (double degrees : {15.0, 30.0, 45.0, 60.0, 75.0, 90.0}) {
      std::ostringstream name;
      name << "header " << rot_names[axis] << " " << degrees << " deg";
      t.push_back({name.str(), "orientation", 1.0, 0, MaskMatch::kSameVoxels,
                   [=](const ImageType* im, const fs::path& p) { save(brainage::testing::header_rotated(im, static_cast<unsigned>(axis), degrees), p); }});
    }
  if (one_millimetre)  // the training scans' resolution: a 1 mm scan and its 2 mm copy give one age
    t.push_back({"2 mm isotropic copy", "resolution", 2.0, 0, MaskMatch::kSamePhysicalSpace,
                 [=](const ImageType* im, const fs::path& p) { save(thick_slices(im, 2.0, 2.0), p); }});
  if (one_millimetre)
    for (double thickness : {2.5, 3.0, 4.0, 5.0})
      t.push_back({"slices 1x1x" + std::to_string(thickness).substr(0, 3) + " mm", "thick slices", 2.0, 0,
                   MaskMatch::kSamePhysicalSpace,
                   [=](const ImageType* im, const fs::path& p) { save(thick_slices(im, 0, thickness), p); }});
  for (double thickness : {2.5, 3.0, 4.0})  // above 9 mm³: a documented refusal (exit 3) since the ninth session
    t.push_back({"slices 2x2x" + std::to_string(thickness).substr(0, 3) + " mm", "thick slices", 2.0, 0,
                 MaskMatch::kSamePhysicalSpace,
                 [=](const ImageType* im, const fs::path& p) { save(thick_slices(im, 2.0, thickness), p); }});
  t.push_back({"skull-stripped copy", "skull on/off", 1.5, 0.97, MaskMatch::kSameVoxels,
               [=](const ImageType* im, const fs::path& p) {
                 const auto brain = brainage::preprocessing::read_image(stripped_source);
                 auto out = copy_of(im);
                 const auto n = im->GetLargestPossibleRegion().GetNumberOfPixels();
                 for (std::size_t i = 0; i < n; ++i)
                   if (!(brain->GetBufferPointer()[i] > 0)) out->GetBufferPointer()[i] = 0;
                 save(out, p);
               }});
  return t;
}

struct Run {
  int code = -1;
  std::string out;
  double age = NAN;
  double gm_ml = NAN;  // soft GM volume in the native scan (mL)
};

Run predict(const fs::path& scan, const fs::path& dir, int threads = 2) {
  const auto r = run_brainage("predict \"" + scan.string() + "\" -o \"" + dir.string() + "\" --threads " +
                              std::to_string(threads));
  Run run{r.code, r.out, NAN};
  if (r.code == 0) {
    std::ifstream in(dir / "prediction.json");
    run.age = nlohmann::json::parse(in)["predicted_age"].get<double>();
    std::ifstream pre(dir / "preprocess.json");
    run.gm_ml = nlohmann::json::parse(pre).at("tissue_probability").at("volumes_ml").at("gm").get<double>();
  }
  return run;
}

double mask_dice(const fs::path& reference_dir, const fs::path& variant_dir, MaskMatch match) {
  using namespace brainage::preprocessing;
  const auto a = read_mask(reference_dir / "brain_mask_native.nii.gz");
  auto b = read_mask(variant_dir / "brain_mask_native.nii.gz");
  if (match == MaskMatch::kNone) return NAN;
  if (match == MaskMatch::kSamePhysicalSpace) b = resample_mask_to_grid(b, a);
  if (a->GetLargestPossibleRegion() != b->GetLargestPossibleRegion()) return NAN;
  if (match == MaskMatch::kSameVoxels) {
    b->CopyInformation(a);  // same voxel array, another header
  }
  return dice(a, b);
}

struct Subject {
  std::string id;
  fs::path scan, stripped_source;  // stripped_source: > 0 = brain (labels or ch2bet)
  bool one_millimetre;
};

/// Colin27 and three IXI-HH scans (24, 39, 75 y); $BRAINAGE_INVARIANCE_SUBJECTS (comma-
/// separated ids, e.g. "Colin27,IXI012-HH-1211") runs a subset, and may name any other
/// IXI-HH scan of ../shared (e.g. IXI146-HH-1389) or "Scan1" (the MRISnapshot 1 mm adult,
/// its reference brain mask as the stripped copy's).
std::vector<Subject> subjects() {
  const fs::path ixi = shared_data_dir() / "ixi-hh-2mm";
  auto ixi_subject = [&](const std::string& id) {
    return Subject{id, ixi / "t1" / (id + "_T1.nii.gz"), ixi / "labels" / (id + "_labels.nii.gz"), false};
  };
  std::vector<Subject> s;
  s.push_back({"Colin27", mricron_templates_dir() / "ch2.nii.gz", mricron_templates_dir() / "ch2bet.nii.gz", true});
  for (const char* id : {"IXI012-HH-1211", "IXI015-HH-1258", "IXI204-HH-1651"}) s.push_back(ixi_subject(id));
  const char* only = std::getenv("BRAINAGE_INVARIANCE_SUBJECTS");
  if (!only) return s;
  std::vector<Subject> chosen;
  std::stringstream list(only);
  for (std::string id; std::getline(list, id, ',');) {
    const auto known = std::find_if(s.begin(), s.end(), [&](const Subject& x) { return x.id == id; });
    const fs::path scan1 = shared_data_dir() / "skullstrip" / "mrisnapshot-scan1";
    if (known != s.end()) chosen.push_back(*known);
    else if (id == "Scan1") chosen.push_back({id, scan1 / "Scan1_T1.nii.gz", scan1 / "Scan1_T1_BRAINMASK.nii.gz", true});
    else if (!id.empty()) chosen.push_back(ixi_subject(id));
  }
  return chosen;
}

}  // namespace

TEST(Invariance, AgeAndBrainMaskUnderScannerAndSiteTransformations) {
  // About 10 min per 2 mm subject and 25 min for Colin27 on 2 cores: too long for CI,
  // whose fast subset is tests/app/field_cases_test.cpp.
  if (!std::getenv("BRAINAGE_RUN_INVARIANCE"))
    GTEST_SKIP() << "invariance suite: set BRAINAGE_RUN_INVARIANCE=1 to run (tens of minutes; "
                    "BRAINAGE_INVARIANCE_SUBJECTS=Colin27,IXI012-HH-1211 and/or "
                    "BRAINAGE_INVARIANCE_KINDS=orientation,bias field for a subset)";
  BRAINAGE_REQUIRE_PATH(shared_data_dir() / "ixi-hh-2mm");
  const fs::path dir = scratch_dir("invariance");
  const char* csv_env = std::getenv("BRAINAGE_INVARIANCE_CSV");
  const fs::path csv_path = csv_env ? fs::path(csv_env) : fs::path(BRAINAGE_BINARY_DIR) / "invariance.csv";
  std::ofstream csv(csv_path);
  csv << "subject,transformation,kind,tolerance_y,reference_age,age,abs_change_y,mask_dice,exit_code,gm_ml,gm_change_pct\n";
  std::map<std::string, double> worst;  // kind -> worst |change|
  for (const auto& subject : subjects()) {
    if (!fs::exists(subject.scan)) {
      std::printf("skip %s: %s absent\n", subject.id.c_str(), subject.scan.string().c_str());
      continue;
    }
    const auto original = brainage::preprocessing::read_image(subject.scan);
    const auto reference = predict(subject.scan, dir / subject.id / "reference");
    ASSERT_EQ(reference.code, 0) << subject.id << ": " << reference.out;
    // Threads: the same outputs at 1, 2 and 4 threads.
    for (int threads : {1, 4}) {
      const auto run = predict(subject.scan, dir / subject.id / ("threads" + std::to_string(threads)), threads);
      ASSERT_EQ(run.code, 0) << run.out;
      // Identical: the registration metric and N4 with its B-spline fit run as fixed
      // work-unit counts (docs/ROBUSTNESS.md "Thread count").
      EXPECT_EQ(run.age, reference.age) << subject.id << " at " << threads << " threads";
      const double d = mask_dice(dir / subject.id / "reference", dir / subject.id / ("threads" + std::to_string(threads)),
                                 MaskMatch::kSameVoxels);
      EXPECT_EQ(d, 1.0) << subject.id << " at " << threads << " threads";
      csv << subject.id << ",threads " << threads << ",threads,0," << reference.age << "," << run.age << ","
          << std::abs(run.age - reference.age) << "," << d << ",0," << run.gm_ml << ","
          << 100 * std::abs(run.gm_ml / reference.gm_ml - 1) << "\n";
    }
    for (const auto& t : transformations(subject.stripped_source, subject.one_millimetre)) {
      if (const char* kinds = std::getenv("BRAINAGE_INVARIANCE_KINDS");
          kinds && (std::string(",") + kinds + ",").find("," + t.kind + ",") == std::string::npos)
        continue;
      const fs::path case_dir = dir / subject.id / std::to_string(std::hash<std::string>{}(t.name));
      fs::create_directories(case_dir);
      const fs::path scan = case_dir / "scan.nii.gz";
      t.write(original, scan);
      const auto run = predict(scan, case_dir / "out");
      const double change = std::abs(run.age - reference.age);
      const double d = run.code == 0 ? mask_dice(dir / subject.id / "reference", case_dir / "out", t.match) : NAN;
      const double gm_change_pct = 100 * std::abs(run.gm_ml / reference.gm_ml - 1);
      std::printf("%-16s %-26s exit %d  age %6.2f (ref %6.2f)  |change| %5.2f y (<= %.1f)  mask Dice %.4f  GM %.1f%%\n",
                  subject.id.c_str(), t.name.c_str(), run.code, run.age, reference.age, change, t.max_age_change, d,
                  gm_change_pct);
      csv << subject.id << "," << t.name << "," << t.kind << "," << t.max_age_change << "," << reference.age << ","
          << run.age << "," << change << "," << d << "," << run.code << "," << run.gm_ml << "," << gm_change_pct << "\n";
      csv.flush();
      if (t.kind == "thick slices" && run.code == 3) continue;  // a documented refusal (max_voxel_size_mm, max_voxel_volume_mm3)
      EXPECT_EQ(run.code, 0) << subject.id << " / " << t.name << ": " << run.out;
      if (run.code != 0) continue;
      worst[t.kind] = std::max(worst[t.kind], change);
      EXPECT_LE(change, t.max_age_change) << subject.id << " / " << t.name;
      if (t.min_mask_dice > 0) EXPECT_GE(d, t.min_mask_dice) << subject.id << " / " << t.name;
      if (const double limit = max_gm_volume_change_pct(t.kind); limit > 0)
        EXPECT_LE(gm_change_pct, limit) << subject.id << " / " << t.name << ": GM " << run.gm_ml << " mL vs "
                                        << reference.gm_ml << " mL";
    }
  }
  for (const auto& [kind, w] : worst) std::printf("worst |age change| %-14s %.2f y\n", kind.c_str(), w);
  std::printf("rows written to %s\n", csv_path.string().c_str());
}
