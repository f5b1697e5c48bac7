#pragma once
// Soft-label age classification (SFCN: Peng, Gong, Beckmann, Vedaldi, Smith 2021, "Accurate
// brain age prediction with lightweight deep neural networks", Medical Image Analysis
// 68:101871): the head outputs logits over 1-year age bins; the target of a subject of age a
// is a Gaussian N(a, σ²) evaluated at the bin centres and normalised over the bins; the loss
// is the Kullback–Leibler divergence KL(target || softmax(logits)); the predicted age is the
// expectation of the bin centres under softmax(logits).
#include <torch/torch.h>

#include "model/model_options.h"

namespace brainage::model {

/// Bin centres in years, [K] float: age_bin_start + i, i = 0..age_bins-1. Throws ModelError
/// when the options have no bins.
torch::Tensor age_bin_centres(const ModelOptions& options);

/// Gaussian soft labels: ages [B] (years) and centres [K] -> [B, K], each row
/// exp(-(c - a)² / 2σ²) normalised to sum 1 over the bins (an age outside the bin range
/// puts its mass on the nearest bins). Throws ModelError for σ <= 0 or bad shapes.
torch::Tensor gaussian_soft_labels(const torch::Tensor& ages, const torch::Tensor& centres, double sigma);

/// Mean over the batch of KL(targets || softmax(logits)) = Σ_k t_k (ln t_k − log_softmax_k), in
/// nats; logits and targets [B, K]. 0 exactly when softmax(logits) = targets.
torch::Tensor soft_label_kl_loss(const torch::Tensor& logits, const torch::Tensor& targets);

/// The expected age Σ_k softmax(logits)_k c_k, [B] years; logits [B, K], centres [K].
torch::Tensor expected_age(const torch::Tensor& logits, const torch::Tensor& centres);

}  // namespace brainage::model
