// Training on small synthetic volumes whose intensity pattern encodes the age (so a model
// can learn it): 2 epochs reduce the training loss; an interrupted + resumed run ends with
// exactly the weights of an uninterrupted one; split and schedule properties.
#include "model/trainer.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/errors.h"
#include "model/checkpoint.h"
#include "model/runtime.h"
#include "tests/test_data.h"

namespace bm = brainage::model;
namespace fs = std::filesystem;

namespace {

bm::TrainingData synthetic(int64_t n) {
  torch::manual_seed(123);
  bm::TrainingData data;
  std::vector<torch::Tensor> volumes;
  for (int64_t i = 0; i < n; ++i) {
    const double age = 20 + 60.0 * i / (n - 1);
    // A "brain" block whose inner part darkens and whose rim thickens with age, plus noise.
    auto v = torch::zeros({1, 16, 16, 16});
    v.narrow(1, 2, 12).narrow(2, 2, 12).narrow(3, 2, 12).fill_(0.9);
    const int64_t core = 8 - static_cast<int64_t>((age - 20) / 15);  // 8 .. 4
    v.narrow(1, 8 - core / 2, core).narrow(2, 8 - core / 2, core).narrow(3, 8 - core / 2, core).fill_(0.3);
    volumes.push_back(v + 0.02 * torch::randn({1, 16, 16, 16}));
    data.ages.push_back(age);
    data.subject_ids.push_back("sub-" + std::to_string(i));
  }
  data.volumes = torch::stack(volumes);
  return data;
}

bm::TrainOptions options(const fs::path& dir) {
  bm::configure_threads(1);  // tiny tensors: one thread is fastest on a loaded 2-core box
  bm::TrainOptions o;
  o.model.grid = {16, 16, 16};
  o.model.patch_size = 4;
  o.model.dim = 32;
  o.model.depth = 2;
  o.model.heads = 2;
  o.model.num_experts = 4;
  o.model.expert_rank = 8;
  o.model.expert_hidden = 32;
  o.model.ffn_hidden = 64;
  o.output_dir = dir;
  o.batch_size = 4;
  o.learning_rate = 2e-3;
  o.warmup_epochs = 1;
  o.progress = false;
  o.augmentation.max_translation_vox = 1;
  return o;
}

}  // namespace

TEST(Trainer, SplitIsSeededStratifiedAndDisjoint) {
  std::vector<double> ages;
  for (int i = 0; i < 50; ++i) ages.push_back(20 + i);
  bm::TrainOptions o;
  const auto [train, val] = bm::split_subjects(ages, o);
  EXPECT_EQ(train.size() + val.size(), 50u);
  EXPECT_EQ(val.size(), 10u);  // 1 in 5 of every age group of 5
  o.folds = 5;
  std::vector<int> seen(50, 0);
  for (int64_t f = 0; f < 5; ++f) {
    o.fold = f;
    for (auto i : bm::split_subjects(ages, o).second) ++seen[i];
  }
  for (int s : seen) EXPECT_EQ(s, 1);  // k-fold: every subject validates exactly once
  o.fold = 5;
  EXPECT_THROW(bm::split_subjects(ages, o), brainage::ModelError);
}

TEST(Trainer, WarmupThenCosineSchedule) {
  EXPECT_NEAR(bm::learning_rate_at(0, 10, 100, 1.0, 0.0), 0.1, 1e-12);
  EXPECT_NEAR(bm::learning_rate_at(9, 10, 100, 1.0, 0.0), 1.0, 1e-12);
  EXPECT_NEAR(bm::learning_rate_at(55, 10, 100, 1.0, 0.0), 0.5, 1e-12);
  EXPECT_NEAR(bm::learning_rate_at(100, 10, 100, 1.0, 0.1), 0.1, 1e-12);
}

TEST(Trainer, TwoEpochsReduceTrainingLossAndWriteTheModel) {
  const auto data = synthetic(24);
  auto o = options(brainage::testing::scratch_dir("trainer-2ep"));
  o.epochs = 2;
  o.batch_size = 2;
  o.warmup_epochs = 0;
  const auto result = bm::train_model(data, o);
  ASSERT_EQ(result.history.size(), 2u);
  EXPECT_LT(result.history[1].train_loss, result.history[0].train_loss);
  EXPECT_TRUE(fs::exists(o.output_dir / "metrics.csv"));
  EXPECT_TRUE(fs::exists(o.output_dir / "validation_predictions.csv"));
  const auto model = bm::load_checkpoint(result.model_path);
  EXPECT_GT(model.info.bias_correction.n, 0u);
  EXPECT_EQ(model.info.metrics.at("best_epoch").get<int64_t>(), result.best_epoch);
  EXPECT_LT(model.model->max_basis_orthonormality_error(), 1e-4);
}

TEST(Trainer, ResumeAfterInterruptionGivesTheSameWeights) {
  const auto data = synthetic(12);
  auto straight = options(brainage::testing::scratch_dir("trainer-straight"));
  straight.epochs = 3;
  straight.patience = 0;
  bm::train_model(data, straight);

  auto interrupted = options(brainage::testing::scratch_dir("trainer-resumed"));
  interrupted.epochs = 3;
  interrupted.patience = 0;
  interrupted.stop_after_epoch = 1;
  const auto first = bm::train_model(data, interrupted);
  EXPECT_TRUE(first.interrupted);
  EXPECT_FALSE(fs::exists(interrupted.output_dir / "model.json"));
  interrupted.stop_after_epoch = 0;
  interrupted.resume = true;
  const auto second = bm::train_model(data, interrupted);
  EXPECT_EQ(second.history.size(), 3u);

  auto a = bm::load_checkpoint(straight.output_dir / "checkpoints" / "epoch_003.json");
  auto b = bm::load_checkpoint(interrupted.output_dir / "checkpoints" / "epoch_003.json");
  const auto pa = a.model->named_parameters(), pb = b.model->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& p : pa)  // same threads, same seeds: bit-identical (tolerance 0)
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  // The metrics history was carried through the resume.
  EXPECT_DOUBLE_EQ(second.history[0].train_loss,
                   a.info.training.at("state").at("history")[0].at("train_loss").get<double>());
}

