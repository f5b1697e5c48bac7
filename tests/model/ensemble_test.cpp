// The cross-validated seed ensemble (model/ensemble.h): three tiny random-init members with
// hand-written validation predictions on disjoint folds are assembled into one checkpoint
// that loads all three (also renamed with its member files), carries a calibration equal
// to a BiasCorrection fitted directly on the pooled out-of-fold predictions, and refuses a
// corrupt member file, members that differ, a subject held out twice, or a --final best
// member, each with a ModelError naming the member.
#include "model/ensemble.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/errors.h"
#include "model/checkpoint.h"
#include "model/trainer.h"
#include "tests/test_data.h"
#include "tests/model/tiny_model_options.h"

namespace bm = brainage::model;
namespace fs = std::filesystem;

namespace {

bm::ModelOptions tiny() { return brainage::testing::tiny_model_options(1); }

/// Three folds of 4 subjects: ages and raw member predictions (years).
const std::vector<std::vector<double>> kAges = {{20, 41, 62, 79}, {25, 44, 58, 75}, {31, 50, 66, 70}};
const std::vector<std::vector<double>> kPredictions = {{33, 44, 55, 68}, {35, 47, 52, 64}, {40, 49, 58, 63}};

class EnsembleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = brainage::testing::scratch_dir("ensemble");
    for (int k = 0; k < 3; ++k) add_member(k, tiny());
  }

  /// A member folder: a random-init model (seed 100 + k) saved as a trainer would, and its
  /// fold's validation_predictions.csv.
  void add_member(int k, const bm::ModelOptions& options, const std::string& final_weights = "last") {
    torch::manual_seed(100 + k);
    bm::BrainAgeModel model(options);
    model->eval();
    models.push_back(model);
    const fs::path member = dir / ("member" + std::to_string(k));
    fs::create_directories(member);
    bm::CheckpointInfo info;
    info.preprocessing_version = "test";
    info.training = {{"options", {{"seed", 42 + k}, {"split_seed", 42}, {"folds", 3}, {"fold", k}}}};
    info.metrics = {{"final_weights", final_weights}, {"val_mae", 5.0 + k}};
    bm::save_checkpoint(member / "model", model, info);
    std::ofstream csv(member / "validation_predictions.csv");
    csv << "subject_id,age,predicted_age,bias_corrected_age\n";
    const auto& ages = kAges[k % 3];
    const auto& predictions = kPredictions[k % 3];
    for (std::size_t i = 0; i < ages.size(); ++i)
      csv << "sub-" << k << "-" << i << "," << ages[i] << "," << predictions[i] << "," << predictions[i] << "\n";
    members.push_back(member);
  }

  fs::path dir;
  std::vector<fs::path> members;
  std::vector<bm::BrainAgeModel> models;
};

template <typename F>
std::string model_error(F&& f) {
  try {
    f();
  } catch (const brainage::ModelError& e) {
    return e.what();
  }
  return "no ModelError";
}

}  // namespace

TEST_F(EnsembleTest, RoundTripLoadsEveryMemberWithItsOwnWeights) {
  const auto summary = bm::assemble_ensemble(members, dir / "out" / "model");
  EXPECT_EQ(summary.checkpoint, dir / "out" / "model.json");
  EXPECT_EQ(summary.model_id.rfind("ermoe-ba-ensemble-", 0), 0u) << summary.model_id;
  for (int k = 0; k < 3; ++k) EXPECT_TRUE(fs::exists(dir / "out" / ("model.member" + std::to_string(k) + ".pt")));
  EXPECT_FALSE(fs::exists(dir / "out" / "model.pt"));

  auto loaded = bm::load_checkpoint(dir / "out" / "model.json");
  EXPECT_EQ(loaded.info.model_kind, bm::kEnsembleModelKind);
  EXPECT_EQ(loaded.info.model_id, summary.model_id);
  ASSERT_EQ(loaded.members.size(), 3u);
  ASSERT_EQ(loaded.info.members.size(), 3u);
  EXPECT_EQ(loaded.info.members[2].training.at("seed"), 44);
  EXPECT_EQ(loaded.info.members[2].training.at("fold"), 2);
  EXPECT_TRUE(loaded.weights.empty());
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 1, 8, 12, 16});
  std::vector<torch::Tensor> ages;
  for (int k = 0; k < 3; ++k) {
    const auto expected = models[k]->forward(x).age;
    EXPECT_TRUE(torch::equal(loaded.members[k]->forward(x).age, expected)) << "member " << k;
    ages.push_back(expected);
  }
  // Distinct seeds: distinct members (a mean of copies would hide a loader that reuses one).
  EXPECT_GT((ages[0] - ages[1]).abs().max().item<double>(), 1e-6);
  EXPECT_TRUE(torch::equal(loaded.model->forward(x).age, ages[0]));  // `model` is member 0 (routing, maps)

  // Copied and renamed with its member files, it still loads (members found by the JSON's stem).
  const fs::path shipped = dir / "shipped";
  fs::create_directories(shipped);
  fs::copy_file(dir / "out" / "model.json", shipped / "brainage-default.json");
  for (int k = 0; k < 3; ++k)
    fs::copy_file(dir / "out" / ("model.member" + std::to_string(k) + ".pt"),
                  shipped / ("brainage-default.member" + std::to_string(k) + ".pt"));
  auto renamed = bm::load_checkpoint(shipped / "brainage-default.json");
  ASSERT_EQ(renamed.members.size(), 3u);
  EXPECT_TRUE(torch::equal(renamed.members[2]->forward(x).age, ages[2]));
}

