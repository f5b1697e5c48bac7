// Data-parallel training on c10d/Gloo (model/distributed.h). The multi-rank tests start
// real processes (tests/model/distributed_worker.cpp) on localhost, on a free port.
#include "model/distributed.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/errors.h"
#include "tests/model/distributed_recipe.h"
#include "tests/free_port.h"
#include "tests/test_data.h"

using brainage::testing::free_port;

namespace {

using brainage::model::DistributedContext;
using brainage::model::DistributedOptions;
using brainage::model::shard_indices;
using Clock = std::chrono::steady_clock;


struct Rank {
  pid_t pid = -1;
  std::filesystem::path out, log;
  int status = 0;  // from waitpid
  bool finished = false;
  double seconds = 0;
};

/// Starts distributed_worker for every rank, stderr to <dir>/rank<r>.log; waits at most
/// `deadline_s` for all (then SIGKILLs the rest: a hang fails the test, not CI), or, with
/// `only_rank0`, until rank 0 has finished.
std::vector<Rank> run_ranks(int world, int timeout_s, const std::string& optimizer,
                            const std::filesystem::path& dir, double deadline_s,
                            const std::vector<std::string>& failure = {}, bool only_rank0 = false) {
  const std::string port = std::to_string(free_port());
  std::vector<Rank> ranks(world);
  const auto start = Clock::now();
  for (int r = 0; r < world; ++r) {
    ranks[r].out = dir / ("rank" + std::to_string(r) + ".pt");
    ranks[r].log = dir / ("rank" + std::to_string(r) + ".log");
    std::vector<std::string> args = {BRAINAGE_DISTRIBUTED_WORKER, std::to_string(r), std::to_string(world), port,
                                     std::to_string(timeout_s), optimizer, ranks[r].out.string()};
    args.insert(args.end(), failure.begin(), failure.end());
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int fd = ::open(ranks[r].log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, STDERR_FILENO);
      ::dup2(fd, STDOUT_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ranks[r].pid = pid;
  }
  int left = world;
  while (left > 0) {
    for (auto& rank : ranks) {
      if (rank.finished) continue;
      if (::waitpid(rank.pid, &rank.status, WNOHANG) == rank.pid) {
        rank.finished = true;
        rank.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        --left;
      }
    }
    if (only_rank0 && ranks[0].finished) break;
    if (std::chrono::duration<double>(Clock::now() - start).count() > deadline_s) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& rank : ranks) {
    if (rank.finished) continue;
    ::kill(rank.pid, SIGKILL);
    ::waitpid(rank.pid, &rank.status, 0);
  }
  return ranks;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

torch::Tensor load_params(const std::filesystem::path& path) {
  torch::Tensor t;
  torch::load(t, path.string());
  return t;
}

torch::Tensor single_process_reference(const std::string& optimizer) {
  torch::set_num_threads(1);
  DistributedContext single;  // world size 1: the plain training loop
  brainage::testing::RecipeOptions recipe;
  recipe.optimizer = optimizer;
  return brainage::testing::run_recipe(single, recipe, [](int64_t) {});
}

// ---- sharding and options ------------------------------------------------------------

TEST(ShardIndices, StridedShardsCoverEveryItemOnceWhenTheyDivide) {
  std::multiset<std::size_t> seen;
  for (int r = 0; r < 4; ++r) {
    const auto shard = shard_indices(12, r, 4);
    ASSERT_EQ(shard.size(), 3u);
    for (std::size_t k = 0; k < shard.size(); ++k) EXPECT_EQ(shard[k], r + 4 * k);
    seen.insert(shard.begin(), shard.end());
  }
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_EQ(std::set<std::size_t>(seen.begin(), seen.end()).size(), 12u);
}

TEST(ShardIndices, PaddingGivesEveryRankTheSameNumberOfSteps) {
  // 10 items over 4 ranks: ceil = 3 each, items 0 and 1 repeated (wrap-around), all covered.
  std::set<std::size_t> covered;
  for (int r = 0; r < 4; ++r) {
    const auto shard = shard_indices(10, r, 4);
    EXPECT_EQ(shard.size(), 3u) << "rank " << r;
    covered.insert(shard.begin(), shard.end());
  }
  EXPECT_EQ(covered.size(), 10u);
  EXPECT_EQ(shard_indices(10, 3, 4), (std::vector<std::size_t>{3, 7, 1}));
  // Without padding: disjoint, uneven, nothing repeated.
  EXPECT_EQ(shard_indices(10, 3, 4, false), (std::vector<std::size_t>{3, 7}));
  EXPECT_EQ(shard_indices(10, 1, 4, false), (std::vector<std::size_t>{1, 5, 9}));
}

TEST(ShardIndices, FollowsAGivenOrderAndRejectsBadRanks) {
  const std::vector<std::size_t> order = {5, 2, 9, 0, 7, 3};
  EXPECT_EQ(shard_indices(order, 1, 2), (std::vector<std::size_t>{2, 0, 3}));
  EXPECT_EQ(shard_indices(order, 0, 1), order);
  EXPECT_TRUE(shard_indices(0, 0, 2).empty());
  EXPECT_THROW(shard_indices(10, 2, 2), brainage::UsageError);
  EXPECT_THROW(shard_indices(10, 0, 0), brainage::UsageError);
}

TEST(DistributedOptions, ReadsTheLauncherEnvironment) {
  for (const char* name : {"SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"}) ::unsetenv(name);
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "3", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  ::setenv("MASTER_ADDR", "node017", 1);
  ::setenv("MASTER_PORT", "29611", 1);
  const auto options = DistributedOptions::from_environment();
  EXPECT_EQ(options.world_size, 4);
  EXPECT_EQ(options.rank, 3);
  EXPECT_EQ(options.local_rank, 1);
  EXPECT_EQ(options.master_addr, "node017");
  EXPECT_EQ(options.master_port, 29611);
  EXPECT_NO_THROW(options.validate());
  ::setenv("RANK", "three", 1);
  EXPECT_THROW(DistributedOptions::from_environment(), brainage::UsageError);
  for (const char* name : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(name);
  const auto defaults = DistributedOptions::from_environment();
  EXPECT_EQ(defaults.world_size, 1);
  EXPECT_EQ(defaults.master_port, 29500);
  // Under srun without torchrun's variables: Slurm's task numbering.
  ::setenv("SLURM_NTASKS", "8", 1);
  ::setenv("SLURM_PROCID", "5", 1);
  ::setenv("SLURM_LOCALID", "1", 1);
  const auto slurm = DistributedOptions::from_environment();
  EXPECT_EQ(slurm.world_size, 8);
  EXPECT_EQ(slurm.rank, 5);
  EXPECT_EQ(slurm.local_rank, 1);
  for (const char* name : {"SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"}) ::unsetenv(name);
}

TEST(DistributedOptions, RejectsInconsistentValues) {
  DistributedOptions options;
  options.world_size = 2;
  options.rank = 2;
  EXPECT_THROW(options.validate(), brainage::UsageError);
  options.rank = 1;
  options.master_port = 70000;
  EXPECT_THROW(options.validate(), brainage::UsageError);
  options.master_port = 29500;
  options.timeout = std::chrono::seconds(0);
  EXPECT_THROW(options.validate(), brainage::UsageError);
}

TEST(DistributedContext, WorldSizeOneIsAPlainTrainingLoop) {
  DistributedContext single;
  EXPECT_FALSE(single.enabled());
  EXPECT_TRUE(single.is_main());
  EXPECT_EQ(single.backend(), "none");
  torch::nn::Linear layer(3, 2);
  layer->forward(torch::ones({4, 3})).sum().backward();
  const auto before = layer->weight.grad().clone();
  single.all_reduce_gradients(*layer);
  EXPECT_TRUE(torch::equal(before, layer->weight.grad()));
  EXPECT_DOUBLE_EQ(single.all_reduce_mean(2.5), 2.5);
}

// ---- two ranks in one process (threads): the collectives themselves -------------------

/// Runs `body(dist)` for ranks 0 and 1 of one group, each in its own thread.
template <typename Body>
void with_two_threads(Body body, std::chrono::seconds timeout = std::chrono::seconds(20)) {
  const int port = free_port();
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      try {
        DistributedOptions options;
        options.world_size = 2;
        options.rank = r;
        options.master_port = port;
        options.timeout = timeout;
        options.bucket_mib = 1;  // several buckets for the model below
        DistributedContext dist(options);
        body(dist);
      } catch (const std::exception& error) {
        errors[r] = error.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

/// Gradients a rank would compute: distinct per rank, some parameters without one.
struct Net : torch::nn::Module {
  torch::nn::Linear big = register_module("big", torch::nn::Linear(700, 700));      // 1.9 MiB
  torch::nn::Linear small = register_module("small", torch::nn::Linear(700, 3));
  torch::nn::Linear only1 = register_module("only_rank1", torch::nn::Linear(700, 1));
  torch::nn::Linear unused = register_module("unused", torch::nn::Linear(700, 1));
  void make_gradients(int rank) {
    auto x = torch::randn({5, 700}, torch::make_generator<at::CPUGeneratorImpl>(rank + 1));
    auto h = torch::tanh(big(x));
    auto loss = small(h).pow(2).sum();
    if (rank == 1) loss = loss + only1(h).sum();
    loss.backward();
  }
};

TEST(DistributedCollectives, BucketedGradientAverageMatchesTheMeanOfBothRanks) {
  // Expected: the mean of the two ranks' gradients, computed here in one process;
  // a gradient only rank 1 has is averaged with zero; one nobody has stays undefined.
  std::vector<std::vector<torch::Tensor>> local(2);
  for (int r = 0; r < 2; ++r) {
    torch::manual_seed(5);
    Net net;
    net.make_gradients(r);
    for (const auto& p : net.parameters())
      local[r].push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  }
  std::vector<std::vector<torch::Tensor>> reduced(2);
  std::vector<std::shared_ptr<Net>> nets;  // built here: the global RNG is not thread-safe
  for (int r = 0; r < 2; ++r) {
    torch::manual_seed(5);
    nets.push_back(std::make_shared<Net>());
  }
  with_two_threads([&](DistributedContext& dist) {
    Net& net = *nets[dist.rank()];
    net.make_gradients(dist.rank());
    dist.all_reduce_gradients(net);
    for (const auto& p : net.parameters()) reduced[dist.rank()].push_back(p.grad());
  });
  ASSERT_EQ(reduced[0].size(), local[0].size());
  for (std::size_t i = 0; i < local[0].size(); ++i) {
    const bool any = local[0][i].defined() || local[1][i].defined();
    for (int r = 0; r < 2; ++r) {
      ASSERT_EQ(reduced[r][i].defined(), any) << "parameter " << i << " rank " << r;
      if (!any) continue;
      auto sum = torch::zeros_like(reduced[r][i]);
      for (int q = 0; q < 2; ++q)
        if (local[q][i].defined()) sum += local[q][i];
      EXPECT_LE((reduced[r][i] - sum / 2).abs().max().item<double>(), 1e-6) << "parameter " << i;
    }
    if (any) EXPECT_TRUE(torch::equal(reduced[0][i], reduced[1][i])) << "parameter " << i;
  }
}

TEST(DistributedCollectives, BroadcastSumsAndConsistencyChecks) {
  std::vector<double> sums[2], means(2);
  std::vector<torch::Tensor> weights(2);
  std::string mismatch[2];
  std::vector<torch::nn::Linear> layers;
  for (int r = 0; r < 2; ++r) {
    torch::manual_seed(10 + r);  // different initialisations ...
    layers.emplace_back(4, 3);
  }
  with_two_threads([&](DistributedContext& dist) {
    auto& layer = layers[dist.rank()];
    dist.broadcast_parameters(*layer);  // ... until rank 0's are broadcast
    weights[dist.rank()] = layer->weight.detach().clone();
    sums[dist.rank()] = dist.all_reduce_sum({1.0 + dist.rank(), 10.0});
    means[dist.rank()] = dist.all_reduce_mean(dist.rank() == 0 ? 2.0 : 4.0);
    dist.check_same_on_all_ranks("manifest size", 42);
    try {
      dist.check_same_on_all_ranks("resume epoch", 3 + dist.rank());
    } catch (const brainage::ModelError& error) {
      mismatch[dist.rank()] = error.what();
    }
    dist.barrier();
  });
  EXPECT_TRUE(torch::equal(weights[0], weights[1]));
  torch::manual_seed(10);
  torch::nn::Linear rank0_init(4, 3);
  EXPECT_TRUE(torch::equal(weights[1], rank0_init->weight.detach()));
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(sums[r], (std::vector<double>{3.0, 20.0}));
    EXPECT_DOUBLE_EQ(means[r], 3.0);
    EXPECT_NE(mismatch[r].find("ranks disagree on resume epoch"), std::string::npos) << mismatch[r];
    EXPECT_NE(mismatch[r].find("[3, 4]"), std::string::npos) << mismatch[r];
  }
}

// ---- two ranks on localhost over Gloo ------------------------------------------------

// Tolerance: float32 gradients summed in a different order (two half-batch means averaged
// vs one mean) differ by ~1e-7 relative; after 12 steps the weights agree to 1e-5 max abs.
constexpr double kTolerance = 1e-5;

void expect_two_ranks_match_single_process(const std::string& optimizer) {
  const auto dir = brainage::testing::scratch_dir("distributed-" + optimizer);
  const auto ranks = run_ranks(2, 30, optimizer, dir, 60.0);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(ranks[r].finished) << "rank " << r << " hung; log:\n" << read_text(ranks[r].log);
    ASSERT_TRUE(WIFEXITED(ranks[r].status) && WEXITSTATUS(ranks[r].status) == 0)
        << "rank " << r << " failed; log:\n" << read_text(ranks[r].log);
  }
  const auto rank0 = load_params(ranks[0].out);
  const auto rank1 = load_params(ranks[1].out);
  const auto reference = single_process_reference(optimizer);
  ASSERT_EQ(rank0.sizes(), reference.sizes());
  ASSERT_FALSE(rank0.isnan().any().item<bool>());
  // The replicas never drift apart: identical averaged gradients, identical updates.
  EXPECT_TRUE(torch::equal(rank0, rank1)) << "max |rank0 - rank1| = " << (rank0 - rank1).abs().max().item<double>();
  const double error = (rank0 - reference).abs().max().item<double>();
  EXPECT_LE(error, kTolerance) << optimizer << ": 2 ranks x batch 4 vs 1 process x batch 8";
  // ... and training did move the weights (the comparison is not between two inits).
  torch::manual_seed(100);
  brainage::testing::ToyMoe init;
  std::vector<torch::Tensor> flat;
  for (const auto& p : init->parameters()) flat.push_back(p.detach().reshape({-1}));
  EXPECT_GT((torch::cat(flat) - reference).abs().max().item<double>(), 1e-2);
}

TEST(DistributedGloo, TwoRanksSgdEqualSingleProcessOnTheGlobalBatch) {
  expect_two_ranks_match_single_process("sgd");
}

TEST(DistributedGloo, TwoRanksAdamWEqualSingleProcessOnTheGlobalBatch) {
  expect_two_ranks_match_single_process("adamw");
}

void expect_survivor_fails_clearly(const std::string& mode) {
  constexpr int kTimeout = 5;
  const auto dir = brainage::testing::scratch_dir("distributed-fail-" + mode);
  const auto ranks = run_ranks(2, kTimeout, "sgd", dir, 6.0 * kTimeout, {"1", mode, "3"}, true);
  const std::string log = read_text(ranks[0].log);
  ASSERT_TRUE(ranks[0].finished) << "rank 0 still blocked " << 6 * kTimeout << " s after rank 1 " << mode
                                 << "; log:\n" << log;
  EXPECT_LE(ranks[0].seconds, 4.0 * kTimeout) << "start-up + timeout, with slack for a loaded machine";
  ASSERT_TRUE(WIFEXITED(ranks[0].status)) << log;
  EXPECT_EQ(WEXITSTATUS(ranks[0].status), static_cast<int>(brainage::ExitCode::kModel)) << log;
  EXPECT_NE(log.find("ModelError: tcp://127.0.0.1:"), std::string::npos) << log;
  EXPECT_NE(log.find("rank 0 of 2: all-reduce of gradients"),
            std::string::npos) << log;
  EXPECT_NE(log.find("failed: a peer rank died or stopped responding (timeout 5 s)"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(ranks[0].out)) << "rank 0 must not report a finished training";
}

TEST(DistributedGloo, KilledRankMakesTheOtherFailWithAClearMessage) {
  expect_survivor_fails_clearly("kill");
}

TEST(DistributedGloo, HungRankMakesTheOtherFailAfterTheTimeout) {
  expect_survivor_fails_clearly("hang");
}

TEST(DistributedGloo, RendezvousWithoutPeersTimesOut) {
  DistributedOptions options;
  options.world_size = 2;
  options.rank = 0;
  options.master_port = free_port();
  options.timeout = std::chrono::seconds(2);
  const auto start = Clock::now();
  try {
    DistributedContext lonely(options);
    FAIL() << "joined a group of 2 alone";
  } catch (const brainage::ModelError& error) {
    EXPECT_NE(std::string(error.what()).find("rendezvous failed"), std::string::npos) << error.what();
  }
  EXPECT_LE(std::chrono::duration<double>(Clock::now() - start).count(), 10.0);
}

}  // namespace
