// brainage_routing_bench: the ERMoE routing back-ends against the same routing written as
// plain LibTorch ops, at 1 and 32 scans of 2016 tokens (d = 192, E = 8, r = 32, k = 2 by
// default). Links brainage_model only, so it builds on the GPU machine's model-only build.
//
//   brainage_routing_bench [--device cpu|cuda] [--scans 1,32] [--reps 50] [--threads 0]
//                          [--tokens-per-scan 2016] [--dim 192] [--experts 8] [--rank 32] [--top-k 2]
//
// One measured step = route + dispatch into expert order + weighted combine back (the
// experts themselves are the identity, so only routing is timed), forward, no autograd.
//   back-end:  route() + dispatch_tokens() + combine()   (CUDA: the fused kernels)
//   plain ops: matmul, norm, topk, sort, bincount, cumsum, index_select, index_add
// Reported: median microseconds over --reps after 3 warm-up steps, "achieved GB/s" =
// the minimum bytes a step must move (tokens and bases read; scores, ids, weights,
// permutation written; T*k rows gathered and combined) / median time, and the ratio.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/routing.h"
#include "model/runtime.h"
#if defined(BRAINAGE_CUDA_ROUTING)
#include "model/cuda/routing_cuda.h"
#endif

namespace {

using brainage::model::RoutingOptions;
using brainage::model::RoutingResult;

struct BenchOptions {
  std::string device = "cpu";       // cpu or cuda. Default = cpu.
  std::vector<int64_t> scans{1, 32};  // batch sizes in scans. Default = 1,32.
  int reps = 50;                    // measured steps per configuration. Default = 50.
  int threads = 0;                  // LibTorch CPU threads, 0 = all cores. Default = 0.
  int64_t tokens_per_scan = 2016;   // Default = 2016.
  int64_t dim = 192;                // Default = 192.
  int64_t experts = 8;              // Default = 8.
  int64_t rank = 32;                // Default = 32.
  int64_t top_k = 2;                // Default = 2.
};

BenchOptions parse(int argc, char** argv) {
  BenchOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << "usage: brainage_routing_bench [--device cpu|cuda] [--scans 1,32] [--reps 50] [--threads 0]\n"
                   "       [--tokens-per-scan 2016] [--dim 192] [--experts 8] [--rank 32] [--top-k 2]\n";
      std::exit(0);
    }
    if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--device") o.device = value;
    else if (arg == "--reps") o.reps = std::stoi(value);
    else if (arg == "--threads") o.threads = std::stoi(value);
    else if (arg == "--tokens-per-scan") o.tokens_per_scan = std::stoll(value);
    else if (arg == "--dim") o.dim = std::stoll(value);
    else if (arg == "--experts") o.experts = std::stoll(value);
    else if (arg == "--rank") o.rank = std::stoll(value);
    else if (arg == "--top-k") o.top_k = std::stoll(value);
    else if (arg == "--scans") {
      o.scans.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) o.scans.push_back(std::stoll(item));
    } else {
      throw std::invalid_argument("unknown option " + arg + " (--help lists them)");
    }
  }
  if (o.device != "cpu" && o.device != "cuda") throw std::invalid_argument("--device must be cpu or cuda");
  if (o.reps < 1) throw std::invalid_argument("--reps must be at least 1");
  return o;
}

/// The same routing as route() + dispatch + combine, written as plain LibTorch ops.
torch::Tensor plain_ops_step(const torch::Tensor& tokens, const torch::Tensor& bases, int64_t k) {
  const int64_t T = tokens.size(0), d = tokens.size(1), E = bases.size(0), r = bases.size(2);
  const auto proj = tokens.matmul(bases.permute({1, 0, 2}).reshape({d, E * r})).view({T, E, r});  // matmul
  const auto scores = proj.norm(2, {-1}) / tokens.norm(2, {-1}, /*keepdim=*/true);                // norm
  const auto top = scores.topk(k, 1);                                                              // topk
  const auto& top_scores = std::get<0>(top);
  const auto& ids = std::get<1>(top);
  const auto weights = top_scores / top_scores.sum(1, true);
  const auto flat_ids = ids.reshape({-1});
  const auto permutation = std::get<1>(flat_ids.sort(/*stable=*/true, 0, false));                // sort
  const auto counts = flat_ids.bincount({}, E);                                                  // bincount
  const auto offsets = torch::cat({torch::zeros({1}, counts.options()), counts.cumsum(0)});      // cumsum
  const auto token_of_row = torch::div(permutation, k, "floor");
  const auto rows = tokens.index_select(0, token_of_row);                                       // index_select
  const auto row_weights = weights.reshape({-1}).index_select(0, permutation).unsqueeze(1);
  auto out = torch::zeros_like(tokens).index_add_(0, token_of_row, rows * row_weights);         // index_add
  (void)offsets;
  return out;
}

