// CPU routing against a brute-force loop, plus dispatch/combine semantics.
#include "model/routing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace bm = brainage::model;

namespace {

torch::Tensor orthonormal_bases(int64_t experts, int64_t dim, int64_t rank, torch::Dtype dtype) {
  auto [q, r] = torch::linalg_qr(torch::randn({experts, dim, rank}, dtype), "reduced");
  return q;
}

struct BruteForce {
  std::vector<std::vector<double>> scores;
  std::vector<std::vector<int64_t>> ids;
  std::vector<std::vector<double>> weights;
};

BruteForce brute_force(const torch::Tensor& tokens, const torch::Tensor& bases, int64_t k, double top_d) {
  const auto x = tokens.to(torch::kFloat64);
  const auto u = bases.to(torch::kFloat64);
  const int64_t t_count = x.size(0), e_count = u.size(0), d = u.size(1), r = u.size(2);
  BruteForce bf;
  for (int64_t t = 0; t < t_count; ++t) {
    std::vector<double> s(e_count);
    double xn = 0;
    for (int64_t i = 0; i < d; ++i) xn += x[t][i].item<double>() * x[t][i].item<double>();
    for (int64_t e = 0; e < e_count; ++e) {
      double pn = 0;
      for (int64_t c = 0; c < r; ++c) {
        double dot = 0;
        for (int64_t i = 0; i < d; ++i) dot += u[e][i][c].item<double>() * x[t][i].item<double>();
        pn += dot * dot;
      }
      s[e] = std::sqrt(pn) / std::sqrt(xn);
    }
    std::vector<int64_t> chosen;
    std::vector<bool> used(e_count, false);
    for (int64_t j = 0; j < k; ++j) {
      int64_t best = -1;
      for (int64_t e = 0; e < e_count; ++e)
        if (!used[e] && (best < 0 || s[e] > s[best])) best = e;  // strict: lower index wins ties
      used[best] = true;
      chosen.push_back(best);
    }
    std::vector<double> w(k);
    double total = 0;
    for (int64_t j = 0; j < k; ++j) {
      w[j] = (j == 0 || s[chosen[j]] >= top_d) ? s[chosen[j]] : 0.0;
      total += w[j];
    }
    for (auto& v : w) v /= total;
    bf.scores.push_back(s);
    bf.ids.push_back(chosen);
    bf.weights.push_back(w);
  }
  return bf;
}

}  // namespace

class RoutingCpu : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { torch::manual_seed(1234); }
};

TEST_P(RoutingCpu, EqualsBruteForceLoop) {
  const int64_t k = GetParam();
  const int64_t T = 33, E = 7, d = 24, r = 5;
  const auto tokens = torch::randn({T, d});
  const auto bases = orthonormal_bases(E, d, r, torch::kFloat32);
  for (double top_d : {0.0, 0.45}) {
    const auto result = bm::route_cpu(tokens, bases, {k, top_d});
    const auto bf = brute_force(tokens, bases, k, top_d);
    ASSERT_EQ(result.scores.sizes(), (std::vector<int64_t>{T, E}));
    ASSERT_EQ(result.expert_ids.sizes(), (std::vector<int64_t>{T, k}));
    ASSERT_EQ(result.weights.sizes(), (std::vector<int64_t>{T, k}));
    ASSERT_EQ(result.counts.size(0), E);
    ASSERT_EQ(result.offsets.size(0), E + 1);
    ASSERT_EQ(result.permutation.size(0), T * k);
    std::vector<int64_t> counts(E, 0);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t e = 0; e < E; ++e)
        EXPECT_NEAR(result.scores[t][e].item<double>(), bf.scores[t][e], 1e-5) << "t=" << t << " e=" << e;
      for (int64_t j = 0; j < k; ++j) {
        EXPECT_EQ(result.expert_ids[t][j].item<int64_t>(), bf.ids[t][j]) << "t=" << t << " j=" << j;
        EXPECT_NEAR(result.weights[t][j].item<double>(), bf.weights[t][j], 1e-5);
        ++counts[bf.ids[t][j]];
      }
    }
    int64_t offset = 0;
    for (int64_t e = 0; e < E; ++e) {
      EXPECT_EQ(result.counts[e].item<int64_t>(), counts[e]);
      EXPECT_EQ(result.offsets[e].item<int64_t>(), offset);
      // The slots of expert e: ascending slot ids, each really routed to e.
      int64_t previous = -1;
      for (int64_t i = offset; i < offset + counts[e]; ++i) {
        const int64_t slot = result.permutation[i].item<int64_t>();
        EXPECT_GT(slot, previous);
        EXPECT_EQ(bf.ids[slot / k][slot % k], e);
        previous = slot;
      }
      offset += counts[e];
    }
    EXPECT_EQ(result.offsets[E].item<int64_t>(), T * k);
  }
}

