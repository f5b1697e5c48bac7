// One rank of the distributed tests (tests/model/distributed_test.cpp starts several):
//   distributed_worker RANK WORLD PORT TIMEOUT_S OPTIMIZER OUT_FILE [FAIL_RANK FAIL_MODE FAIL_STEP]
// Runs tests/model/distributed_recipe.h with its shard and saves the final flattened
// parameters to OUT_FILE (torch::save). On a brainage error it prints "Kind: message" to
// stderr and exits with the error's exit code, as `brainage` does.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "common/errors.h"
#include "model/distributed.h"
#include "tests/model/distributed_recipe.h"

int main(int argc, char** argv) {
  if (argc != 7 && argc != 10) {
    std::cerr << "usage: distributed_worker RANK WORLD PORT TIMEOUT_S OPTIMIZER OUT_FILE [FAIL_RANK FAIL_MODE FAIL_STEP]\n";
    return 2;
  }
  try {
    torch::set_num_threads(1);
    brainage::model::DistributedOptions options;
    options.rank = std::atoi(argv[1]);
    options.world_size = std::atoi(argv[2]);
    options.master_port = std::atoi(argv[3]);
    options.timeout = std::chrono::seconds(std::atoi(argv[4]));
    brainage::testing::RecipeOptions recipe;
    recipe.optimizer = argv[5];
    if (argc == 10) {
      recipe.fail_rank = std::atoi(argv[7]);
      recipe.fail_mode = argv[8];
      recipe.fail_step = std::atoll(argv[9]);
    }
    brainage::model::DistributedContext dist(options);
    const auto params = brainage::testing::run_recipe(dist, recipe, [&](int64_t step) {
      if (dist.rank() != recipe.fail_rank || step != recipe.fail_step) return;
      if (recipe.fail_mode == "kill") std::raise(SIGKILL);
      if (recipe.fail_mode == "hang") std::this_thread::sleep_for(std::chrono::minutes(10));
    });
    torch::save(params, argv[6]);
    return 0;
  } catch (const brainage::Error& error) {
    std::cerr << error.kind() << ": " << error.what() << "\n";
    return static_cast<int>(error.code());
  } catch (const std::exception& error) {
    std::cerr << "unexpected error: " << error.what() << "\n";
    return 1;
  }
}
