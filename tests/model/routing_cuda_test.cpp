// route(), dispatch_tokens() and combine() on CUDA tensors against the CPU reference
// route_cpu() (model/routing.h), including autograd. Runs where LibTorch has CUDA and a
// device is present (the GPU machine); skips cleanly elsewhere.
// Tolerances: scores and weights 1e-5 absolute; expert choices identical except near ties
// (reference scores within 1e-5); counts/offsets/permutation exact when no tie flipped;
// combine 1e-5; gradients 1e-4 * max(1, |cpu|).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/routing.h"
#if defined(BRAINAGE_CUDA_ROUTING)
#include "model/cuda/routing_cuda.h"
#endif

namespace brainage::model {
namespace {

double max_mixed_error(const torch::Tensor& got, const torch::Tensor& want) {
  const auto g = got.detach().cpu().to(torch::kFloat64);
  const auto w = want.detach().cpu().to(torch::kFloat64);
  return ((g - w).abs() / w.abs().clamp_min(1.0)).max().item<double>();
}

double max_abs_error(const torch::Tensor& got, const torch::Tensor& want) {
  return (got.detach().cpu().to(torch::kFloat64) - want.detach().cpu().to(torch::kFloat64)).abs().max().item<double>();
}

torch::Tensor orthonormal_bases(int64_t experts, int64_t dim, int64_t rank) {
  return std::get<0>(torch::linalg_qr(torch::randn({experts, dim, rank}, torch::kFloat32)));  // [E, d, r]
}

class RoutingCUDA : public testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available())
      GTEST_SKIP() << "no CUDA device, or this LibTorch was built without CUDA (Debian's 1.13 is CPU-only)";
    torch::manual_seed(20261123);
  }
};

struct Size {
  int64_t T, d, E, r, k;
  double top_d;
};

TEST_F(RoutingCUDA, RouteOnTheGpuMatchesTheCpuReference) {
  for (const Size s : {Size{1, 96, 3, 5, 3, 0.0}, Size{33, 96, 7, 5, 2, 0.0}, Size{33, 192, 7, 32, 3, 0.45},
                       Size{33, 256, 16, 64, 3, 0.0}, Size{2016, 192, 8, 32, 2, 0.0},
                       Size{32 * 2016, 192, 8, 32, 2, 0.0}}) {
    SCOPED_TRACE("T=" + std::to_string(s.T) + " d=" + std::to_string(s.d) + " E=" + std::to_string(s.E) +
                 " r=" + std::to_string(s.r) + " k=" + std::to_string(s.k));
    const auto tokens = torch::randn({s.T, s.d});
    const auto bases = orthonormal_bases(s.E, s.d, s.r);
    const RoutingOptions options{s.k, s.top_d};
    const auto cpu = route_cpu(tokens, bases, options);
    const auto gpu = route(tokens.cuda(), bases.cuda(), options);
    ASSERT_TRUE(gpu.scores.is_cuda() && gpu.permutation.is_cuda());
    EXPECT_LE(max_abs_error(gpu.scores, cpu.scores), 1e-5);

    const auto gpu_ids = gpu.expert_ids.cpu();
    const auto differs = gpu_ids.ne(cpu.expert_ids);
    const int64_t flips = differs.sum().item<int64_t>();
    if (flips > 0) {  // only near ties may differ
      const auto s_gpu = cpu.scores.gather(1, gpu_ids);
      const auto s_cpu = cpu.scores.gather(1, cpu.expert_ids);
      EXPECT_LE((s_gpu - s_cpu).abs().max().item<double>(), 1e-5);
    } else {
      EXPECT_LE(max_abs_error(gpu.weights, cpu.weights), 1e-5);
      EXPECT_TRUE(torch::equal(gpu.counts.cpu(), cpu.counts));
      EXPECT_TRUE(torch::equal(gpu.offsets.cpu(), cpu.offsets));
      EXPECT_TRUE(torch::equal(gpu.permutation.cpu(), cpu.permutation));
    }
  }
}

