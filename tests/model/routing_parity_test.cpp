// The CPU routing back-end (route_cpu) against the plain C++ double-precision reference
// that the CUDA kernels are judged by (routing_reference.h), at the CUDA issue's sizes.
// Together with routing_kernels_cuda_test.cpp (kernels vs the same reference) this closes
// the chain CUDA ≈ reference ≈ CPU, and it runs on every machine.
// Tolerances: scores and weights 1e-5; expert choices identical except near ties
// (reference scores within 1e-5); counts/offsets/permutation exact when no tie flipped;
// score gradients 1e-4 * max(1, |ref|).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "model/routing.h"
#include "tests/model/routing_reference.h"

namespace brainage::model {
namespace {

struct ParityCase {
  int64_t T, d, E, r, k;
  double top_d;
  bool duplicate_last_expert;
  bool zero_token = false;  // token 0 all zeros: scores 0, equal weights (as on CUDA)
};

torch::Tensor as_tensor(const std::vector<float>& v, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).clone();
}

template <typename T>
std::vector<T> to_vector(const torch::Tensor& t) {
  const auto c = t.detach().contiguous().cpu();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}

class RoutingCpuParity : public testing::TestWithParam<ParityCase> {};

TEST_P(RoutingCpuParity, RouteCpuMatchesThePlainReference) {
  const ParityCase c = GetParam();
  auto problem = test::make_problem(c.T, c.d, c.E, c.r, c.k, c.top_d, 4321u + static_cast<uint32_t>(c.T),
                                    c.duplicate_last_expert);
  if (c.zero_token) std::fill(problem.tokens.begin(), problem.tokens.begin() + c.d, 0.f);
  const auto ref = test::reference_route(problem);
  auto tokens = as_tensor(problem.tokens, {c.T, c.d}).requires_grad_(true);
  auto bases = as_tensor(problem.bases, {c.E, c.d, c.r}).requires_grad_(true);
  const auto got = route_cpu(tokens, bases, RoutingOptions{c.k, c.top_d});

  const auto scores = to_vector<float>(got.scores);
  double worst = 0;
  for (size_t i = 0; i < scores.size(); ++i) worst = std::max(worst, std::abs(double(scores[i]) - ref.scores[i]));
  EXPECT_LE(worst, 1e-5) << "max score error";

  const auto ids = to_vector<int64_t>(got.expert_ids);
  bool flipped = false;
  for (int64_t t = 0; t < c.T; ++t)
    for (int64_t j = 0; j < c.k; ++j) {
      const int64_t g = ids[t * c.k + j], w = ref.expert_ids[t * c.k + j];
      if (g == w) continue;
      flipped = true;
      EXPECT_LE(std::abs(ref.scores[t * c.E + g] - ref.scores[t * c.E + w]), 1e-5)
          << "token " << t << " slot " << j << ": chose " << g << ", reference " << w;
    }
  if (c.duplicate_last_expert)  // where the two twins' scores are bitwise equal, expert 0 must come first
    for (int64_t t = 0; t < c.T; ++t) {
      if (scores[t * c.E] != scores[t * c.E + c.E - 1]) continue;
      const auto row = ids.begin() + t * c.k;
      const auto twin = std::find(row, row + c.k, c.E - 1);
      if (twin != row + c.k) EXPECT_NE(std::find(row, twin, 0), twin) << "token " << t << ": tie not to the lower index";
    }

  std::vector<double> want_weights(static_cast<size_t>(c.T * c.k));
  for (int64_t t = 0; t < c.T; ++t)
    test::reference_weights(&ref.scores[t * c.E], &ids[t * c.k], c.k, c.top_d, &want_weights[t * c.k]);
  const auto weights = to_vector<float>(got.weights);
  worst = 0;
  for (size_t i = 0; i < weights.size(); ++i) worst = std::max(worst, std::abs(double(weights[i]) - want_weights[i]));
  EXPECT_LE(worst, 1e-5) << "max weight error";

  std::vector<int64_t> counts, offsets, permutation;
  test::reference_counting_sort(ids, c.E, counts, offsets, permutation);
  EXPECT_EQ(to_vector<int64_t>(got.counts), counts);
  EXPECT_EQ(to_vector<int64_t>(got.offsets), offsets);
  EXPECT_EQ(to_vector<int64_t>(got.permutation), permutation);
  if (!flipped) EXPECT_EQ(permutation, ref.permutation);

  // Score gradients w.r.t. tokens and bases.
  torch::manual_seed(11);
  const auto g = torch::rand({c.T, c.E}) * 2 - 1;
  (got.scores * g).sum().backward();
  std::vector<double> want_tokens, want_bases;
  test::reference_scores_backward(problem, to_vector<float>(g), want_tokens, want_bases);
  auto mixed = [](const std::vector<float>& got_v, const std::vector<double>& want) {
    double e = 0;
    for (size_t i = 0; i < want.size(); ++i)
      e = std::max(e, std::abs(double(got_v[i]) - want[i]) / std::max(1.0, std::abs(want[i])));
    return e;
  };
  EXPECT_LE(mixed(to_vector<float>(tokens.grad()), want_tokens), 1e-4) << "d scores / d tokens";
  EXPECT_LE(mixed(to_vector<float>(bases.grad()), want_bases), 1e-4) << "d scores / d bases";
}

std::string describe(const ParityCase& c) {
  return "T" + std::to_string(c.T) + "_d" + std::to_string(c.d) + "_E" + std::to_string(c.E) + "_r" +
         std::to_string(c.r) + "_k" + std::to_string(c.k) + (c.top_d > 0 ? "_topD" : "") +
         (c.duplicate_last_expert ? "_ties" : "") + (c.zero_token ? "_zero" : "");
}

std::string parity_name(const testing::TestParamInfo<ParityCase>& info) { return describe(info.param); }

void PrintTo(const ParityCase& c, std::ostream* os) { *os << describe(c); }

INSTANTIATE_TEST_SUITE_P(CudaIssueSizes, RoutingCpuParity,
                         testing::Values(ParityCase{1, 96, 3, 5, 3, 0.0, false}, ParityCase{33, 96, 7, 5, 2, 0.0, false},
                                         ParityCase{33, 192, 7, 32, 3, 0.45, false},
                                         ParityCase{33, 256, 16, 64, 3, 0.0, false},
                                         ParityCase{2016, 192, 8, 32, 2, 0.0, false},
                                         ParityCase{2016, 96, 3, 5, 1, 0.0, true},
                                         ParityCase{33, 96, 7, 5, 2, 0.0, false, true}),
                         parity_name);

}  // namespace
}  // namespace brainage::model
