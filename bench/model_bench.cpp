// Model benchmark (docs/BENCHMARKS.md, "Model"): the default ERMoE-ba configuration (or a
// baseline) on the 80x96x80 model grid, CPU or CUDA:
//   forward latency of one scan (median of --repeats after 2 warm-ups), peak RSS, and
//   training throughput (scans/s) of full AdamW steps (augmentation + forward + backward
//   + QR retraction) at --batch.
//
//   brainage_model_bench [--threads 2] [--kind ermoe|softmax_moe|dense] [--batch 8]
//                        [--repeats 20] [--train-steps 10] [--device cpu|cuda]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "model/augmentation.h"
#include "model/brain_age_model.h"
#include "model/runtime.h"

namespace bm = brainage::model;
using Clock = std::chrono::steady_clock;

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}
/// User + system CPU seconds of this process so far (load-independent work measure).
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + 1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}
}  // namespace

int main(int argc, char** argv) {
  int threads = 2, repeats = 20, train_steps = 10;
  int64_t batch = 8;
  std::string kind = "ermoe", device_name = "cpu";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i], value = argv[i + 1];
    if (arg == "--threads") threads = std::stoi(value);
    else if (arg == "--kind") kind = value;
    else if (arg == "--batch") batch = std::stoll(value);
    else if (arg == "--repeats") repeats = std::stoi(value);
    else if (arg == "--train-steps") train_steps = std::stoi(value);
    else if (arg == "--device") device_name = value;
    else {
      std::cerr << "unknown option " << arg << "\n";
      return 2;
    }
  }
  const int in_effect = bm::configure_threads(threads);
  const torch::Device device(device_name == "cuda" ? torch::kCUDA : torch::kCPU);
  bm::ModelOptions options;
  options.ffn = bm::ffn_kind_from_string(kind);
  torch::manual_seed(0);
  bm::BrainAgeModel model(options);
  model->to(device);
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  std::cout << "model " << kind << ": grid 80x96x80, patch " << options.patch_size << " (" << options.num_tokens()
            << " tokens), d " << options.dim << ", depth " << options.depth << ", experts " << options.num_experts
            << ", k " << options.top_k << ", r " << options.expert_rank << "; " << parameters << " parameters\n"
            << "device " << device_name << ", threads " << in_effect << ", BLAS " << bm::blas_description() << "\n";

  // Forward latency on one scan (eval, no grad, routing records on as in `predict`).
  model->eval();
  const auto scan = torch::rand({1, 1, 80, 96, 80}).to(device);
  std::vector<double> times;
  const double forward_cpu_start = cpu_seconds();
  {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < repeats + 2; ++i) {
      const auto t0 = Clock::now();
      const auto out = model->forward(scan, true);
      (void)out.age.cpu();
      if (i >= 2) times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  std::cout << std::fixed << std::setprecision(4) << "forward 1 scan: median " << median(times) << " s, min "
            << *std::min_element(times.begin(), times.end()) << " s over " << times.size()
            << " runs; CPU " << (cpu_seconds() - forward_cpu_start) / (repeats + 2) << " core-s per forward; peak RSS so far " << std::setprecision(0) << peak_rss_mib() << " MiB\n";

  // Training throughput.
  model->train();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-3));
  const auto data = torch::rand({batch, 1, 80, 96, 80});
  const auto ages = torch::rand({batch}).mul(60).add(20).to(device);
  std::mt19937_64 rng(1);
  bm::AugmentationOptions augmentation;
  std::vector<double> step_times, aug_times;
  double cpu_start = 0;
  for (int i = 0; i < train_steps + 1; ++i) {
    if (i == 1) cpu_start = cpu_seconds();
    const auto t0 = Clock::now();
    const auto x = bm::augment_batch(data, augmentation, rng).to(device);
    const auto t1 = Clock::now();
    const auto out = model->forward(x);
    const auto loss = (out.age - ages).abs().mean() / options.age_std + out.aux_loss;
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
    optimizer.step();
    model->retract_bases();
    (void)loss.item<double>();
    if (i >= 1) {
      step_times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      aug_times.push_back(std::chrono::duration<double>(t1 - t0).count());
    }
  }
  const double step = median(step_times);
  const double fastest = *std::min_element(step_times.begin(), step_times.end());
  const double cpu_per_scan = (cpu_seconds() - cpu_start) / (train_steps * batch);
  std::cout << std::setprecision(3) << "train step (batch " << batch << "): median " << step << " s, min " << fastest
            << " s (augmentation " << median(aug_times) << " s) -> " << std::setprecision(1) << batch / step
            << " scans/s median, " << batch / fastest << " scans/s best; CPU time " << std::setprecision(3)
            << cpu_per_scan << " core-s per scan; peak RSS " << std::setprecision(0) << peak_rss_mib() << " MiB\n";
  return 0;
}
