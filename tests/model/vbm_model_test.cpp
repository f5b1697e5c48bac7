// VBM model: a known linear age signal in synthetic tissue maps is recovered on held-out
// subjects; the dual ridge equals the primal normal equations; inner CV picks λ of the
// right order of magnitude where the Bayes-optimal λ is known; smoothing keeps mass and
// samples the documented grid; a VBM checkpoint round-trips exactly and a neural checkpoint
// written before model kinds existed still loads.
#include "model/vbm_model.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/errors.h"
#include "model/checkpoint.h"
#include "tests/test_data.h"
#include "tests/model/tiny_model_options.h"

namespace bm = brainage::model;
namespace fs = std::filesystem;

namespace {

/// N subjects, 3 channels on a 12×16×12 grid: a blob whose GM density falls and whose CSF
/// rises linearly with age, plus independent noise (sd `noise`) in every voxel.
struct Cohort {
  torch::Tensor maps;
  std::vector<double> ages;
};

Cohort make_cohort(int64_t n, double noise, uint64_t seed) {
  torch::manual_seed(static_cast<int64_t>(seed));
  Cohort c;
  auto ages = torch::rand({n}, torch::kDouble) * 60 + 20;
  c.ages.assign(ages.data_ptr<double>(), ages.data_ptr<double>() + n);
  const auto z = torch::arange(12, torch::kFloat).view({12, 1, 1}) - 5.5;
  const auto y = torch::arange(16, torch::kFloat).view({1, 16, 1}) - 7.5;
  const auto x = torch::arange(12, torch::kFloat).view({1, 1, 12}) - 5.5;
  const auto blob = torch::exp(-(z * z + y * y + x * x) / 30.0);  // [12, 16, 12]
  const auto a = ages.to(torch::kFloat).view({n, 1, 1, 1});
  const auto gm = blob * (1.0 - 0.006 * a);
  const auto csf = blob * (0.1 + 0.004 * a);
  const auto wm = (blob * 0.8).expand({n, 12, 16, 12});
  c.maps = torch::stack({csf, gm, wm}, 1) + noise * torch::randn({n, 3, 12, 16, 12});
  return c;
}

double mae(const torch::Tensor& pred, const std::vector<double>& ages, int64_t from) {
  double s = 0;
  for (int64_t i = from; i < static_cast<int64_t>(ages.size()); ++i) s += std::abs(pred[i - from].item<double>() - ages[i]);
  return s / static_cast<double>(ages.size() - from);
}

/// `model` saved as the checkpoint DIR/vbm and loaded back, as a VBM checkpoint.
bm::LoadedModel saved_and_loaded(const bm::VbmModel& model, const fs::path& dir) {
  bm::CheckpointInfo info;
  info.preprocessing_version = "test";
  bm::save_checkpoint(dir / "vbm", model, info);
  return bm::load_checkpoint(dir / "vbm.json", /*accept_vbm=*/true);
}

bm::VbmOptions small_options() {
  bm::VbmOptions o;
  o.fwhm_mm = {0.0, 4.0};
  o.mask_fraction = 0.05;
  return o;
}

}  // namespace

TEST(VbmModel, KnownLinearSignalIsRecoveredOnHeldOutSubjects) {
  const auto c = make_cohort(100, 0.02, 1);
  using torch::indexing::Slice;
  const std::vector<double> train_ages(c.ages.begin(), c.ages.begin() + 80);
  const auto fit = bm::fit_vbm(c.maps.index({Slice(0, 80)}), train_ages, small_options());
  const auto pred = fit.model.predict(c.maps.index({Slice(80, 100)}));
  ASSERT_EQ(pred.size(0), 20);
  EXPECT_LT(mae(pred, c.ages, 80), 2.5);  // ages span 60 y; the mean predictor's MAE is ~15 y
  EXPECT_EQ(fit.inner_oof_predictions.size(), 80u);
  EXPECT_EQ(fit.selection["inner_cv_mae"].size(), 2u);
  EXPECT_GT(fit.model.bias_correction.n, 0);
  // Deterministic: the same data give the same model.
  const auto again = bm::fit_vbm(c.maps.index({Slice(0, 80)}), train_ages, small_options());
  EXPECT_TRUE(torch::equal(again.model.weights, fit.model.weights));
}

