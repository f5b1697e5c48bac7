// The cross-validated seed ensemble (model/ensemble.h): three tiny random-init members with
// hand-written validation predictions on disjoint folds are assembled into one checkpoint
// that loads all three (also renamed with its member files), carries a calibration equal
// to a BiasCorrection fitted directly on the pooled out-of-fold predictions, and refuses a
// corrupt member file, members that differ, a subject held out twice, or a --final best
// member, each with a ModelError naming the member. Members of a second partition (another
// split seed: repeated K-fold) join it, each subject's out-of-fold age then being the mean
// of its two held-out members', and a partition that misses subjects is refused. With a VBM model beside them, the
// weight is the one that minimises the combined out-of-fold MAE (or the one given), the
// VBM model's weights travel in the checkpoint (and leave with it when the folder is
// rewritten without one), and a VBM folder missing a subject or
// giving it another age is refused.
#include "model/ensemble.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "common/errors.h"
#include "model/checkpoint.h"
#include "model/trainer.h"
#include "model/vbm_model.h"
#include "tests/test_data.h"
#include "tests/model/tiny_model_options.h"

namespace bm = brainage::model;
namespace fs = std::filesystem;

namespace {

bm::ModelOptions tiny() { return brainage::testing::tiny_model_options(1); }

/// Three folds of 4 subjects: ages and raw member predictions (years).
const std::vector<std::vector<double>> kAges = {{20, 41, 62, 79}, {25, 44, 58, 75}, {31, 50, 66, 70}};
const std::vector<std::vector<double>> kPredictions = {{33, 44, 55, 68}, {35, 47, 52, 64}, {40, 49, 58, 63}};
/// Each member's expert-load CV on its validation fold, over the whole fold (member 1 most
/// even) and scan by scan (member 2 most even): the fifteenth-session default's members 0, 1, 3.
const double kLoadCv[] = {0.39, 0.09, 0.32};
const double kScanLoadCv[] = {0.73, 0.64, 0.60};

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
    info.metrics = {{"final_weights", final_weights}, {"val_mae", 5.0 + k}, {"val_load_cv", kLoadCv[k % 3]},
                    {"val_scan_load_cv", kScanLoadCv[k % 3]}};
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
  // `model` (routing records, maps) is the member whose validation routing was most
  // balanced scan by scan.
  EXPECT_EQ(summary.routing_member, 2);
  EXPECT_EQ(loaded.info.routing_member, 2);
  EXPECT_TRUE(torch::equal(loaded.model->forward(x).age, ages[2]));

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

// Members trained alike route very differently: in the fifteenth-session default, member 0
// gave one expert 0.3 % of the brain (NMI with AAL 0.049) while member 3, whose per-scan
// validation load CV was the lowest (0.60 against 0.73), gave every expert at least 10 %
// (NMI 0.122). The maps come from the most balanced member unless one is named; a name
// outside the members is refused; members without the per-scan CV fall back to the
// cohort-wide one.
TEST_F(EnsembleTest, RoutingComesFromTheMostBalancedMemberOrTheOneNamed) {
  bm::EnsembleOptions named;
  named.routing_member = 2;
  const auto summary = bm::assemble_ensemble(members, dir / "named" / "model", named);
  EXPECT_EQ(summary.routing_member, 2);
  auto loaded = bm::load_checkpoint(dir / "named" / "model.json");
  EXPECT_EQ(loaded.info.routing_member, 2);
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({1, 1, 8, 12, 16});
  EXPECT_TRUE(torch::equal(loaded.model->forward(x).age, models[2]->forward(x).age));

  named.routing_member = 3;
  EXPECT_NE(model_error([&] { bm::assemble_ensemble(members, dir / "bad" / "model", named); })
                .find("routing member 3 is not a member index"),
            std::string::npos);

  // A member trained before the per-scan CV was recorded: all fall back to the cohort-wide
  // CV (member 1); without that either, a member never wins.
  bm::CheckpointInfo info = bm::load_checkpoint(members[1] / "model.json").info;
  info.metrics.erase("val_scan_load_cv");
  bm::save_checkpoint(members[1] / "model", models[1], info);
  EXPECT_EQ(bm::assemble_ensemble(members, dir / "cohort" / "model").routing_member, 1);
  info.metrics.erase("val_load_cv");
  bm::save_checkpoint(members[1] / "model", models[1], info);
  EXPECT_EQ(bm::assemble_ensemble(members, dir / "auto" / "model").routing_member, 2);
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
  for (std::size_t i = 0; i < 12; ++i) EXPECT_EQ(summary.oof.members[i], std::vector<int>{static_cast<int>(i / 4)});
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

TEST_F(EnsembleTest, ASubjectHeldOutTwiceABestEpochMemberOrAFolderGivenTwiceIsRefused) {
  std::ofstream(members[2] / "validation_predictions.csv", std::ios::app) << "sub-0-1,41,44,44\n";
  const std::string twice = model_error([&] { bm::assemble_ensemble(members, dir / "out" / "model"); });
  EXPECT_NE(twice.find("'sub-0-1' is held out by member 0 and member 2"), std::string::npos) << twice;

  add_member(3, tiny(), "best");
  const std::string best = model_error([&] { bm::assemble_ensemble({members[0], members[3]}, dir / "b" / "model"); });
  EXPECT_NE(best.find("--final best"), std::string::npos) << best;

  const std::string again =
      model_error([&] { bm::assemble_ensemble({members[0], members[1], members[0]}, dir / "again" / "model"); });
  EXPECT_NE(again.find("member 2 (" + (members[0] / "model.json").string() + "): has the same weights as member 0"),
            std::string::npos)
      << again;
}

namespace {

/// A VBM checkpoint on the tiny grid (random maps of the 12 subjects, fitted as `train
/// --model-kind vbm` does) whose oof_predictions.csv holds `oof(age, member prediction)`.
fs::path add_vbm_folder(const fs::path& dir, const std::function<double(double, double)>& oof) {
  const fs::path vbm_dir = dir / "vbm";
  fs::create_directories(vbm_dir);
  std::vector<double> ages;
  for (const auto& fold : kAges) ages.insert(ages.end(), fold.begin(), fold.end());
  torch::manual_seed(7);
  bm::VbmOptions o;
  o.fwhm_mm = {0.0};
  o.inner_folds = 3;
  o.mask_fraction = 0.0;
  const auto fit = bm::fit_vbm(torch::rand({12, 3, 8, 12, 16}), ages, o);
  bm::CheckpointInfo info;
  info.preprocessing_version = "test";
  bm::save_checkpoint(vbm_dir / "model", fit.model, info);
  std::ofstream csv(vbm_dir / "oof_predictions.csv");
  csv << "subject_id,age,predicted_age\n";
  for (int k = 0; k < 3; ++k)
    for (std::size_t i = 0; i < kAges[k].size(); ++i)
      csv << "sub-" << k << "-" << i << "," << kAges[k][i] << "," << oof(kAges[k][i], kPredictions[k][i]) << "\n";
  return vbm_dir;
}

}  // namespace

// The VBM model's errors are −0.5 × the members' (anti-correlated): the combined error
// (1 − 1.5 w) · e is smallest on the grid at w = 0.7, which must be chosen; the checkpoint
// then holds the VBM model, and its combined OOF predictions are (1 − w) · member + w · VBM.
TEST_F(EnsembleTest, AVbmModelIsAveragedWithTheWeightThatMinimisesTheOutOfFoldError) {
  const fs::path vbm_dir = add_vbm_folder(dir, [](double age, double pred) { return age - 0.5 * (pred - age); });
  bm::EnsembleOptions options;
  options.vbm_dir = vbm_dir;
  const auto summary = bm::assemble_ensemble(members, dir / "out" / "model", options);
  EXPECT_DOUBLE_EQ(summary.vbm_weight, 0.7);
  EXPECT_EQ(summary.model_id.rfind("ermoe-ba-vbm-ensemble-", 0), 0u) << summary.model_id;
  ASSERT_EQ(summary.oof_vbm.size(), 12u);
  for (std::size_t i = 0; i < 12; ++i)
    EXPECT_NEAR(summary.oof.predictions[i], 0.3 * summary.oof_transformer[i] + 0.7 * summary.oof_vbm[i], 1e-9);
  EXPECT_LT(summary.metrics.at("oof_raw").at("mae").get<double>(),
            summary.metrics.at("oof_transformer_raw").at("mae").get<double>());
  // How far the two parts' out-of-fold ages lie apart (the model card's part disagreement).
  double largest = 0;
  for (std::size_t i = 0; i < 12; ++i) largest = std::max(largest, std::abs(summary.oof_transformer[i] - summary.oof_vbm[i]));
  const auto& apart = summary.metrics.at("oof_part_difference");
  EXPECT_DOUBLE_EQ(apart.at("max_abs_years").get<double>(), largest);
  EXPECT_LE(apart.at("p99_abs_years").get<double>(), largest);
  EXPECT_EQ(apart.at("subjects").get<int>(), 12);
  EXPECT_TRUE(fs::exists(dir / "out" / "model.vbm.pt"));

  auto loaded = bm::load_checkpoint(dir / "out" / "model.json");
  ASSERT_TRUE(loaded.info.vbm_member.has_value());
  EXPECT_DOUBLE_EQ(loaded.info.vbm_member->weight, 0.7);
  ASSERT_TRUE(loaded.vbm);
  EXPECT_EQ(loaded.members.size(), 3u);
  const auto maps = torch::rand({2, 3, 8, 12, 16});
  auto original = bm::load_checkpoint(vbm_dir / "model.json", /*accept_vbm=*/true);
  EXPECT_TRUE(torch::equal(loaded.vbm->predict_raw(maps), original.vbm->predict_raw(maps)));

  // The same folder rewritten without a VBM model keeps no stale VBM weights beside it.
  bm::assemble_ensemble(members, dir / "out" / "model", bm::EnsembleOptions{});
  EXPECT_FALSE(fs::exists(dir / "out" / "model.vbm.pt"));
  EXPECT_FALSE(bm::load_checkpoint(dir / "out" / "model.json").info.vbm_member.has_value());

  // A weight given is used as given; one subject missing from the VBM folder is refused by name.
  options.vbm_weight = 0.25;
  EXPECT_DOUBLE_EQ(bm::assemble_ensemble(members, dir / "given" / "model", options).vbm_weight, 0.25);
  std::ofstream(vbm_dir / "oof_predictions.csv") << "subject_id,age,predicted_age\nsub-0-0,21,21\n";
  const std::string age = model_error([&] { bm::assemble_ensemble(members, dir / "a" / "model", options); });
  EXPECT_NE(age.find("subject 'sub-0-0' is 21"), std::string::npos) << age;
  std::ofstream(vbm_dir / "oof_predictions.csv") << "subject_id,age,predicted_age\nsub-0-0,20,21\n";
  const std::string missing = model_error([&] { bm::assemble_ensemble(members, dir / "m" / "model", options); });
  EXPECT_NE(missing.find("no out-of-fold prediction of subject 'sub-0-1'"), std::string::npos) << missing;
  // A member folder that does not exist is named as such.
  std::vector<fs::path> missing_member = members;
  missing_member[1] = dir / "no-such-member";
  const std::string absent = model_error([&] { bm::assemble_ensemble(missing_member, dir / "x" / "model", {}); });
  EXPECT_NE(absent.find("no-such-member: ensemble member 1 is not a folder"), std::string::npos) << absent;
  // A transformer folder is not a VBM model.
  options.vbm_dir = members[0];
  const std::string wrong = model_error([&] { bm::assemble_ensemble(members, dir / "w" / "model", options); });
  EXPECT_NE(wrong.find("not a VBM model"), std::string::npos) << wrong;
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

// Repeated K-fold: a second partition (split seed 43) holds the same 12 subjects out in
// other groups; each subject's OOF age is the mean of its two held-out members' ages, the
// calibration is fitted on those means, and a partition missing a member is refused.
TEST_F(EnsembleTest, RepeatedPartitionsAverageEachSubjectsHeldOutMembers) {
  std::map<std::string, std::pair<double, double>> first;  // subject -> (age, prediction)
  for (int k = 0; k < 3; ++k)
    for (std::size_t i = 0; i < 4; ++i)
      first["sub-" + std::to_string(k) + "-" + std::to_string(i)] = {kAges[k][i], kPredictions[k][i]};
  std::vector<std::string> subjects;
  for (const auto& [id, unused] : first) subjects.push_back(id);
  std::vector<fs::path> repeated = members;
  for (int k = 0; k < 3; ++k) {
    torch::manual_seed(200 + k);
    bm::BrainAgeModel model(tiny());
    const fs::path member = dir / ("repeat" + std::to_string(k));
    fs::create_directories(member);
    bm::CheckpointInfo info;
    info.preprocessing_version = "test";
    info.training = {{"options", {{"seed", 43 + k}, {"split_seed", 43}, {"folds", 3}, {"fold", k}}}};
    info.metrics = {{"final_weights", "last"}, {"val_mae", 5.0}};
    bm::save_checkpoint(member / "model", model, info);
    std::ofstream csv(member / "validation_predictions.csv");
    csv << "subject_id,age,predicted_age\n";
    for (std::size_t j = static_cast<std::size_t>(k); j < subjects.size(); j += 3)  // other groups than fold k
      csv << subjects[j] << "," << first[subjects[j]].first << "," << first[subjects[j]].second + 6.0 << "\n";
    repeated.push_back(member);
  }
  const auto summary = bm::assemble_ensemble(repeated, dir / "repeated" / "model");
  ASSERT_EQ(summary.oof.subject_ids.size(), 12u);
  std::vector<double> ages, means;
  for (std::size_t i = 0; i < 12; ++i) {
    const auto& [age, prediction] = first.at(summary.oof.subject_ids[i]);
    EXPECT_NEAR(summary.oof.predictions[i], prediction + 3.0, 1e-9) << summary.oof.subject_ids[i];
    EXPECT_EQ(summary.oof.members[i].size(), 2u);
    ages.push_back(age);
    means.push_back(prediction + 3.0);
  }
  const auto direct = brainage::BiasCorrection::fit(ages, means);
  EXPECT_NEAR(summary.calibration.slope, direct.slope, 1e-12);
  EXPECT_NEAR(summary.calibration.intercept, direct.intercept, 1e-12);
  EXPECT_EQ(bm::load_checkpoint(dir / "repeated" / "model.json").members.size(), 6u);
  // Each member records the subjects it held out, so the OOF study can be rebuilt from the checkpoint.
  const auto written = bm::read_checkpoint_info(dir / "repeated" / "model.json");
  for (std::size_t k = 0; k < 3; ++k) {
    std::vector<std::string> held, recorded;
    for (std::size_t j = k; j < subjects.size(); j += 3) held.push_back(subjects[j]);
    for (const auto& id : written.members.at(3 + k).training.at("validation_subject_ids")) recorded.push_back(id);
    std::sort(recorded.begin(), recorded.end());
    EXPECT_EQ(recorded, held) << "member " << 3 + k;
  }

  repeated.pop_back();  // the second partition now misses fold 2's subjects
  const std::string what = model_error([&] { bm::assemble_ensemble(repeated, dir / "partial" / "model"); });
  EXPECT_NE(what.find("held out in 1 of the members' 2 K-fold partitions, not in that of member 3"), std::string::npos)
      << what;
  EXPECT_FALSE(fs::exists(dir / "partial" / "model.json"));
}
