#pragma once
// The small training run both sides of the distributed tests execute: the test process
// runs it with world size 1 on the global batch, the ranks spawned from
// distributed_worker run it with their shards of the same data. A toy mixture of experts
// (a shared trunk and three one-layer experts chosen by a hard rule on the input) so that
// in some steps an expert gets gradients on one rank only, or on none (the third expert
// is never chosen) — the cases ERMoE's sparse routing produces.
#include <torch/torch.h>

#include <algorithm>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "model/distributed.h"

namespace brainage::testing {

struct ToyMoeImpl : torch::nn::Module {
  ToyMoeImpl()
      : trunk(register_module("trunk", torch::nn::Linear(8, 16))),
        expert_a(register_module("expert_a", torch::nn::Linear(16, 1))),
        expert_b(register_module("expert_b", torch::nn::Linear(16, 1))),
        expert_unused(register_module("expert_unused", torch::nn::Linear(16, 1))) {}

  /// x [B, 8] -> [B]; rows with x[:,0] > 1 go to expert_a, the others to expert_b.
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = torch::relu(trunk(x));
    auto out = torch::zeros({x.size(0)}, x.options());
    const auto to_a = x.select(1, 0) > 1.0;
    const auto rows_a = torch::nonzero(to_a).reshape({-1});
    const auto rows_b = torch::nonzero(~to_a).reshape({-1});
    if (rows_a.numel() > 0) out = out.index_add(0, rows_a, expert_a(h.index_select(0, rows_a)).reshape({-1}));
    if (rows_b.numel() > 0) out = out.index_add(0, rows_b, expert_b(h.index_select(0, rows_b)).reshape({-1}));
    return out;
  }

  torch::nn::Linear trunk, expert_a, expert_b, expert_unused;
};
TORCH_MODULE(ToyMoe);

struct RecipeOptions {
  int64_t samples = 48;          // global data set size
  int64_t global_batch = 8;      // summed over ranks
  int64_t epochs = 2;            // 48 / 8 = 6 steps per epoch -> 12 steps
  std::string optimizer = "sgd"; // "sgd" (momentum 0.9, lr 0.05) or "adamw" (lr 0.01, wd 0.01)
  int fail_rank = -1;            // rank that fails on purpose (-1: none)
  int64_t fail_step = 3;         // ... before this step's gradient all-reduce
  std::string fail_mode;         // "kill" (SIGKILL itself) or "hang" (sleep without answering)
};

/// Data set fixed by a seed: x ~ N(0,1)^8, y = 0.5 * sum(x) + 0.1 * noise.
inline std::pair<torch::Tensor, torch::Tensor> recipe_data(int64_t n) {
  auto generator = torch::make_generator<at::CPUGeneratorImpl>(7);
  auto x = torch::randn({n, 8}, generator);
  auto y = 0.5 * x.sum(1) + 0.1 * torch::randn({n}, generator);
  return {x, y};
}

/// The epoch's order of the global data set: the same on every rank (seeded by epoch).
inline std::vector<std::size_t> recipe_order(int64_t n, int64_t epoch) {
  std::vector<std::size_t> order(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937 rng(static_cast<unsigned>(1000 + epoch));
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

/// Trains ToyMoe with `dist` (world size 1 = plain single-process training) and returns
/// the final parameters, flattened in registration order. Each rank starts from a
/// different random init (seed 100 + rank) so only the broadcast makes them agree.
/// `on_step(step)` runs before each all-reduce (the failure injection hook).
template <typename OnStep>
torch::Tensor run_recipe(model::DistributedContext& dist, const RecipeOptions& options, OnStep on_step) {
  torch::manual_seed(100 + dist.rank());
  ToyMoe model;
  dist.broadcast_parameters(*model);
  const auto [x, y] = recipe_data(options.samples);
  dist.check_same_on_all_ranks("data set size", options.samples);

  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (options.optimizer == "adamw") {
    optimizer = std::make_unique<torch::optim::AdamW>(model->parameters(),
                                                      torch::optim::AdamWOptions(0.01).weight_decay(0.01));
  } else {
    optimizer = std::make_unique<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  }

  const int64_t local_batch = options.global_batch / dist.world_size();
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    const auto shard = model::shard_indices(recipe_order(options.samples, epoch), dist.rank(), dist.world_size());
    for (std::size_t start = 0; start + local_batch <= shard.size(); start += local_batch, ++step) {
      std::vector<int64_t> rows(shard.begin() + start, shard.begin() + start + local_batch);
      const auto index = torch::tensor(rows, torch::kInt64);
      for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();  // set_to_none
      auto loss = torch::mse_loss(model->forward(x.index_select(0, index)), y.index_select(0, index));
      loss.backward();
      on_step(step);
      dist.all_reduce_gradients(*model);
      optimizer->step();
      (void)dist.all_reduce_mean(loss.item<double>());
    }
  }
  std::vector<torch::Tensor> flat;
  for (const auto& p : model->parameters()) flat.push_back(p.detach().reshape({-1}));
  return torch::cat(flat);
}

}  // namespace brainage::testing
