#pragma once
// Plain C++ reference of Eigenbasis routing (model/routing.h semantics) in double
// precision, for tests of the CUDA kernels on raw buffers. Deliberately loops only: no
// LibTorch, no BLAS, nothing shared with the code under test.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace brainage::test {

struct RoutingProblem {
  int64_t T = 0, d = 0, E = 0, r = 0, k = 0;
  double top_d_threshold = 0.0;
  std::vector<float> tokens;  // [T, d]
  std::vector<float> bases;   // [E, d, r], orthonormal columns per expert
};

/// Seeded problem: Gaussian tokens, orthonormal bases from Gram-Schmidt of Gaussian
/// columns. With `duplicate_last_expert`, expert E-1 gets expert 0's basis, so every
/// token has an exact score tie between them (the tie rule: expert 0 must win).
inline RoutingProblem make_problem(int64_t T, int64_t d, int64_t E, int64_t r, int64_t k, double top_d,
                                   uint32_t seed, bool duplicate_last_expert = false) {
  RoutingProblem p{T, d, E, r, k, top_d, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  p.tokens.resize(static_cast<size_t>(T * d));
  for (auto& v : p.tokens) v = static_cast<float>(normal(rng));
  p.bases.resize(static_cast<size_t>(E * d * r));
  std::vector<double> col(static_cast<size_t>(d));
  for (int64_t e = 0; e < E; ++e) {
    std::vector<std::vector<double>> done;
    for (int64_t a = 0; a < r; ++a) {
      for (auto& v : col) v = normal(rng);
      for (int pass = 0; pass < 2; ++pass)  // re-orthogonalise once for accuracy
        for (const auto& q : done) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i) dot += q[i] * col[i];
          for (int64_t i = 0; i < d; ++i) col[i] -= dot * q[i];
        }
      double norm = 0;
      for (double v : col) norm += v * v;
      norm = std::sqrt(norm);
      for (auto& v : col) v /= norm;
      done.push_back(col);
      for (int64_t i = 0; i < d; ++i) p.bases[(e * d + i) * r + a] = static_cast<float>(col[i]);
    }
  }
  if (duplicate_last_expert && E > 1)
    std::copy(p.bases.begin(), p.bases.begin() + d * r, p.bases.begin() + (E - 1) * d * r);
  return p;
}

struct ReferenceRouting {
  std::vector<double> scores;       // [T, E]
  std::vector<int64_t> expert_ids;  // [T, k]
  std::vector<double> weights;      // [T, k]
  std::vector<int64_t> counts, offsets, permutation;
};

/// scores[t,e] = ||U_eᵀx_t|| / ||x_t|| (0 for a zero token).
inline std::vector<double> reference_scores(const RoutingProblem& p) {
  std::vector<double> scores(static_cast<size_t>(p.T * p.E));
  for (int64_t t = 0; t < p.T; ++t) {
    const float* x = &p.tokens[t * p.d];
    double norm_sq = 0;
    for (int64_t i = 0; i < p.d; ++i) norm_sq += double(x[i]) * x[i];
    for (int64_t e = 0; e < p.E; ++e) {
      double proj_sq = 0;
      for (int64_t a = 0; a < p.r; ++a) {
        double proj = 0;
        for (int64_t i = 0; i < p.d; ++i) proj += double(p.bases[(e * p.d + i) * p.r + a]) * x[i];
        proj_sq += proj * proj;
      }
      scores[t * p.E + e] = norm_sq > 0 ? std::sqrt(proj_sq) / std::sqrt(norm_sq) : 0.0;
    }
  }
  return scores;
}

/// Gate weights of token t for the chosen experts `ids` (k of them), Top-D as in routing.h.
inline void reference_weights(const double* score_row, const int64_t* ids, int64_t k, double top_d, double* out) {
  double total = 0;
  int kept_count = 0;
  for (int64_t j = 0; j < k; ++j)
    if (j == 0 || score_row[ids[j]] >= top_d) {
      total += score_row[ids[j]];
      ++kept_count;
    }
  for (int64_t j = 0; j < k; ++j) {
    const bool kept = j == 0 || score_row[ids[j]] >= top_d;
    out[j] = !kept ? 0.0 : (total > 0 ? score_row[ids[j]] / total : 1.0 / kept_count);
  }
}