INSTANTIATE_TEST_SUITE_P(TopK, RoutingCpu, ::testing::Values(1, 2, 3));

TEST(RoutingCpuTies, LowerExpertIndexWins) {
  // Equal scores everywhere: identical bases -> identical scores; experts 0..k-1 chosen in order.
  const auto base = std::get<0>(torch::linalg_qr(torch::randn({16, 4}), "reduced"));
  const auto bases = base.unsqueeze(0).repeat({5, 1, 1});
  const auto result = bm::route_cpu(torch::randn({9, 16}), bases, {3, 0.0});
  for (int64_t t = 0; t < 9; ++t)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(result.expert_ids[t][j].item<int64_t>(), j);
}

TEST(RoutingCpu, DispatchThenCombineIsWeightedSum) {
  torch::manual_seed(7);
  const auto tokens = torch::randn({33, 12});
  const auto bases = orthonormal_bases(7, 12, 5, torch::kFloat32);
  const auto routing = bm::route_cpu(tokens, bases, {2, 0.0});
  // Identity experts: combine(dispatch(x)) == x since the weights of a token sum to 1.
  const auto back = bm::combine(bm::dispatch_tokens(tokens, routing), routing);
  EXPECT_LT((back - tokens).abs().max().item<double>(), 1e-5);
  EXPECT_LT((routing.weights.sum(1) - 1).abs().max().item<double>(), 1e-6);
  // Scores are cosines: in [0, 1].
  EXPECT_GE(routing.scores.min().item<double>(), 0.0);
  EXPECT_LE(routing.scores.max().item<double>(), 1.0 + 1e-6);
}

TEST(RoutingCpu, RejectsBadShapes) {
  EXPECT_THROW(bm::route_cpu(torch::randn({4, 8}), torch::randn({3, 9, 2}), {2, 0.0}), c10::Error);
  EXPECT_THROW(bm::route_cpu(torch::randn({4, 8}), torch::randn({3, 8, 2}), {4, 0.0}), c10::Error);
}

// Top-D is decided in double everywhere. 0.7 rounds down in float (0.699999988): a score
// equal to float(0.7) is below the threshold and dropped by the forward (CPU reference and
// CUDA kernel compare (double)score >= threshold); ATen's float `ge` with the same double
// threshold keeps it, which is what the CUDA backward used to do (its gradient then flowed
// into a slot whose weight was 0).
TEST(RoutingCpu, TopDKeepMaskIsDecidedInDoubleAsTheForward) {
  const double threshold = 0.7;
  const float at_float_threshold = static_cast<float>(threshold);
  ASSERT_LT(static_cast<double>(at_float_threshold), threshold);
  const float above = std::nextafter(at_float_threshold, 1.0f);
  const auto selected = torch::tensor({0.9f, at_float_threshold, 0.9f, above}).view({2, 2});
  ASSERT_TRUE(selected.ge(threshold)[0][1].item<bool>()) << "ATen's float comparison (the old backward) keeps it";
  const auto keep = bm::top_d_keep_mask(selected, threshold);
  EXPECT_FALSE(keep[0][1].item<bool>());
  EXPECT_TRUE(keep[1][1].item<bool>());
  EXPECT_TRUE(keep.select(1, 0).all().item<bool>()) << "the best slot is always kept";
  // The forward's weights agree: the dropped slot gets weight 0.
  const auto scores = torch::tensor({0.9f, at_float_threshold, 0.1f, 0.9f, above, 0.1f}).view({2, 3});
  const auto routing = bm::route_from_scores(scores, {2, threshold});
  EXPECT_EQ(routing.weights[0][1].item<float>(), 0.0f);
  EXPECT_GT(routing.weights[1][1].item<float>(), 0.0f);
}
