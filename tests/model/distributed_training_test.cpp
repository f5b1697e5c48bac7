// The trainer on several ranks (model/distributed_training.h + train_model with a
// DistributedContext): which volumes each rank loads, its epoch order, and a 2-rank
// train_model run on a tiny model — rank 0 writes every output, the ranks agree on the
// metrics, and a restart resumes both ranks from rank 0's last checkpoint.
#include "model/distributed_training.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "common/errors.h"
#include "model/trainer.h"
#include "tests/free_port.h"
#include "tests/test_data.h"

namespace bm = brainage::model;
namespace fs = std::filesystem;

using brainage::testing::free_port;

namespace {


std::vector<double> ages_of(int n) {
  std::vector<double> ages;
  for (int i = 0; i < n; ++i) ages.push_back(20.0 + (i * 37) % 60);
  return ages;
}

bm::TrainOptions tiny_options(const fs::path& out) {
  bm::TrainOptions o;
  o.model.grid = {8, 12, 16};
  o.model.patch_size = 4;
  o.model.dim = 16;
  o.model.depth = 2;
  o.model.heads = 2;
  o.model.num_experts = 3;
  o.model.expert_rank = 4;
  o.model.expert_hidden = 8;
  o.model.ffn_hidden = 16;
  o.model.dropout = 0.0;
  o.augmentation.enabled = false;
  o.output_dir = out;
  o.epochs = 3;
  o.batch_size = 4;
  o.warmup_epochs = 1;
  o.patience = 0;
  o.progress = false;
  return o;
}

/// Rank `rank`'s data as `brainage train` builds it: every age, only the needed volumes.
bm::TrainingData rank_data(const bm::TrainOptions& o, int n, int rank, int world) {
  bm::TrainingData data;
  data.ages = ages_of(n);
  for (int i = 0; i < n; ++i) data.subject_ids.push_back("sub-" + std::to_string(i));
  const auto needed = bm::subjects_needed_by_rank(data.ages, o, rank, world);
  const auto& g = o.model.grid;
  std::vector<torch::Tensor> volumes;
  data.volume_rows.assign(n, -1);
  for (size_t row = 0; row < needed.size(); ++row) {
    // A volume whose mean intensity encodes the age, so there is something to learn.
    const double age = data.ages[needed[row]];
    volumes.push_back(torch::full({1, g[0], g[1], g[2]}, age / 80.0) +
                      0.05 * torch::randn({1, g[0], g[1], g[2]}, torch::make_generator<at::CPUGeneratorImpl>(needed[row])));
    data.volume_rows[needed[row]] = static_cast<int64_t>(row);
  }
  data.volumes = torch::stack(volumes);
  return data;
}

/// train_model on ranks 0 and 1 of one group, each in a thread.
std::vector<bm::TrainResult> train_two_ranks(bm::TrainOptions o, int n) {
  const int port = free_port();
  std::vector<bm::TrainResult> results(2);
  std::vector<std::string> errors(2);
  std::vector<bm::TrainingData> data;
  for (int r = 0; r < 2; ++r) data.push_back(rank_data(o, n, r, 2));
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r, o]() mutable {
      try {
        bm::DistributedOptions d;
        d.world_size = 2;
        d.rank = r;
        d.master_port = port;
        d.timeout = std::chrono::seconds(30);
        bm::DistributedContext dist(d);
        o.distributed = &dist;
        results[r] = bm::train_model(data[r], o);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  return results;
}

}  // namespace

TEST(DistributedTraining, EachRankLoadsItsTrainingShardAndTheWholeValidationSplit) {
  const auto o = tiny_options("unused");
  const auto ages = ages_of(23);
  const auto [train, validation] = bm::split_subjects(ages, o);
  std::set<int64_t> trained;
  for (int r = 0; r < 3; ++r) {
    const auto needed = bm::subjects_needed_by_rank(ages, o, r, 3);
    const std::set<int64_t> needed_set(needed.begin(), needed.end());
    for (auto v : validation) EXPECT_TRUE(needed_set.count(v)) << "rank " << r << " lacks validation subject " << v;
    const auto mine = bm::rank_training_subjects(train, r, 3);
    EXPECT_EQ(mine.size(), (train.size() + 2) / 3) << "padded: every rank takes the same number of steps";
    for (auto t : mine) EXPECT_TRUE(needed_set.count(t));
    trained.insert(mine.begin(), mine.end());
    // Fewer volumes than the whole manifest: that is the point of sharding.
    EXPECT_LT(needed.size(), ages.size());
  }
  EXPECT_EQ(trained, std::set<int64_t>(train.begin(), train.end())) << "every training subject is on some rank";
}

TEST(DistributedTraining, SelectVolumesMapsSubjectsToLoadedRowsAndRejectsOthers) {
  bm::TrainingData data;
  data.ages = {30, 40, 50};
  data.subject_ids = {"a", "b", "c"};
  data.volumes = torch::arange(2).reshape({2, 1, 1, 1, 1}).to(torch::kFloat32);
  data.volume_rows = {1, -1, 0};  // a -> row 1, b not loaded, c -> row 0
  const auto v = bm::select_volumes(data, {2, 0});
  EXPECT_EQ(v.reshape({-1})[0].item<float>(), 0.0f);
  EXPECT_EQ(v.reshape({-1})[1].item<float>(), 1.0f);
  try {
    bm::select_volumes(data, {1});
    FAIL() << "subject b is not loaded";
  } catch (const brainage::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("subject b: volume not loaded on this rank"), std::string::npos) << e.what();
  }
}

TEST(DistributedTraining, TwoRanksTrainWriteOnRankZeroAndResumeTogether) {
  const auto dir = brainage::testing::scratch_dir("distributed-train");
  auto o = tiny_options(dir);
  o.stop_after_epoch = 2;  // an interruption after epoch 2 ...
  const auto first = train_two_ranks(o, 20);
  ASSERT_TRUE(first[0].interrupted && first[1].interrupted);
  EXPECT_TRUE(fs::exists(dir / "checkpoints" / "epoch_002.json"));
  EXPECT_TRUE(fs::exists(dir / "metrics.csv"));
  EXPECT_FALSE(fs::exists(dir / "model.json"));
  ASSERT_EQ(first[0].history.size(), 2u);
  ASSERT_EQ(first[1].history.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {  // the ranks agree on every number they decide with
    EXPECT_EQ(first[0].history[e].val_mae, first[1].history[e].val_mae);
    EXPECT_EQ(first[0].history[e].train_loss, first[1].history[e].train_loss);
    EXPECT_TRUE(std::isfinite(first[0].history[e].train_loss));
  }
  o.stop_after_epoch = 0;  // ... and a restart of both ranks resumes after it
  o.resume = true;
  const auto second = train_two_ranks(o, 20);
  EXPECT_EQ(second[0].epochs_run, 3);
  EXPECT_EQ(second[1].epochs_run, 3);
  ASSERT_EQ(second[0].history.size(), 3u);
  EXPECT_EQ(second[0].history[1].val_mae, first[0].history[1].val_mae) << "epochs 1-2 come from the checkpoint";
  EXPECT_EQ(second[0].history[2].val_mae, second[1].history[2].val_mae);
  EXPECT_EQ(second[0].model_path, dir / "model.json");
  EXPECT_TRUE(fs::exists(dir / "model.json"));
  EXPECT_TRUE(second[1].model_path.empty()) << "only rank 0 writes the final model";
}