torch::Tensor backend_step(const torch::Tensor& tokens, const torch::Tensor& bases, int64_t k) {
  const RoutingResult routing = brainage::model::route(tokens, bases, RoutingOptions{k, 0.0});
#if defined(BRAINAGE_CUDA_ROUTING)
  if (tokens.is_cuda()) {
    const auto rows = brainage::model::dispatch_tokens_cuda(tokens, routing);
    return brainage::model::combine_cuda(rows, routing);
  }
#endif
  const auto rows = brainage::model::dispatch_tokens(tokens, routing);
  return brainage::model::combine(rows, routing);
}

template <typename Step>
double median_microseconds(Step step, int reps, bool cuda) {
  for (int i = 0; i < 3; ++i) step();
  if (cuda) torch::cuda::synchronize();
  std::vector<double> us;
  us.reserve(static_cast<size_t>(reps));
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    step();
    if (cuda) torch::cuda::synchronize();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(us.begin(), us.begin() + reps / 2, us.end());
  return us[static_cast<size_t>(reps / 2)];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const BenchOptions o = parse(argc, argv);
    const bool cuda = o.device == "cuda";
    if (cuda && !torch::cuda::is_available()) {
      std::cerr << "brainage_routing_bench: --device cuda but no CUDA device (or LibTorch without CUDA)\n";
      return 3;
    }
#if !defined(BRAINAGE_CUDA_ROUTING)
    if (cuda) std::cerr << "warning: CUDA kernels not compiled in (LibTorch without CUDA at build time)\n";
#endif
    const int threads = brainage::model::configure_threads(o.threads);
    torch::NoGradGuard no_grad;
    torch::manual_seed(0);
    const auto device = cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    std::cout << "device " << o.device << ", LibTorch " << brainage::model::torch_version() << ", CPU threads "
              << threads << ", BLAS " << brainage::model::blas_description() << "\n"
              << "d=" << o.dim << " E=" << o.experts << " r=" << o.rank << " k=" << o.top_k
              << ", median of " << o.reps << " steps (route + dispatch + combine, forward)\n\n"
              << "| scans | tokens | back-end us | back-end GB/s | plain ops us | plain ops GB/s | plain/back-end |\n"
              << "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for (const int64_t scans : o.scans) {
      const int64_t T = scans * o.tokens_per_scan;
      const auto tokens = torch::randn({T, o.dim}).to(device);
      const auto bases =
          std::get<0>(torch::linalg_qr(torch::randn({o.experts, o.dim, o.rank}))).contiguous().to(device);
      // Same answer from both (top-1 expert agreement), so the comparison is fair.
      const auto a = backend_step(tokens, bases, o.top_k);
      const auto b = plain_ops_step(tokens, bases, o.top_k);
      const double diff = (a - b).abs().max().item<double>();
      if (diff > 1e-3) std::cerr << "warning: back-end and plain ops differ by " << diff << " (near ties?)\n";

      const double backend_us = median_microseconds([&] { backend_step(tokens, bases, o.top_k); }, o.reps, cuda);
      const double plain_us = median_microseconds([&] { plain_ops_step(tokens, bases, o.top_k); }, o.reps, cuda);
      const double slots = static_cast<double>(T * o.top_k);
      const double bytes = 4.0 * T * o.dim + 4.0 * o.experts * o.dim * o.rank  // read tokens, bases
                           + 4.0 * T * o.experts + slots * (8 + 4 + 8)            // scores, ids, weights, permutation
                           + 2 * 4.0 * slots * o.dim                              // gather: read + write rows
                           + 4.0 * slots * o.dim + 4.0 * T * o.dim;               // combine: read rows, write tokens
      char line[256];
      std::snprintf(line, sizeof line, "| %lld | %lld | %.0f | %.1f | %.0f | %.1f | %.2fx |\n",
                    static_cast<long long>(scans), static_cast<long long>(T), backend_us, bytes / backend_us / 1e3,
                    plain_us, bytes / plain_us / 1e3, plain_us / backend_us);
      std::cout << line << std::flush;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "brainage_routing_bench: " << e.what() << "\n";
    return 2;
  }
}