TEST_F(RoutingCUDA, GradientsThroughScoresAndWeightsMatchTheCpuReference) {
  for (const Size s : {Size{33, 96, 7, 5, 2, 0.0}, Size{33, 192, 8, 32, 3, 0.45}, Size{2016, 192, 8, 32, 2, 0.0}}) {
    SCOPED_TRACE("T=" + std::to_string(s.T) + " k=" + std::to_string(s.k));
    const auto tokens = torch::randn({s.T, s.d});
    const auto bases = orthonormal_bases(s.E, s.d, s.r);
    const auto score_weights = torch::rand({s.T, s.E}) - 0.5;
    const auto gate_weights = torch::rand({s.T, s.k}) - 0.5;
    const RoutingOptions options{s.k, s.top_d};

    auto cpu_tokens = tokens.clone().requires_grad_(true);
    auto cpu_bases = bases.clone().requires_grad_(true);
    const auto cpu = route_cpu(cpu_tokens, cpu_bases, options);
    ((cpu.scores * score_weights).sum() + (cpu.weights * gate_weights).sum()).backward();

    auto gpu_tokens = tokens.cuda().requires_grad_(true);
    auto gpu_bases = bases.cuda().requires_grad_(true);
    const auto gpu = route(gpu_tokens, gpu_bases, options);
    ASSERT_TRUE(torch::equal(gpu.expert_ids.cpu(), cpu.expert_ids)) << "a near tie flipped: pick another seed";
    ((gpu.scores * score_weights.cuda()).sum() + (gpu.weights * gate_weights.cuda()).sum()).backward();

    EXPECT_LE(max_mixed_error(gpu_tokens.grad(), cpu_tokens.grad()), 1e-4);
    EXPECT_LE(max_mixed_error(gpu_bases.grad(), cpu_bases.grad()), 1e-4);
  }
}

TEST_F(RoutingCUDA, DispatchAndCombineOnTheGpuMatchTheCpu) {
  const int64_t T = 2016, d = 192, E = 8, r = 32, k = 2;
  const auto tokens = torch::randn({T, d});
  const auto bases = orthonormal_bases(E, d, r);
  const auto cpu = route_cpu(tokens, bases, RoutingOptions{k, 0.0});
  RoutingResult gpu = cpu;  // the same routing on the device, so only dispatch/combine differ
  gpu.weights = cpu.weights.detach().cuda().requires_grad_(true);
  gpu.expert_ids = cpu.expert_ids.cuda();
  gpu.counts = cpu.counts.cuda();
  gpu.offsets = cpu.offsets.cuda();
  gpu.permutation = cpu.permutation.cuda();
  RoutingResult cpu_leaf = cpu;
  cpu_leaf.weights = cpu.weights.detach().requires_grad_(true);

  const auto expert_outputs = torch::randn({T * k, d});
  const auto upstream = torch::randn({T, d});
  auto cpu_tokens = tokens.clone().requires_grad_(true);
  auto cpu_outputs = expert_outputs.clone().requires_grad_(true);
  const auto cpu_rows = dispatch_tokens(cpu_tokens, cpu_leaf);
  const auto cpu_out = combine(cpu_outputs, cpu_leaf);
  (cpu_rows.sum() + (cpu_out * upstream).sum()).backward();

  auto gpu_tokens = tokens.cuda().requires_grad_(true);
  auto gpu_outputs = expert_outputs.cuda().requires_grad_(true);
#if defined(BRAINAGE_CUDA_ROUTING)
  const auto gpu_rows = dispatch_tokens_cuda(gpu_tokens, gpu);
  const auto gpu_out = combine_cuda(gpu_outputs, gpu);
#else
  const auto gpu_rows = dispatch_tokens(gpu_tokens, gpu);
  const auto gpu_out = combine(gpu_outputs, gpu);
#endif
  (gpu_rows.sum() + (gpu_out * upstream.cuda()).sum()).backward();

  EXPECT_TRUE(torch::equal(gpu_rows.cpu(), cpu_rows.detach()));
  EXPECT_LE(max_abs_error(gpu_out, cpu_out), 1e-5);
  EXPECT_LE(max_mixed_error(gpu_tokens.grad(), cpu_tokens.grad()), 1e-4);
  EXPECT_LE(max_mixed_error(gpu_outputs.grad(), cpu_outputs.grad()), 1e-4);
  EXPECT_LE(max_mixed_error(gpu.weights.grad(), cpu_leaf.weights.grad()), 1e-4);
}

}  // namespace
}  // namespace brainage::model
