#pragma once
// Eigenbasis routing for the ERMoE layer: one interface, two back-ends.
//
//   route()      dispatches on the device of `tokens`: the CPU reference in
//                model/cpu/routing_cpu.cpp, or the CUDA kernels in model/cuda/ when they
//                were compiled (BRAINAGE_CUDA_ENABLED) and the tensors live on a GPU.
//   route_cpu()  the CPU reference (plain C++/ATen): the ground truth of the parity tests.
//
// Semantics (both back-ends must agree):
//   scores[t,e]      = ||U_eᵀ x_t|| / ||x_t||  (Eigenbasis Score, in [0,1]; 0 for a zero
//                      token), U_e = bases[e] with orthonormal columns. Carries autograd
//                      w.r.t. tokens and bases (the CPU path builds it from ATen ops).
//   expert_ids[t,:]  the k experts with the highest score, best first; on equal scores
//                      the lower expert index comes first.
//   weights[t,j]     gate weights from the selected scores: slot j is *kept* when j == 0
//                      or scores[t, expert_ids[t,j]] >= top_d_threshold (Top-D; the best
//                      slot is always kept); weights[t,j] = kept ? s_j / Σ_kept s : 0, so
//                      the kept weights of a token sum to 1 (if all kept scores are 0 the
//                      kept slots share the weight equally). Differentiable through `scores`.
//   counts[e]        assignments of expert e over all T*k slots (dropped slots included:
//                      they are computed with weight 0, which keeps the layout static).
//   offsets          exclusive prefix sum of counts, offsets[0] = 0, offsets[E] = T*k.
//   permutation[i]   slot ids s = t*k + j grouped by expert: the slots of expert e are
//                      permutation[offsets[e] .. offsets[e+1]), in ascending slot id.
#include <torch/torch.h>

#include <cstdint>

namespace brainage::model {

struct RoutingResult {
  torch::Tensor scores;       // [T, E] float/double (dtype of tokens), autograd-carrying
  torch::Tensor expert_ids;   // [T, k] int64, best first, ties -> lower expert index
  torch::Tensor weights;      // [T, k] dtype of tokens, normalised over kept slots
  torch::Tensor counts;       // [E] int64
  torch::Tensor offsets;      // [E+1] int64
  torch::Tensor permutation;  // [T*k] int64
};

struct RoutingOptions {
  int64_t top_k = 2;             /** Default = 2. Experts per token (1 <= k <= E). */
  double top_d_threshold = 0.0;  /** Default = 0 (off). Slots j > 0 whose score is below it get weight 0. */
};

/// Routes `tokens` [T, d] to the experts whose orthonormal bases are `bases` [E, d, r].
/// Dispatches on the device: CUDA kernels when compiled and the tensors are on a GPU,
/// the CPU reference otherwise. Throws c10::Error (TORCH_CHECK) on bad shapes.
RoutingResult route(const torch::Tensor& tokens, const torch::Tensor& bases, const RoutingOptions& options);

/// The CPU reference implementation of route() (tensors must be on the CPU).
RoutingResult route_cpu(const torch::Tensor& tokens, const torch::Tensor& bases, const RoutingOptions& options);

/// route_cpu() on host copies of device tensors, the result moved back to the tokens'
/// device (autograd flows through the copies): for devices or shapes without kernels.
RoutingResult route_cpu_for_device(const torch::Tensor& tokens, const torch::Tensor& bases,
                                   const RoutingOptions& options);

/// The selection part of routing on precomputed scores [T, E] (any non-negative gate
/// score, e.g. the softmax probabilities of the baseline MoE): top-k, Top-D, weights,
/// counts, offsets, permutation exactly as above. `scores` is kept in the result.
/// If every kept score of a token is 0 the kept slots share the weight equally.
RoutingResult route_from_scores(const torch::Tensor& scores, const RoutingOptions& options);

/// The Top-D kept mask of the selected scores [T, k] (scores[t, expert_ids[t, j]], any
/// floating dtype and device): bool [T, k], slot j kept when j == 0 or its score widened to
/// double is >= top_d_threshold. The one statement of the rule: the CPU reference and the
/// CUDA backward call it, and the CUDA forward kernel compares `(double)score >= threshold`.
/// Comparing a float tensor with the double threshold in ATen (`ge`) would round the
/// threshold to float and keep a score equal to float(threshold) < threshold that the
/// forward dropped.
torch::Tensor top_d_keep_mask(const torch::Tensor& selected_scores, double top_d_threshold);

/// Gathers the token rows in expert order: row i of the result is
/// tokens[permutation[i] / k]. [T, d] -> [T*k, d]. Differentiable w.r.t. tokens.
torch::Tensor dispatch_tokens(const torch::Tensor& tokens, const RoutingResult& routing);

/// Weighted scatter-add of expert outputs back to tokens (the inverse of dispatch_tokens):
/// `expert_outputs` [T*k, d] holds in row i the output for slot permutation[i];
/// returns out[t] = Σ_j weights[t,j] * expert_outputs[row of slot t*k+j], shape [T, d].
/// Differentiable w.r.t. expert_outputs and routing.weights.
torch::Tensor combine(const torch::Tensor& expert_outputs, const RoutingResult& routing);

}  // namespace brainage::model
