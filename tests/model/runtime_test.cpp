#include "model/runtime.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

TEST(Runtime, UsesOpenBlasWithAllCores) {
  const int threads = brainage::model::configure_threads(0);
  EXPECT_GE(threads, 1);
  EXPECT_EQ(threads, static_cast<int>(std::thread::hardware_concurrency()));
  // Force LibTorch to load its BLAS before asking which one it is.
  auto a = torch::ones({64, 64});
  (void)torch::mm(a, a);
  const std::string blas = brainage::model::blas_description();
  EXPECT_NE(blas.find("OpenBLAS"), std::string::npos) << "LibTorch runs on: " << blas;
}

// Predictor::forward runs its models under this guard so that the age does not follow
// --threads; the user's thread count must be back in force afterwards.
TEST(Runtime, ThreadCountGuardSetsTheCountAndRestoresIt) {
  brainage::model::configure_threads(2);
  {
    const brainage::model::ThreadCountGuard guard(1);
    EXPECT_EQ(torch::get_num_threads(), 1);
  }
  EXPECT_EQ(torch::get_num_threads(), 2);
}