TEST(Trainer, ResumeWithoutCheckpointOrWithOtherOptionsFails) {
  const auto data = synthetic(8);
  auto o = options(brainage::testing::scratch_dir("trainer-noresume"));
  o.resume = true;
  EXPECT_THROW(bm::train_model(data, o), brainage::ModelError);
  o.resume = false;
  o.epochs = 2;
  o.stop_after_epoch = 1;
  bm::train_model(data, o);
  o.resume = true;
  o.learning_rate *= 2;
  EXPECT_THROW(bm::train_model(data, o), brainage::ModelError);
}

TEST(Trainer, LastEpochFinalModelIsTheLastEpochsWeightsAndItsPredictions) {
  // Cross-validation needs a final model chosen without looking at the held-out fold.
  const auto data = synthetic(12);
  auto o = options(brainage::testing::scratch_dir("trainer-last"));
  o.epochs = 3;
  o.patience = 0;
  o.final_weights = bm::FinalWeights::kLastEpoch;
  const auto result = bm::train_model(data, o);
  auto final_model = bm::load_checkpoint(result.model_path);
  auto last = bm::load_checkpoint(o.output_dir / "checkpoints" / "epoch_003.json");
  EXPECT_EQ(final_model.info.metrics.at("final_epoch").get<int64_t>(), 3);
  EXPECT_EQ(final_model.info.metrics.at("final_weights").get<std::string>(), "last");
  const auto pf = final_model.model->named_parameters(), pl = last.model->named_parameters();
  for (const auto& p : pf) EXPECT_TRUE(torch::equal(p.value(), pl[p.key()])) << p.key();
  // The reported validation MAE is the last epoch's, not the best one's.
  EXPECT_NEAR(final_model.info.metrics.at("val_mae").get<double>(), result.history.back().val_mae, 1e-4);
}

TEST(Trainer, ValFractionZeroTrainsOnEverySubjectWithoutValidation) {
  const auto data = synthetic(12);
  auto o = options(brainage::testing::scratch_dir("trainer-all"));
  o.epochs = 2;
  o.val_fraction = 0;
  EXPECT_THROW(bm::train_model(data, o), brainage::ModelError);  // "best" needs a validation set
  o.final_weights = bm::FinalWeights::kLastEpoch;
  const auto [train, val] = bm::split_subjects(data.ages, o);
  EXPECT_EQ(train.size(), 12u);
  EXPECT_TRUE(val.empty());
  const auto result = bm::train_model(data, o);
  ASSERT_EQ(result.history.size(), 2u);
  EXPECT_TRUE(std::isnan(result.history[1].val_mae));
  const auto model = bm::load_checkpoint(result.model_path);
  EXPECT_EQ(model.info.training.at("subjects_train").get<int64_t>(), 12);
  EXPECT_EQ(model.info.bias_correction.n, 0u);  // nothing to fit it on
  EXPECT_TRUE(model.info.metrics.at("val_mae").is_null());
  // An interrupted run without validation resumes: the NaN (JSON null) numbers read back.
  o.output_dir = brainage::testing::scratch_dir("trainer-all-resume");
  o.stop_after_epoch = 1;
  EXPECT_TRUE(bm::train_model(data, o).interrupted);
  o.stop_after_epoch = 0;
  o.resume = true;
  const auto resumed = bm::train_model(data, o);
  ASSERT_EQ(resumed.history.size(), 2u);
  EXPECT_TRUE(std::isnan(resumed.history[0].val_mae));
  EXPECT_DOUBLE_EQ(resumed.history[1].train_loss, result.history[1].train_loss);
}

// A fresh run into a folder that holds an earlier run's best.json must never end with that
// old model: when no epoch of the new run reaches a finite validation MAE (here: NaN in the
// validation volumes) there is no best model, and saying so is the only honest answer.
TEST(Trainer, FreshRunNeverEndsWithAnEarlierRunsBestModel) {
  const auto dir = brainage::testing::scratch_dir("trainer-stale-best");
  auto data = synthetic(12);
  auto o = options(dir);
  o.epochs = 1;
  o.warmup_epochs = 0;
  const auto earlier = bm::train_model(data, o);
  ASSERT_EQ(earlier.best_epoch, 1);
  ASSERT_TRUE(fs::exists(dir / "best.json"));
  const std::string earlier_id = bm::load_checkpoint(dir / "model.json").info.model_id;

  for (auto i : bm::split_subjects(data.ages, o).second) data.volumes[i].fill_(std::nanf(""));
  try {
    const auto fresh = bm::train_model(data, o);
    EXPECT_NE(bm::load_checkpoint(fresh.model_path).info.model_id, earlier_id)
        << "the final model is the earlier run's best.json";
    ADD_FAILURE() << "a run without any finite validation MAE has no best model, yet it wrote one";
  } catch (const brainage::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("no epoch reached a finite validation MAE"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "best.json")) << "a fresh run removes the earlier run's best model";
}