TEST_F(EnsembleTest, CalibrationIsTheBiasCorrectionOfThePooledOutOfFoldPredictions) {
  const auto summary = bm::assemble_ensemble(members, dir / "out" / "model");
  std::vector<double> ages, predictions;
  for (int k = 0; k < 3; ++k) {
    ages.insert(ages.end(), kAges[k].begin(), kAges[k].end());
    predictions.insert(predictions.end(), kPredictions[k].begin(), kPredictions[k].end());
  }
  const auto direct = brainage::BiasCorrection::fit(ages, predictions);
  ASSERT_TRUE(direct.usable());
  const auto info = bm::read_checkpoint_info(dir / "out" / "model.json");
  EXPECT_NEAR(info.bias_correction.slope, direct.slope, 1e-12);
  EXPECT_NEAR(info.bias_correction.intercept, direct.intercept, 1e-12);
  EXPECT_EQ(info.bias_correction.n, 12u);
  EXPECT_EQ(info.bias_correction_fitted_on, "out-of-fold (K-fold inner CV)");
  EXPECT_EQ(summary.oof.member, (std::vector<int>{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}));
  // OOF metrics: the raw MAE by hand; the corrected MAE is smaller (the predictions are compressed).
  double mae = 0;
  for (std::size_t i = 0; i < ages.size(); ++i) mae += std::abs(predictions[i] - ages[i]) / ages.size();
  EXPECT_NEAR(info.metrics.at("oof_raw").at("mae").get<double>(), mae, 1e-9);
  EXPECT_LT(info.metrics.at("oof_bias_corrected").at("mae").get<double>(), mae);
  EXPECT_EQ(info.metrics.at("oof_n"), 12);
  EXPECT_EQ(info.metrics.at("members"), 3);
}

TEST_F(EnsembleTest, CorruptMemberFileIsAModelErrorNamingIt) {
  bm::assemble_ensemble(members, dir / "out" / "model");
  const fs::path member1 = dir / "out" / "model.member1.pt";
  std::string bytes;
  {
    std::ifstream in(member1, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() / 2] ^= 0x5a;
  std::ofstream(member1, std::ios::binary) << bytes;
  const std::string what = model_error([&] { bm::load_checkpoint(dir / "out" / "model.json"); });
  EXPECT_NE(what.find("model.member1.pt"), std::string::npos) << what;
  EXPECT_NE(what.find("SHA-256"), std::string::npos) << what;
  fs::remove(member1);
  const std::string missing = model_error([&] { bm::load_checkpoint(dir / "out" / "model.json"); });
  EXPECT_NE(missing.find("model.member1.pt"), std::string::npos) << missing;
}

TEST_F(EnsembleTest, MembersThatDifferAreRefusedNamingTheMember) {
  auto options = tiny();
  options.channels = {"t1", "gm"};
  add_member(3, options);
  const std::vector<fs::path> mixed = {members[0], members[3]};
  const std::string what = model_error([&] { bm::assemble_ensemble(mixed, dir / "mixed" / "model"); });
  EXPECT_NE(what.find("member 1"), std::string::npos) << what;
  EXPECT_NE(what.find("channels t1,gm"), std::string::npos) << what;
  EXPECT_FALSE(fs::exists(dir / "mixed" / "model.json"));

  // One member alone is no ensemble; a VBM or missing checkpoint is no member.
  EXPECT_NE(model_error([&] { bm::assemble_ensemble({members[0]}, dir / "one" / "model"); }).find("at least 2"),
            std::string::npos);
  const std::string absent = model_error([&] { bm::assemble_ensemble({members[0], dir / "absent"}, dir / "x" / "model"); });
  EXPECT_NE(absent.find("member 1"), std::string::npos) << absent;
}

TEST_F(EnsembleTest, ASubjectHeldOutTwiceOrABestEpochMemberIsRefused) {
  std::ofstream(members[2] / "validation_predictions.csv", std::ios::app) << "sub-0-1,41,44,44\n";
  const std::string twice = model_error([&] { bm::assemble_ensemble(members, dir / "out" / "model"); });
  EXPECT_NE(twice.find("'sub-0-1' is held out by member 0 and member 2"), std::string::npos) << twice;

  add_member(3, tiny(), "best");
  const std::string best = model_error([&] { bm::assemble_ensemble({members[0], members[3]}, dir / "b" / "model"); });
  EXPECT_NE(best.find("--final best"), std::string::npos) << best;
}

// Members trained with different seeds but one split seed validate on disjoint folds that
// cover every subject once (what makes their validation predictions out-of-fold).
TEST(EnsembleSplit, SplitSeedSharesOnePartitionAcrossMemberSeeds) {
  std::vector<double> ages;
  for (int i = 0; i < 23; ++i) ages.push_back(20 + 2.5 * i);
  std::vector<int> held_out(ages.size(), 0);
  for (int k = 0; k < 3; ++k) {
    bm::TrainOptions o;
    o.folds = 3;
    o.fold = k;
    o.seed = 42 + k;
    o.split_seed = 42;
    for (auto i : bm::split_subjects(ages, o).second) ++held_out[i];
  }
  EXPECT_EQ(held_out, std::vector<int>(ages.size(), 1));
  // Without the split seed, the seeds' partitions differ (the failure the option prevents).
  std::vector<int> unshared(ages.size(), 0);
  for (int k = 0; k < 3; ++k) {
    bm::TrainOptions o;
    o.folds = 3;
    o.fold = k;
    o.seed = 42 + k;
    for (auto i : bm::split_subjects(ages, o).second) ++unshared[i];
  }
  EXPECT_NE(unshared, std::vector<int>(ages.size(), 1));
}
