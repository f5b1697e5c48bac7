// Data-parallel training throughput of the real ERMoE-ba model (model/brain_age_model.h,
// default ModelOptions: 80x96x80 grid, patch 16, d 128, depth 4, 8 experts, top-2) on
// c10d/Gloo (model/distributed.h): AdamW steps on random volumes with a fixed GLOBAL
// batch, split over the ranks. Start one process per rank, configured like `brainage
// train` (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT or the flags below):
//
//   for r in 0 1; do WORLD_SIZE=2 RANK=$r MASTER_PORT=29533 \
//     brainage_distributed_bench --global-batch 4 --steps 10 --threads 1 & done; wait
//
// Rank 0 prints: world size, threads per rank, median step time, steps/s, scans/s and the
// share of the step spent in the gradient all-reduce. With --separate-wait a barrier before
// the all-reduce splits that into waiting for the slowest rank and the transfer itself.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "common/errors.h"
#include "model/brain_age_model.h"
#include "model/distributed.h"
#include "model/runtime.h"

namespace {

using Clock = std::chrono::steady_clock;

/// CPU seconds (user + system) this process has used so far.
double cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec * 1e-6 + usage.ru_stime.tv_sec + usage.ru_stime.tv_usec * 1e-6;
}

double best(const std::vector<double>& v) { return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end()); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

int run(int argc, char** argv) {
  auto options = brainage::model::DistributedOptions::from_environment();
  int64_t global_batch = 4, steps = 10, warmup = 2;
  int threads = 1;
  bool separate_wait = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw brainage::UsageError(arg + ": needs a value");
      return argv[++i];
    };
    if (arg == "--global-batch") global_batch = std::stoll(next());
    else if (arg == "--steps") steps = std::stoll(next());
    else if (arg == "--warmup") warmup = std::stoll(next());
    else if (arg == "--threads") threads = std::stoi(next());
    else if (arg == "--separate-wait") separate_wait = true;
    else if (arg == "--world-size") options.world_size = std::stoi(next());
    else if (arg == "--rank") options.rank = std::stoi(next());
    else if (arg == "--master-addr") options.master_addr = next();
    else if (arg == "--master-port") options.master_port = std::stoi(next());
    else if (arg == "--bucket-mib") options.bucket_mib = std::stoul(next());
    else throw brainage::UsageError(arg + ": unknown option (see the comment at the top of bench/distributed_bench.cpp)");
  }
  if (global_batch % options.world_size != 0)
    throw brainage::UsageError("--global-batch " + std::to_string(global_batch) + ": must be a multiple of the world size " +
                               std::to_string(options.world_size));
  brainage::model::configure_threads(threads);
  brainage::model::DistributedContext dist(options);
  const int64_t local_batch = global_batch / dist.world_size();

  torch::manual_seed(1234 + dist.rank());
  brainage::model::ModelOptions model_options;
  brainage::model::BrainAgeModel model(model_options);
  dist.broadcast_parameters(*model);
  model->train();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-4).weight_decay(0.05));
  const auto& g = model_options.grid;
  const auto volumes = torch::randn({local_batch, 1, g[0], g[1], g[2]});
  const auto ages = 20 + 60 * torch::rand({local_batch});

  std::vector<double> step_s, wait_s, reduce_s;
  double cpu_start = 0;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    if (s == warmup) cpu_start = cpu_seconds();
    const auto t0 = Clock::now();
    optimizer.zero_grad();
    const auto out = model->forward(volumes);
    const auto loss = (out.age - ages).abs().mean() / model_options.age_std + out.aux_loss;
    loss.backward();
    const auto t1 = Clock::now();
    if (separate_wait) dist.barrier();  // time spent waiting for the slowest rank
    const auto t1b = Clock::now();
    dist.all_reduce_gradients(*model);
    const auto t2 = Clock::now();
    optimizer.step();
    model->retract_bases();
    (void)dist.all_reduce_mean(loss.item<double>());
    const auto t3 = Clock::now();
    if (s >= warmup) {
      step_s.push_back(std::chrono::duration<double>(t3 - t0).count());
      wait_s.push_back(std::chrono::duration<double>(t1b - t1).count());
      reduce_s.push_back(std::chrono::duration<double>(t2 - t1b).count());
    }
  }
  // The slowest rank sets the pace: report rank 0's view of the median over steps.
  const double step = median(step_s), reduce = median(reduce_s), wait = median(wait_s);
  // CPU core-seconds per scan of the global batch, summed over all ranks: the work done,
  // independent of how long the process waited for a core on a loaded machine.
  const double cpu_all_ranks = dist.all_reduce_sum({cpu_seconds() - cpu_start})[0];
  const double cpu_per_scan = cpu_all_ranks / static_cast<double>(steps * global_batch);
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  if (dist.is_main()) {
    std::cout << std::fixed << std::setprecision(3) << "world_size " << dist.world_size() << "  threads/rank "
              << threads << "  global_batch " << global_batch << "  params " << parameters << "  median step "
              << step << " s (best " << best(step_s) << " s)  steps/s " << 1.0 / step << "  scans/s "
              << global_batch / step << "  CPU " << cpu_per_scan << " core-s/scan (all ranks)"
              << "  all-reduce " << std::setprecision(1) << 100.0 * reduce / step << "% (" << std::setprecision(3)
              << reduce * 1000 << " ms, best " << best(reduce_s) * 1000 << " ms)";
    if (separate_wait) std::cout << "  waiting for the slowest rank " << wait * 1000 << " ms";
    std::cout << std::endl;
  }
  dist.barrier();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const brainage::Error& error) {
    std::cerr << error.kind() << ": " << error.what() << "\n";
    return static_cast<int>(error.code());
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
}