TEST(VbmModel, DualRidgeEqualsThePrimalNormalEquations) {
  torch::manual_seed(3);
  const auto x = torch::randn({30, 12}, torch::kDouble);
  const auto y = torch::randn({30}, torch::kDouble);
  const double relative = 0.3;
  const auto dual = bm::ridge_dual_weights(x, y, {relative})[0];
  const double lambda = relative * torch::matmul(x, x.t()).trace().item<double>() / 30.0;
  const auto primal = torch::linalg::solve(torch::matmul(x.t(), x) + lambda * torch::eye(12, torch::kDouble),
                                           torch::matmul(x.t(), y), /*left=*/true);
  EXPECT_LT((dual - primal).abs().max().item<double>(), 1e-9);
}

TEST(VbmModel, InnerCvPicksLambdaOfTheRightOrder) {
  // y = X w + e with w ~ N(0, 1) over P standard-normal features and e ~ N(0, σ²): the
  // Bayes-optimal ridge penalty is σ² (absolute), i.e. σ² / P relative to trace(XXᵀ)/n.
  const int64_t n = 150, p = 200;
  for (const double target : {0.1, 10.0}) {
    torch::manual_seed(5);
    const auto features = torch::randn({n, p}, torch::kDouble);
    const auto w = torch::randn({p}, torch::kDouble);
    const double sigma = std::sqrt(target * p);
    const auto y = torch::matmul(features, w) + sigma * torch::randn({n}, torch::kDouble) + 50.0;
    const auto maps = (features + 10.0).to(torch::kFloat).view({n, 1, 4, 5, 10});  // positive: all in the mask
    bm::VbmOptions o;
    o.fwhm_mm = {0.0};
    o.channels = {0};
    o.stride = 1;
    o.mask_fraction = 0.0;
    const std::vector<double> ages(y.data_ptr<double>(), y.data_ptr<double>() + n);
    const auto fit = bm::fit_vbm(maps, ages, o);
    EXPECT_EQ(fit.selection["features"].get<int64_t>(), p);
    EXPECT_GE(fit.model.lambda_relative, target / 10.0) << "optimal " << target;
    EXPECT_LE(fit.model.lambda_relative, target * 10.0) << "optimal " << target;
  }
}

TEST(VbmModel, SmoothingKeepsMassAndSamplesTheDocumentedGrid) {
  auto maps = torch::zeros({1, 1, 80, 96, 80});
  maps.index_put_({0, 0, 40, 48, 40}, 1.0f);
  const auto smoothed = bm::smooth_and_sample(maps, 6.0, 2.0, 1);
  EXPECT_NEAR(smoothed.sum().item<double>(), 1.0, 1e-4);
  // FWHM 6 mm = 3 voxels: half the peak at 1.5 voxels from the centre (linear in between).
  const double peak = smoothed.index({0, 0, 40, 48, 40}).item<double>();
  const double one = smoothed.index({0, 0, 41, 48, 40}).item<double>();
  const double two = smoothed.index({0, 0, 42, 48, 40}).item<double>();
  EXPECT_GT(one, 0.5 * peak);
  EXPECT_LT(two, 0.5 * peak);
  const auto sampled = bm::smooth_and_sample(maps, 4.0, 2.0, 2);
  EXPECT_EQ(sampled.sizes().vec(), (std::vector<int64_t>{1, 1, 40, 48, 40}));
  EXPECT_THROW(bm::smooth_and_sample(torch::zeros({3, 4}), 4.0, 2.0, 2), brainage::ModelError);
}

