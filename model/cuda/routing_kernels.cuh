#pragma once
// CUDA kernels for Eigenbasis routing (model/routing.h semantics) on raw device buffers.
// No LibTorch here: model/cuda/routing_cuda.cpp wraps these for CUDA tensors, and
// tests/model/routing_kernels_cuda_test.cpp runs them against a plain C++ reference.
//
// Forward, two launches (+ one memset of the counts):
//   1. score_topk_count   scores[t,e] = ||U_eᵀ x_t|| / ||x_t|| (0 for a zero token), top-k
//                         (best first, ties -> lower expert index), Top-D gate weights,
//                         per-expert counts (global atomics) and per-tile counts.
//                         One block per tile of tokens (64, or 16 when 64-token tiles would
//                         leave SMs idle, e.g. one scan); the token tile and 32-column chunks
//                         of each U_e are staged in shared memory; each of the 8 warps owns
//                         tile/8 tokens, lane a owns column a of the chunk, and ||·||² over
//                         the columns is a warp reduction.
//   2. offsets_permutation exclusive prefix sum of the counts (offsets) and the stable
//                         counting sort of the T*k slots by expert (permutation, ascending
//                         slot id inside an expert), plus its inverse (slot -> row).
// Dispatch/combine: gather_rows (tokens into expert order) and combine (weighted sum of
// the k expert rows of each token; written as a deterministic gather through the inverse
// permutation instead of a scatter with float atomics, so results are bitwise repeatable).
// Backward, all in CUDA:
//   scores_backward   d scores / d tokens and d bases (two strided GEMMs + one elementwise
//                     kernel: P = X·U_e, Q = c ⊙ P, grad_x = Q·Uᵀ − β x, grad_U_e = Xᵀ Q_e).
//   gather_rows_backward, combine_backward (w.r.t. expert outputs and gate weights).
// The derivative of the gate weights with respect to the selected scores is a [T, k]
// elementwise formula and is done with ATen on the GPU in routing_cuda.cpp.
//
// Every launcher returns the first CUDA error (argument check, launch or configuration);
// cudaErrorInvalidValue means the shape broke a limit, see routing_shape_problem().
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace brainage::model::cuda {

inline constexpr int kMaxExperts = 64;   // experts are tracked in a 64-bit mask per token
inline constexpr int kMaxTopK = 8;       // selected scores live in registers
inline constexpr int kMaxTileTokens = 64;  // tokens per block in the fused and permutation kernels (16 or 64)

/// Sizes of one routing problem. T*k must stay below 2^31.
struct RoutingShape {
  int64_t num_tokens = 0;   // T
  int64_t dim = 0;          // d
  int64_t num_experts = 0;  // E, 1..kMaxExperts
  int64_t rank = 0;         // r
  int64_t top_k = 0;        // k, 1..min(E, kMaxTopK)
};

/// Null when the kernels accept `shape` on the current device, otherwise a static
/// one-line description of the broken limit.
const char* routing_shape_problem(const RoutingShape& shape);

/// Device buffers of the forward routing. All int64 to match torch.int64.
struct RoutingBuffers {
  float* scores = nullptr;                 // [T, E]
  int64_t* expert_ids = nullptr;           // [T, k]
  float* weights = nullptr;                // [T, k]
  int64_t* counts = nullptr;               // [E]
  int64_t* offsets = nullptr;              // [E + 1]
  int64_t* permutation = nullptr;          // [T * k] slot ids grouped by expert
  int64_t* inverse_permutation = nullptr;  // [T * k] row of slot s in `permutation` (may be null)
  void* workspace = nullptr;               // routing_workspace_bytes(shape) bytes
};

/// Bytes of device workspace route_forward needs (the per-tile expert counts).
size_t routing_workspace_bytes(const RoutingShape& shape);

/// Launch 1: scores, expert_ids, weights, counts and the per-tile counts in `workspace`.
cudaError_t launch_score_topk_count(const float* tokens /*[T,d]*/, const float* bases /*[E,d,r]*/,
                                    const RoutingShape& shape, double top_d_threshold,
                                    const RoutingBuffers& out, cudaStream_t stream);

/// Launch 2: offsets, permutation and inverse_permutation from expert_ids, counts and
/// the per-tile counts written by launch 1.
cudaError_t launch_offsets_permutation(const RoutingShape& shape, const RoutingBuffers& out, cudaStream_t stream);

/// Both launches: the whole forward routing.
cudaError_t route_forward(const float* tokens, const float* bases, const RoutingShape& shape,
                          double top_d_threshold, const RoutingBuffers& out, cudaStream_t stream);

/// inverse[permutation[i]] = i for i < n.
cudaError_t invert_permutation(const int64_t* permutation, int64_t n, int64_t* inverse, cudaStream_t stream);

/// out[i, :] = tokens[permutation[i] / k, :]   [T,d] -> [T*k, d]
cudaError_t gather_rows(const float* tokens, const int64_t* permutation, int64_t num_tokens, int64_t dim,
                        int64_t top_k, float* out, cudaStream_t stream);

/// grad_tokens[t, :] = Σ_j grad_out[inverse[t*k+j], :]   [T*k,d] -> [T,d]
cudaError_t gather_rows_backward(const float* grad_out, const int64_t* inverse_permutation, int64_t num_tokens,
                                 int64_t dim, int64_t top_k, float* grad_tokens, cudaStream_t stream);

/// out[t, :] = Σ_j weights[t,j] * expert_outputs[inverse[t*k+j], :]   [T*k,d] -> [T,d]
cudaError_t combine(const float* expert_outputs, const float* weights, const int64_t* inverse_permutation,
                    int64_t num_tokens, int64_t dim, int64_t top_k, float* out, cudaStream_t stream);

/// grad_expert_outputs[i, :] = weights[s] * grad_out[s / k, :] with s = permutation[i];
/// grad_weights[s] = <grad_out[s / k, :], expert_outputs[inverse[s], :]>. Either output may be null.
cudaError_t combine_backward(const float* grad_out, const float* expert_outputs, const float* weights,
                             const int64_t* permutation, const int64_t* inverse_permutation, int64_t num_tokens,
                             int64_t dim, int64_t top_k, float* grad_expert_outputs, float* grad_weights,
                             cudaStream_t stream);

/// Bytes of device workspace scores_backward needs ([T, E, r] + [T] floats).
size_t scores_backward_workspace_bytes(const RoutingShape& shape);

/// Gradients of Σ grad_scores ⊙ scores with respect to tokens [T,d] and bases [E,d,r]
/// (either output may be null; outputs are overwritten, not accumulated). Uses the same
/// clamped norms as the CPU reference, so a zero token gets zero gradient.
cudaError_t scores_backward(const float* tokens, const float* bases, const float* grad_scores /*[T,E]*/,
                            const RoutingShape& shape, float* grad_tokens, float* grad_bases, void* workspace,
                            cudaStream_t stream);

}  // namespace brainage::model::cuda