/// Stable counting sort of the slots t*k+j by expert id.
inline void reference_counting_sort(const std::vector<int64_t>& ids, int64_t E, std::vector<int64_t>& counts,
                                    std::vector<int64_t>& offsets, std::vector<int64_t>& permutation) {
  counts.assign(static_cast<size_t>(E), 0);
  for (int64_t e : ids) ++counts[e];
  offsets.assign(static_cast<size_t>(E + 1), 0);
  for (int64_t e = 0; e < E; ++e) offsets[e + 1] = offsets[e] + counts[e];
  permutation.assign(ids.size(), -1);
  std::vector<int64_t> cursor(offsets.begin(), offsets.end() - 1);
  for (size_t s = 0; s < ids.size(); ++s) permutation[cursor[ids[s]]++] = static_cast<int64_t>(s);
}

inline ReferenceRouting reference_route(const RoutingProblem& p) {
  ReferenceRouting out;
  out.scores = reference_scores(p);
  out.expert_ids.resize(static_cast<size_t>(p.T * p.k));
  out.weights.resize(static_cast<size_t>(p.T * p.k));
  std::vector<int64_t> order(static_cast<size_t>(p.E));
  for (int64_t t = 0; t < p.T; ++t) {
    const double* row = &out.scores[t * p.E];
    for (int64_t e = 0; e < p.E; ++e) order[e] = e;
    std::stable_sort(order.begin(), order.end(), [row](int64_t a, int64_t b) { return row[a] > row[b]; });
    std::copy(order.begin(), order.begin() + p.k, &out.expert_ids[t * p.k]);
    reference_weights(row, &out.expert_ids[t * p.k], p.k, p.top_d_threshold, &out.weights[t * p.k]);
  }
  reference_counting_sort(out.expert_ids, p.E, out.counts, out.offsets, out.permutation);
  return out;
}

/// Gradients of L = Σ_te g[t,e] scores[t,e] w.r.t. tokens [T,d] and bases [E,d,r]:
///   ds/dx = U p / (||p|| ||x||) − s x / ||x||²,   ds/dU = x pᵀ / (||p|| ||x||),  p = Uᵀx.
inline void reference_scores_backward(const RoutingProblem& p, const std::vector<float>& grad_scores,
                                      std::vector<double>& grad_tokens, std::vector<double>& grad_bases) {
  grad_tokens.assign(static_cast<size_t>(p.T * p.d), 0.0);
  grad_bases.assign(static_cast<size_t>(p.E * p.d * p.r), 0.0);
  std::vector<double> proj(static_cast<size_t>(p.r));
  for (int64_t t = 0; t < p.T; ++t) {
    const float* x = &p.tokens[t * p.d];
    double norm_sq = 0;
    for (int64_t i = 0; i < p.d; ++i) norm_sq += double(x[i]) * x[i];
    if (norm_sq <= 0) continue;
    const double norm = std::sqrt(norm_sq);
    for (int64_t e = 0; e < p.E; ++e) {
      const float* u = &p.bases[e * p.d * p.r];
      double proj_sq = 0;
      for (int64_t a = 0; a < p.r; ++a) {
        proj[a] = 0;
        for (int64_t i = 0; i < p.d; ++i) proj[a] += double(u[i * p.r + a]) * x[i];
        proj_sq += proj[a] * proj[a];
      }
      const double g = grad_scores[t * p.E + e];
      const double proj_norm = std::sqrt(proj_sq);
      const double score = proj_norm / norm;
      const double c = proj_norm > 0 ? g / (proj_norm * norm) : 0.0;
      for (int64_t i = 0; i < p.d; ++i) {
        double up = 0;
        for (int64_t a = 0; a < p.r; ++a) {
          up += double(u[i * p.r + a]) * proj[a];
          grad_bases[(e * p.d + i) * p.r + a] += c * x[i] * proj[a];
        }
        grad_tokens[t * p.d + i] += c * up - g * score * x[i] / norm_sq;
      }
    }
  }
}

}  // namespace brainage::test