TEST(VbmModel, CheckpointRoundTripIsExactAndLoadsAsVbm) {
  const auto c = make_cohort(60, 0.02, 2);
  const auto fit = bm::fit_vbm(c.maps, c.ages, small_options());
  const auto dir = brainage::testing::scratch_dir("vbm-checkpoint");
  bm::CheckpointInfo info;
  info.preprocessing_version = "test";
  const auto id = bm::save_checkpoint(dir / "vbm", fit.model, info);
  EXPECT_EQ(id.rfind("vbm-", 0), 0u);
  EXPECT_THROW(bm::load_checkpoint(dir / "vbm.json"), brainage::ModelError);  // neural-only callers
  const auto loaded = bm::load_checkpoint(dir / "vbm.json", /*accept_vbm=*/true);
  ASSERT_TRUE(loaded.vbm);
  EXPECT_FALSE(loaded.model);
  EXPECT_EQ(loaded.info.model_kind, "vbm");
  EXPECT_EQ(loaded.info.model_id, id);
  EXPECT_EQ(loaded.info.bias_correction.slope, fit.model.bias_correction.slope);
  EXPECT_EQ(loaded.info.bias_correction.n, fit.model.bias_correction.n);
  EXPECT_TRUE(torch::equal(loaded.vbm->predict(c.maps), fit.model.predict(c.maps)));
  EXPECT_EQ(bm::read_checkpoint_info(dir / "vbm").model_kind, "vbm");
  // Maps of another grid are refused.
  EXPECT_THROW(loaded.vbm->predict(torch::zeros({1, 3, 12, 16, 10})), brainage::ModelError);
  // A flipped byte fails the checksum; an unknown kind is refused.
  {
    std::fstream f(dir / "vbm.pt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  EXPECT_THROW(bm::load_checkpoint(dir / "vbm.json", true), brainage::ModelError);
  std::ifstream in(dir / "vbm.json");
  auto j = nlohmann::json::parse(in);
  j["model_kind"] = "gaussian-process";
  std::ofstream(dir / "vbm.json") << j.dump();
  EXPECT_THROW(bm::read_checkpoint_info(dir / "vbm.json"), brainage::ModelError);
  fs::remove_all(dir);
}

TEST(VbmModel, NeuralCheckpointWithoutModelKindStillLoads) {
  const bm::ModelOptions o = brainage::testing::tiny_model_options(1);
  torch::manual_seed(1);
  bm::BrainAgeModel model(o);
  const auto dir = brainage::testing::scratch_dir("vbm-old-checkpoint");
  bm::save_checkpoint(dir / "old", model, {});
  std::ifstream in(dir / "old.json");
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("model_kind"), "neural");
  j.erase("model_kind");  // as written before model kinds existed
  std::ofstream(dir / "old.json") << j.dump();
  const auto loaded = bm::load_checkpoint(dir / "old.json");
  EXPECT_EQ(loaded.info.model_kind, "neural");
  EXPECT_TRUE(loaded.model);
  EXPECT_FALSE(loaded.vbm);
  fs::remove_all(dir);
}

// Proportional scaling: with it, a head 20 % larger in every tissue (the same brain, more
// mL) gets the same age, and the signal is still recovered; the setting survives the
// checkpoint round trip through to_json / load.
TEST(VbmModel, ProportionalScalingMakesTheAgeIndependentOfHeadSize) {
  const auto c = make_cohort(100, 0.02, 3);
  using torch::indexing::Slice;
  const std::vector<double> train_ages(c.ages.begin(), c.ages.begin() + 80);
  auto o = small_options();
  o.scaling = bm::VbmScaling::kTotalTissue;
  const auto fit = bm::fit_vbm(c.maps.index({Slice(0, 80)}), train_ages, o);
  const auto held_out = c.maps.index({Slice(80, 100)});
  const auto pred = fit.model.predict(held_out);
  EXPECT_LT(mae(pred, c.ages, 80), 3.0);
  const auto larger = fit.model.predict(held_out * 1.2);
  EXPECT_LT((larger - pred).abs().max().item<double>(), 1e-3);
  EXPECT_EQ(fit.model.to_json().at("scaling").get<std::string>(), "proportional");
  // Without it, the same larger heads move the age (the effect the option removes).
  const auto plain = bm::fit_vbm(c.maps.index({Slice(0, 80)}), train_ages, small_options());
  EXPECT_GT((plain.model.predict(held_out * 1.2) - plain.model.predict(held_out)).abs().max().item<double>(), 1.0);
}

// Parenchyma scaling (GM+WM to 1200 mL) on the GM map: CSF added outside the brain, as a
// skull-on scan's mask rim holds and its skull-stripped copy lacks (50-120 mL,
// docs/ROBUSTNESS.md), leaves the age exactly as it was, where proportional scaling (CSF in
// the total) moves it; the setting survives the checkpoint round trip, and a checkpoint
// written before the option (its "proportional_scaling" flag) still loads with its scaling.
TEST(VbmModel, ParenchymaScalingLeavesTheAgeUnmovedByACsfRim) {
  const auto c = make_cohort(100, 0.02, 4);
  using torch::indexing::Slice;
  const std::vector<double> train_ages(c.ages.begin(), c.ages.begin() + 80);
  const auto held_out = c.maps.index({Slice(80, 100)});
  auto rim = torch::zeros_like(held_out);
  rim.index_put_({Slice(), 0, Slice(0, 2)}, 0.3);  // CSF in the first two slabs: an outer shell
  auto o = small_options();
  o.channels = {1};
  o.scaling = bm::VbmScaling::kParenchyma;
  const auto fit = bm::fit_vbm(c.maps.index({Slice(0, 80)}), train_ages, o);
  const auto pred = fit.model.predict(held_out);
  EXPECT_LT(mae(pred, c.ages, 80), 3.0);
  EXPECT_LT((fit.model.predict(held_out + rim) - pred).abs().max().item<double>(), 1e-4);
  // The same fit with the CSF in the total: the rim shrinks every GM feature.
  o.scaling = bm::VbmScaling::kTotalTissue;
  const auto total = bm::fit_vbm(c.maps.index({Slice(0, 80)}), train_ages, o);
  EXPECT_GT((total.model.predict(held_out + rim) - total.model.predict(held_out)).abs().max().item<double>(), 1.0);
  // Round trip; then the pre-option JSON key.
  const auto dir = brainage::testing::scratch_dir("vbm-parenchyma");
  const auto loaded = saved_and_loaded(fit.model, dir);
  ASSERT_TRUE(loaded.vbm);
  EXPECT_EQ(loaded.vbm->scaling, bm::VbmScaling::kParenchyma);
  EXPECT_TRUE(torch::equal(loaded.vbm->predict(held_out), pred));
  bm::CheckpointInfo info;
  info.preprocessing_version = "test";
  bm::save_checkpoint(dir / "old", total.model, info);
  std::ifstream in(dir / "old.json");
  auto j = nlohmann::json::parse(in);
  in.close();
  ASSERT_TRUE(j["model"].contains("scaling"));
  j["model"].erase("scaling");
  j["model"]["proportional_scaling"] = true;
  std::ofstream(dir / "old.json") << j.dump();
  const auto old = bm::load_checkpoint(dir / "old.json", true);
  ASSERT_TRUE(old.vbm);
  EXPECT_EQ(old.vbm->scaling, bm::VbmScaling::kTotalTissue);
  EXPECT_EQ(bm::vbm_scaling_from_string("parenchyma"), bm::VbmScaling::kParenchyma);
  EXPECT_THROW(bm::vbm_scaling_from_string("icv"), brainage::ModelError);
  fs::remove_all(dir);
}

// Left-right symmetric features: a cohort whose age signal sits in one hemisphere (X < 6
// of 12). The plain fit gives a mirrored brain (a header with a wrong left-right flip)
// another age; the symmetric fit gives it exactly the same age and still recovers the
// signal; the setting survives the checkpoint round trip.
TEST(VbmModel, LeftRightSymmetricFeaturesGiveAMirroredBrainTheSameAge) {
  auto c = make_cohort(100, 0.02, 5);
  using torch::indexing::Slice;
  const auto a = torch::tensor(c.ages, torch::kFloat).view({-1, 1, 1, 1});
  c.maps.index({Slice(), 1, Slice(), Slice(), Slice(0, 6)}) -= 0.004f * a;  // left GM thins faster
  const std::vector<double> train_ages(c.ages.begin(), c.ages.begin() + 80);
  const auto held_out = c.maps.index({Slice(80, 100)});
  const auto plain = bm::fit_vbm(c.maps.index({Slice(0, 80)}), train_ages, small_options());
  EXPECT_GT((plain.model.predict(held_out.flip({4})) - plain.model.predict(held_out)).abs().max().item<double>(), 1.0);
  auto o = small_options();
  o.left_right_symmetric = true;
  const auto fit = bm::fit_vbm(c.maps.index({Slice(0, 80)}), train_ages, o);
  const auto pred = fit.model.predict(held_out);
  EXPECT_LT(mae(pred, c.ages, 80), 3.0);
  EXPECT_LT((fit.model.predict(held_out.flip({4})) - pred).abs().max().item<double>(), 1e-6);
  const auto dir = brainage::testing::scratch_dir("vbm-symmetric");
  const auto loaded = saved_and_loaded(fit.model, dir);
  ASSERT_TRUE(loaded.vbm);
  EXPECT_TRUE(loaded.vbm->left_right_symmetric);
  EXPECT_TRUE(torch::equal(loaded.vbm->predict(held_out), pred));
  fs::remove_all(dir);
}

// Augmentation copies: each training subject also given as a copy with a nuisance change
// (a shell of extra "CSF" and less "GM" at a random strength: what a mask rim or a bias
// field does to real maps, without age). The plain fit reads the nuisance as age; trained
// with the copies, held-out subjects' copies read within a fraction of that, the held-out
// accuracy holds, and the copies are never scored (one out-of-fold age per subject). A
// copy naming no subject is refused.
TEST(VbmModel, AugmentationCopiesTeachTheFitToIgnoreANuisanceChange) {
  const auto c = make_cohort(100, 0.02, 7);
  using torch::indexing::Slice;
  const auto z = torch::arange(12, torch::kFloat).view({12, 1, 1}) - 5.5;
  const auto y = torch::arange(16, torch::kFloat).view({1, 16, 1}) - 7.5;
  const auto x = torch::arange(12, torch::kFloat).view({1, 1, 12}) - 5.5;
  const auto r = torch::sqrt(z * z + y * y + x * x);
  const auto shell = torch::exp(-(r - 4.0) * (r - 4.0) / 2.0);  // [12, 16, 12]
  auto with_nuisance = [&](const torch::Tensor& maps, uint64_t seed) {
    torch::manual_seed(static_cast<int64_t>(seed));
    const auto strength = (0.1 + 0.2 * torch::rand({maps.size(0), 1, 1, 1})).to(torch::kFloat);
    auto copy = maps.clone();
    copy.index({Slice(), 0}) += strength * shell;
    copy.index({Slice(), 1}) -= strength * shell;
    return copy;
  };
  const std::vector<double> train_ages(c.ages.begin(), c.ages.begin() + 80);
  const auto train = c.maps.index({Slice(0, 80)}), held_out = c.maps.index({Slice(80, 100)});
  const auto held_out_copies = with_nuisance(held_out, 11);
  auto shift = [&](const bm::VbmModel& m) {
    return (m.predict(held_out_copies) - m.predict(held_out)).abs().mean().item<double>();
  };
  const auto plain = bm::fit_vbm(train, train_ages, small_options());
  bm::VbmAugmentation augmentation;
  augmentation.maps = with_nuisance(train, 12);
  for (int64_t i = 0; i < 80; ++i) augmentation.subject_index.push_back(i);
  const auto fit = bm::fit_vbm(train, train_ages, small_options(), augmentation);
  EXPECT_GT(shift(plain.model), 2.0);
  EXPECT_LT(shift(fit.model), 0.05 * shift(plain.model));
  EXPECT_LT(mae(fit.model.predict(held_out), c.ages, 80), 3.0);
  EXPECT_EQ(fit.inner_oof_predictions.size(), 80u);
  EXPECT_EQ(fit.selection["augmentation_copies"].get<int64_t>(), 80);
  augmentation.subject_index.back() = 80;
  EXPECT_THROW(bm::fit_vbm(train, train_ages, small_options(), augmentation), brainage::ModelError);
}
