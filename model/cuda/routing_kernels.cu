// CUDA kernels for Eigenbasis routing; see routing_kernels.cuh for the plan and contracts.
// Layout, bottom up: device helpers -> kernels -> tiling constants and launch helpers ->
// launchers that pick a compile-time instantiation (d = 96/192/256, generic otherwise)
// -> host entry points with shape comments and launch-error checks.
#include "model/cuda/routing_kernels.cuh"

#include <cuda_runtime.h>

#include <cstdint>

namespace brainage::model::cuda {
namespace {

constexpr int kWarpSize = 32;
constexpr int kThreads = 256;                               // threads per block, all kernels
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kSmallTileTokens = 16;                        // tile when 64-token tiles would idle SMs
constexpr int kChunkColumns = kWarpSize;                    // basis columns staged per step (lane = column)
constexpr int kGemmTile = 16;                               // backward GEMM tile edge
constexpr float kNormFloorSq = 1e-30f;                      // the CPU reference's clamp_min on squared norms

static_assert(kThreads % kWarpSize == 0, "block size must be a whole number of warps");
static_assert(kMaxTileTokens % kWarps == 0 && kSmallTileTokens % kWarps == 0,
              "every warp must own the same number of tokens of a tile");
static_assert(kMaxTileTokens <= kThreads, "top-k runs one thread per token of a tile");
static_assert(kMaxExperts <= 64, "the taken-experts mask is a 64-bit word");
static_assert(kMaxExperts <= kThreads, "per-expert prefix sums run one thread per expert");
static_assert(kMaxTileTokens * kMaxTopK <= 4096, "a tile's slots are staged in static shared memory");
static_assert(kGemmTile * kGemmTile == kThreads, "the backward GEMM maps one thread to one output");

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__host__ __device__ constexpr int round_up4(int v) { return (v + 3) & ~3; }

// ---- kernel 1: scores + top-k + weights + counts (fused) ------------------------------

/// One block per tile of kTokensPerWarp * 8 tokens. kDim > 0 fixes d at compile time (the
/// inner loop is unrolled); kDim == 0 is the generic fallback for any d.
template <int kDim, int kTokensPerWarp>
__global__ void __launch_bounds__(kThreads)
    score_topk_count_kernel(const float* __restrict__ tokens,  // [T, d]
                            const float* __restrict__ bases,   // [E, d, r]
                            int num_tokens, int dim_runtime, int num_experts, int rank, int top_k,
                            double top_d_threshold,
                            float* __restrict__ scores,                // [T, E]
                            int64_t* __restrict__ expert_ids,          // [T, k]
                            float* __restrict__ weights,               // [T, k]
                            unsigned long long* __restrict__ counts,   // [E], zeroed by the launcher
                            int* __restrict__ tile_counts) {           // [num_tiles, E]
  static_assert(kDim >= 0 && kDim % 4 == 0, "compile-time d must be a multiple of 4 (0 = generic)");
  static_assert(kTokensPerWarp * kWarps <= kMaxTileTokens, "tile larger than the permutation kernel's slot buffer");
  constexpr int kTileTokens = kTokensPerWarp * kWarps;
  const int dim = kDim > 0 ? kDim : dim_runtime;
  const int dim_pad = kDim > 0 ? kDim : round_up4(dim_runtime);

  extern __shared__ __align__(16) float smem[];
  float* s_x = smem;                                      // [kTileTokens][dim_pad], zero padded
  float* s_u = s_x + kTileTokens * dim_pad;               // [dim_pad][kChunkColumns], zero padded
  float* s_sq = s_u + dim_pad * kChunkColumns;            // [kTileTokens][E]: ||U_eᵀx||², then scores
  float* s_norm_sq = s_sq + kTileTokens * num_experts;    // [kTileTokens]
  int* s_count = reinterpret_cast<int*>(s_norm_sq + kTileTokens);  // [E]

  const int tile = blockIdx.x;
  const int tile_start = tile * kTileTokens;
  const int tile_size = min(kTileTokens, num_tokens - tile_start);
  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;

  // Stage the token tile; rows past T and columns past d are zero and contribute nothing.
  for (int idx = threadIdx.x; idx < kTileTokens * dim_pad; idx += kThreads) {
    const int t = idx / dim_pad;
    const int i = idx - t * dim_pad;
    s_x[idx] = (t < tile_size && i < dim) ? tokens[static_cast<int64_t>(tile_start + t) * dim + i] : 0.f;
  }
  for (int idx = threadIdx.x; idx < kTileTokens * num_experts; idx += kThreads) s_sq[idx] = 0.f;
  for (int e = threadIdx.x; e < num_experts; e += kThreads) s_count[e] = 0;
  __syncthreads();

  // ||x_t||², one warp per token.
  for (int t = warp; t < kTileTokens; t += kWarps) {
    float acc = 0.f;
    for (int i = lane; i < dim_pad; i += kWarpSize) acc = fmaf(s_x[t * dim_pad + i], s_x[t * dim_pad + i], acc);
    acc = warp_sum(acc);
    if (lane == 0) s_norm_sq[t] = acc;
  }

  // ||U_eᵀ x_t||² for every expert, 32 basis columns at a time.
  const float* x_warp = s_x + warp * kTokensPerWarp * dim_pad;
  const int chunks = (rank + kChunkColumns - 1) / kChunkColumns;
  for (int e = 0; e < num_experts; ++e) {
    const float* u_e = bases + static_cast<int64_t>(e) * dim * rank;
    for (int c = 0; c < chunks; ++c) {
      const int col0 = c * kChunkColumns;
      __syncthreads();  // the previous chunk has been consumed by every warp
      for (int idx = threadIdx.x; idx < dim_pad * kChunkColumns; idx += kThreads) {
        const int i = idx / kChunkColumns;
        const int a = idx - i * kChunkColumns;
        s_u[idx] = (i < dim && col0 + a < rank) ? u_e[static_cast<int64_t>(i) * rank + col0 + a] : 0.f;
      }
      __syncthreads();

      float acc[kTokensPerWarp];
#pragma unroll
      for (int m = 0; m < kTokensPerWarp; ++m) acc[m] = 0.f;
#pragma unroll(kDim > 0 ? 4 : 1)
      for (int i = 0; i < dim_pad; i += 4) {
        const float u0 = s_u[(i + 0) * kChunkColumns + lane];
        const float u1 = s_u[(i + 1) * kChunkColumns + lane];
        const float u2 = s_u[(i + 2) * kChunkColumns + lane];
        const float u3 = s_u[(i + 3) * kChunkColumns + lane];
#pragma unroll
        for (int m = 0; m < kTokensPerWarp; ++m) {
          const float4 xv = *reinterpret_cast<const float4*>(x_warp + m * dim_pad + i);  // broadcast
          acc[m] = fmaf(xv.x, u0, acc[m]);
          acc[m] = fmaf(xv.y, u1, acc[m]);
          acc[m] = fmaf(xv.z, u2, acc[m]);
          acc[m] = fmaf(xv.w, u3, acc[m]);
        }
      }
#pragma unroll
      for (int m = 0; m < kTokensPerWarp; ++m) {
        const float sq = warp_sum(acc[m] * acc[m]);
        if (lane == 0) s_sq[(warp * kTokensPerWarp + m) * num_experts + e] += sq;  // this warp's token only
      }
    }
  }
  __syncthreads();

  // Scores (same clamped norms as the CPU reference; a zero token scores 0), written coalesced.
  for (int idx = threadIdx.x; idx < tile_size * num_experts; idx += kThreads) {
    const int t = idx / num_experts;
    const float norm_sq = s_norm_sq[t];
    const float s = norm_sq > 0.f ? sqrtf(fmaxf(s_sq[idx], kNormFloorSq)) / sqrtf(fmaxf(norm_sq, kNormFloorSq)) : 0.f;
    s_sq[idx] = s;
    scores[static_cast<int64_t>(tile_start) * num_experts + idx] = s;
  }
  __syncthreads();

  // Top-k, Top-D and gate weights: one thread per token.
  if (threadIdx.x < tile_size) {
    const int t = threadIdx.x;
    const int64_t token = tile_start + t;
    const float* row = s_sq + t * num_experts;
    unsigned long long taken = 0ull;
    int chosen[kMaxTopK];
    float chosen_score[kMaxTopK];
    bool kept[kMaxTopK];
    float kept_total = 0.f;
    int kept_count = 0;
#pragma unroll
    for (int j = 0; j < kMaxTopK; ++j) {
      if (j >= top_k) break;
      int best = -1;
      float best_score = 0.f;
      for (int e = 0; e < num_experts; ++e) {
        if ((taken >> e) & 1ull) continue;
        if (best < 0 || row[e] > best_score) {  // strict: on equal scores the lower index stays
          best = e;
          best_score = row[e];
        }
      }
      taken |= 1ull << best;
      chosen[j] = best;
      chosen_score[j] = best_score;
      kept[j] = j == 0 || static_cast<double>(best_score) >= top_d_threshold;
      if (kept[j]) {
        kept_total += best_score;
        ++kept_count;
      }
      atomicAdd(&s_count[best], 1);
    }
#pragma unroll
    for (int j = 0; j < kMaxTopK; ++j) {
      if (j >= top_k) break;
      float w = 0.f;
      if (kept[j]) w = kept_total > 0.f ? chosen_score[j] / kept_total : 1.f / static_cast<float>(kept_count);
      expert_ids[token * top_k + j] = chosen[j];
      weights[token * top_k + j] = w;
    }
  }
  __syncthreads();

  for (int e = threadIdx.x; e < num_experts; e += kThreads) {
    const int n = s_count[e];
    tile_counts[tile * num_experts + e] = n;
    if (n > 0) atomicAdd(&counts[e], static_cast<unsigned long long>(n));
  }
}

// ---- kernel 2: offsets + stable permutation --------------------------------------------

/// One block per tile of `tile_tokens` tokens (the tiles of kernel 1). A slot's row is
///   Σ_{e' < e} counts[e'] + Σ_{earlier tiles} tile_counts[., e] + #earlier slots of e in this tile,
/// which is the stable counting sort by expert (ascending slot id inside an expert).
__global__ void __launch_bounds__(kThreads)
    offsets_permutation_kernel(const int64_t* __restrict__ expert_ids,  // [T, k]
                               const int64_t* __restrict__ counts,      // [E]
                               const int* __restrict__ tile_counts,     // [num_tiles, E]
                               int num_tokens, int num_experts, int top_k, int tile_tokens,
                               int64_t* __restrict__ offsets,              // [E + 1]
                               int64_t* __restrict__ permutation,          // [T * k]
                               int64_t* __restrict__ inverse_permutation) {  // [T * k] or null
  __shared__ int s_base[kMaxExperts];
  __shared__ int s_ids[kMaxTileTokens * kMaxTopK];
  const int tile = blockIdx.x;

  if (threadIdx.x < num_experts) {
    int64_t before = 0;
    for (int e = 0; e < static_cast<int>(threadIdx.x); ++e) before += counts[e];
    s_base[threadIdx.x] = static_cast<int>(before);
  }
  if (tile == 0 && threadIdx.x <= num_experts) {
    int64_t before = 0;
    for (int e = 0; e < static_cast<int>(threadIdx.x); ++e) before += counts[e];
    offsets[threadIdx.x] = before;
  }
  __syncthreads();

  // Slots of expert e in earlier tiles: threads with the same e split the tiles, then one
  // shared atomic per thread.
  const int lanes_per_expert = kThreads / num_experts;
  if (threadIdx.x < lanes_per_expert * num_experts) {
    const int e = threadIdx.x % num_experts;
    int partial = 0;
    for (int earlier = threadIdx.x / num_experts; earlier < tile; earlier += lanes_per_expert)
      partial += tile_counts[earlier * num_experts + e];
    if (partial > 0) atomicAdd(&s_base[e], partial);
  }

  const int tile_start = tile * tile_tokens;
  const int slot0 = tile_start * top_k;
  const int num_slots = min(tile_tokens, num_tokens - tile_start) * top_k;
  for (int j = threadIdx.x; j < num_slots; j += kThreads) s_ids[j] = static_cast<int>(expert_ids[slot0 + j]);
  __syncthreads();

  for (int j = threadIdx.x; j < num_slots; j += kThreads) {
    const int e = s_ids[j];
    int rank = 0;
    for (int m = 0; m < j; ++m) rank += s_ids[m] == e;
    const int64_t row = s_base[e] + rank;
    permutation[row] = slot0 + j;
    if (inverse_permutation) inverse_permutation[slot0 + j] = row;
  }
}

// ---- dispatch / combine and their backward ---------------------------------------------

__global__ void invert_permutation_kernel(const int64_t* __restrict__ permutation, int64_t n,
                                          int64_t* __restrict__ inverse) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    inverse[permutation[i]] = i;
}

__global__ void gather_rows_kernel(const float* __restrict__ tokens, const int64_t* __restrict__ permutation,
                                   int64_t num_rows, int dim, int top_k, float* __restrict__ out) {
  const int64_t total = num_rows * dim;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = idx / dim;
    const int i = static_cast<int>(idx - row * dim);
    out[idx] = tokens[(permutation[row] / top_k) * dim + i];
  }
}

__global__ void gather_rows_backward_kernel(const float* __restrict__ grad_out,
                                            const int64_t* __restrict__ inverse_permutation, int64_t num_tokens,
                                            int dim, int top_k, float* __restrict__ grad_tokens) {
  const int64_t total = num_tokens * dim;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = idx / dim;
    const int i = static_cast<int>(idx - t * dim);
    float acc = 0.f;
    for (int j = 0; j < top_k; ++j) acc += grad_out[inverse_permutation[t * top_k + j] * dim + i];
    grad_tokens[idx] = acc;
  }
}

__global__ void combine_kernel(const float* __restrict__ expert_outputs, const float* __restrict__ weights,
                               const int64_t* __restrict__ inverse_permutation, int64_t num_tokens, int dim,
                               int top_k, float* __restrict__ out) {
  const int64_t total = num_tokens * dim;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = idx / dim;
    const int i = static_cast<int>(idx - t * dim);
    float acc = 0.f;
    for (int j = 0; j < top_k; ++j) {
      const int64_t slot = t * top_k + j;
      acc = fmaf(weights[slot], expert_outputs[inverse_permutation[slot] * dim + i], acc);
    }
    out[idx] = acc;
  }
}

__global__ void combine_backward_outputs_kernel(const float* __restrict__ grad_out, const float* __restrict__ weights,
                                                const int64_t* __restrict__ permutation, int64_t num_rows, int dim,
                                                int top_k, float* __restrict__ grad_expert_outputs) {
  const int64_t total = num_rows * dim;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = idx / dim;
    const int i = static_cast<int>(idx - row * dim);
    const int64_t slot = permutation[row];
    grad_expert_outputs[idx] = weights[slot] * grad_out[(slot / top_k) * dim + i];
  }
}

/// One warp per slot: grad_weights[s] = <grad_out[s / k], expert_outputs[inverse[s]]>.
__global__ void __launch_bounds__(kThreads)
    combine_backward_weights_kernel(const float* __restrict__ grad_out, const float* __restrict__ expert_outputs,
                                    const int64_t* __restrict__ inverse_permutation, int64_t num_slots, int dim,
                                    int top_k, float* __restrict__ grad_weights) {
  const int lane = threadIdx.x % kWarpSize;
  for (int64_t slot = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarpSize; slot < num_slots;
       slot += static_cast<int64_t>(gridDim.x) * blockDim.x / kWarpSize) {
    const float* g = grad_out + (slot / top_k) * dim;
    const float* y = expert_outputs + inverse_permutation[slot] * dim;
    float acc = 0.f;
    for (int i = lane; i < dim; i += kWarpSize) acc = fmaf(g[i], y[i], acc);
    acc = warp_sum(acc);
    if (lane == 0) grad_weights[slot] = acc;
  }
}

// ---- backward of the scores -------------------------------------------------------------

/// Element (row, col) of batch b of a strided matrix.
struct Strided {
  const float* data;
  int64_t batch_stride, row_stride, col_stride;
  __device__ float operator()(int b, int64_t row, int64_t col) const {
    return data[b * batch_stride + row * row_stride + col * col_stride];
  }
};

/// The bases [E, d, r] seen as a [(e, a), i] matrix: element (e*r + a, i) = U[e, i, a].
struct BasesByColumn {
  const float* bases;
  int dim, rank;
  __device__ float operator()(int, int64_t k, int64_t i) const {
    const int64_t e = k / rank;
    const int64_t a = k - e * rank;
    return bases[(e * dim + i) * rank + a];
  }
};

struct StoreStrided {
  float* data;
  int64_t batch_stride, row_stride, col_stride;
  __device__ void operator()(int b, int64_t row, int64_t col, float v) const {
    data[b * batch_stride + row * row_stride + col * col_stride] = v;
  }
};

/// grad_x[t, i] = acc − β[t] x[t, i]: the ||x|| part of the score derivative.
struct StoreGradTokens {
  float* grad_tokens;
  const float* tokens;
  const float* beta;
  int dim;
  __device__ void operator()(int, int64_t t, int64_t i, float v) const {
    grad_tokens[t * dim + i] = v - beta[t] * tokens[t * dim + i];
  }
};

/// C[b] = A[b] · B[b] for [M, K] x [K, N], batch on blockIdx.z; 16x16 shared-memory tiles,
/// one output per thread, accumulation in K order (deterministic).
template <typename LoadA, typename LoadB, typename Store>
__global__ void __launch_bounds__(kThreads)
    gemm_kernel(LoadA a, LoadB b, Store store, int64_t m_size, int64_t n_size, int64_t k_size) {
  __shared__ float s_a[kGemmTile][kGemmTile + 1];
  __shared__ float s_b[kGemmTile][kGemmTile + 1];
  const int batch = blockIdx.z;
  const int ty = threadIdx.x / kGemmTile;
  const int tx = threadIdx.x % kGemmTile;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kGemmTile + ty;  // rows on x: T can be large
  const int64_t col = static_cast<int64_t>(blockIdx.y) * kGemmTile + tx;
  float acc = 0.f;
  for (int64_t k0 = 0; k0 < k_size; k0 += kGemmTile) {
    s_a[ty][tx] = (row < m_size && k0 + tx < k_size) ? a(batch, row, k0 + tx) : 0.f;
    s_b[ty][tx] = (k0 + ty < k_size && col < n_size) ? b(batch, k0 + ty, col) : 0.f;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kGemmTile; ++kk) acc = fmaf(s_a[ty][kk], s_b[kk][tx], acc);
    __syncthreads();
  }
  if (row < m_size && col < n_size) store(batch, row, col, acc);
}

/// One warp per token: turns P[t, e, :] = U_eᵀ x_t into Q[t, e, :] = c_te P[t, e, :] with
/// c_te = g_te / (||p|| ||x||), and β_t = Σ_e g_te s_te / ||x||² (clamped norms as in the
/// CPU reference; the clamp's gradient is 0 where it is active, so a zero token gets 0).
__global__ void __launch_bounds__(kThreads)
    scores_backward_scale_kernel(const float* __restrict__ tokens, const float* __restrict__ grad_scores,
                                 int64_t num_tokens, int dim, int num_experts, int rank,
                                 float* __restrict__ projections,  // [T, E, r] in: P, out: Q
                                 float* __restrict__ beta) {       // [T]
  const int lane = threadIdx.x % kWarpSize;
  for (int64_t t = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarpSize; t < num_tokens;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x / kWarpSize) {
    const float* x = tokens + t * dim;
    float norm_sq = 0.f;
    for (int i = lane; i < dim; i += kWarpSize) norm_sq = fmaf(x[i], x[i], norm_sq);
    norm_sq = warp_sum(norm_sq);
    const bool token_live = norm_sq >= kNormFloorSq;
    const float norm = sqrtf(fmaxf(norm_sq, kNormFloorSq));
    float beta_t = 0.f;
    for (int e = 0; e < num_experts; ++e) {
      float* p = projections + (t * num_experts + e) * rank;
      float p_sq = 0.f;
      for (int a = lane; a < rank; a += kWarpSize) p_sq = fmaf(p[a], p[a], p_sq);
      p_sq = warp_sum(p_sq);
      const float g = grad_scores[t * num_experts + e];
      const float p_norm = sqrtf(fmaxf(p_sq, kNormFloorSq));
      const float c = (token_live && p_sq >= kNormFloorSq) ? g / (p_norm * norm) : 0.f;
      for (int a = lane; a < rank; a += kWarpSize) p[a] *= c;
      beta_t += g * (p_norm / norm);
    }
    if (lane == 0) beta[t] = token_live ? beta_t / norm_sq : 0.f;
  }
}

// ---- launch helpers ----------------------------------------------------------------------

int grid_for(int64_t work_items, int64_t items_per_block) {
  const int64_t blocks = (work_items + items_per_block - 1) / items_per_block;
  return static_cast<int>(blocks < 1 ? 1 : (blocks > 65535 * 16 ? 65535 * 16 : blocks));
}

size_t fused_smem_bytes(const RoutingShape& s, int tile_tokens) {
  const int dim_pad = round_up4(static_cast<int>(s.dim));
  return sizeof(float) * (static_cast<size_t>(tile_tokens) * dim_pad + static_cast<size_t>(dim_pad) * kChunkColumns +
                          static_cast<size_t>(tile_tokens) * s.num_experts + tile_tokens) +
         sizeof(int) * static_cast<size_t>(s.num_experts);
}

int64_t tiles_of(int64_t num_tokens, int tile_tokens) { return (num_tokens + tile_tokens - 1) / tile_tokens; }

/// 64-token tiles (fewer restagings of the bases) unless that leaves fewer than two blocks
/// per SM, then 16-token tiles (e.g. one scan of 2016 tokens: 126 blocks instead of 32).
/// Both launches of the forward routing call this and get the same answer.
int choose_tile_tokens(const RoutingShape& s) {
  int device = 0;
  int sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
    return kMaxTileTokens;
  return tiles_of(s.num_tokens, kMaxTileTokens) >= 2 * static_cast<int64_t>(sms) ? kMaxTileTokens : kSmallTileTokens;
}

template <int kDim, int kTokensPerWarp>
cudaError_t launch_fused_tile(const float* tokens, const float* bases, const RoutingShape& s, double top_d,
                              const RoutingBuffers& out, cudaStream_t stream) {
  constexpr int kTile = kTokensPerWarp * kWarps;
  const size_t smem = fused_smem_bytes(s, kTile);
  auto* kernel = &score_topk_count_kernel<kDim, kTokensPerWarp>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  kernel<<<static_cast<unsigned>(tiles_of(s.num_tokens, kTile)), kThreads, smem, stream>>>(
      tokens, bases, static_cast<int>(s.num_tokens), static_cast<int>(s.dim), static_cast<int>(s.num_experts),
      static_cast<int>(s.rank), static_cast<int>(s.top_k), top_d, out.scores, out.expert_ids, out.weights,
      reinterpret_cast<unsigned long long*>(out.counts), static_cast<int*>(out.workspace));
  return cudaGetLastError();
}

template <int kDim>
cudaError_t launch_fused(const float* tokens, const float* bases, const RoutingShape& s, double top_d,
                         const RoutingBuffers& out, cudaStream_t stream) {
  if (choose_tile_tokens(s) == kMaxTileTokens)
    return launch_fused_tile<kDim, kMaxTileTokens / kWarps>(tokens, bases, s, top_d, out, stream);
  return launch_fused_tile<kDim, kSmallTileTokens / kWarps>(tokens, bases, s, top_d, out, stream);
}

template <typename LoadA, typename LoadB, typename Store>
cudaError_t launch_gemm(LoadA a, LoadB b, Store store, int64_t m, int64_t n, int64_t k, int batches,
                        cudaStream_t stream) {
  const int64_t n_tiles = (n + kGemmTile - 1) / kGemmTile;
  if (n_tiles > 65535 || batches > 65535) return cudaErrorInvalidValue;  // grid y/z limits
  const dim3 grid(static_cast<unsigned>((m + kGemmTile - 1) / kGemmTile), static_cast<unsigned>(n_tiles),
                  static_cast<unsigned>(batches));
  gemm_kernel<<<grid, kThreads, 0, stream>>>(a, b, store, m, n, k);
  return cudaGetLastError();
}

}  // namespace

// ---- host entry points ---------------------------------------------------------------------

const char* routing_shape_problem(const RoutingShape& s) {
  if (s.num_tokens < 0) return "routing kernels: negative token count";
  if (s.dim < 1 || s.rank < 1) return "routing kernels: d and r must be at least 1";
  if (s.num_experts < 1 || s.num_experts > kMaxExperts) return "routing kernels: need 1 <= E <= 64";
  if (s.top_k < 1 || s.top_k > s.num_experts || s.top_k > kMaxTopK)
    return "routing kernels: need 1 <= k <= min(E, 8)";
  if (s.num_tokens * s.top_k >= (int64_t{1} << 31) || s.num_tokens * s.dim >= (int64_t{1} << 40))
    return "routing kernels: T*k must stay below 2^31 and T*d below 2^40";
  int device = 0;
  int optin = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
    return "routing kernels: no usable CUDA device";
  if (fused_smem_bytes(s, kMaxTileTokens) > static_cast<size_t>(optin))
    return "routing kernels: d too large for the shared-memory token tile on this device (64*d + 32*d floats)";
  return nullptr;
}

size_t routing_workspace_bytes(const RoutingShape& s) {
  // Enough per-tile counts for the smaller tile.
  const int64_t tiles = tiles_of(s.num_tokens, kSmallTileTokens);
  return sizeof(int) * static_cast<size_t>(tiles > 0 ? tiles : 1) * static_cast<size_t>(s.num_experts);
}

cudaError_t launch_score_topk_count(const float* tokens, const float* bases, const RoutingShape& s,
                                    double top_d_threshold, const RoutingBuffers& out, cudaStream_t stream) {
  if (routing_shape_problem(s)) return cudaErrorInvalidValue;
  // [E] counts are accumulated with atomics.
  cudaError_t err = cudaMemsetAsync(out.counts, 0, sizeof(int64_t) * s.num_experts, stream);
  if (err != cudaSuccess || s.num_tokens == 0) return err;
  switch (s.dim) {
    case 96: return launch_fused<96>(tokens, bases, s, top_d_threshold, out, stream);
    case 192: return launch_fused<192>(tokens, bases, s, top_d_threshold, out, stream);
    case 256: return launch_fused<256>(tokens, bases, s, top_d_threshold, out, stream);
    default: return launch_fused<0>(tokens, bases, s, top_d_threshold, out, stream);
  }
}

cudaError_t launch_offsets_permutation(const RoutingShape& s, const RoutingBuffers& out, cudaStream_t stream) {
  if (routing_shape_problem(s)) return cudaErrorInvalidValue;
  if (s.num_tokens == 0) return cudaMemsetAsync(out.offsets, 0, sizeof(int64_t) * (s.num_experts + 1), stream);
  const int tile_tokens = choose_tile_tokens(s);
  offsets_permutation_kernel<<<static_cast<unsigned>(tiles_of(s.num_tokens, tile_tokens)), kThreads, 0, stream>>>(
      out.expert_ids, out.counts, static_cast<const int*>(out.workspace), static_cast<int>(s.num_tokens),
      static_cast<int>(s.num_experts), static_cast<int>(s.top_k), tile_tokens, out.offsets, out.permutation,
      out.inverse_permutation);
  return cudaGetLastError();
}

cudaError_t route_forward(const float* tokens, const float* bases, const RoutingShape& s, double top_d_threshold,
                          const RoutingBuffers& out, cudaStream_t stream) {
  const cudaError_t err = launch_score_topk_count(tokens, bases, s, top_d_threshold, out, stream);
  if (err != cudaSuccess) return err;
  return launch_offsets_permutation(s, out, stream);
}

cudaError_t invert_permutation(const int64_t* permutation, int64_t n, int64_t* inverse, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  invert_permutation_kernel<<<grid_for(n, kThreads * 4), kThreads, 0, stream>>>(permutation, n, inverse);
  return cudaGetLastError();
}

cudaError_t gather_rows(const float* tokens, const int64_t* permutation, int64_t num_tokens, int64_t dim,
                        int64_t top_k, float* out, cudaStream_t stream) {
  const int64_t rows = num_tokens * top_k;
  if (rows == 0 || dim == 0) return cudaSuccess;
  gather_rows_kernel<<<grid_for(rows * dim, kThreads * 4), kThreads, 0, stream>>>(
      tokens, permutation, rows, static_cast<int>(dim), static_cast<int>(top_k), out);
  return cudaGetLastError();
}

cudaError_t gather_rows_backward(const float* grad_out, const int64_t* inverse_permutation, int64_t num_tokens,
                                 int64_t dim, int64_t top_k, float* grad_tokens, cudaStream_t stream) {
  if (num_tokens == 0 || dim == 0) return cudaSuccess;
  gather_rows_backward_kernel<<<grid_for(num_tokens * dim, kThreads * 4), kThreads, 0, stream>>>(
      grad_out, inverse_permutation, num_tokens, static_cast<int>(dim), static_cast<int>(top_k), grad_tokens);
  return cudaGetLastError();
}

cudaError_t combine(const float* expert_outputs, const float* weights, const int64_t* inverse_permutation,
                    int64_t num_tokens, int64_t dim, int64_t top_k, float* out, cudaStream_t stream) {
  if (num_tokens == 0 || dim == 0) return cudaSuccess;
  combine_kernel<<<grid_for(num_tokens * dim, kThreads * 4), kThreads, 0, stream>>>(
      expert_outputs, weights, inverse_permutation, num_tokens, static_cast<int>(dim), static_cast<int>(top_k), out);
  return cudaGetLastError();
}

cudaError_t combine_backward(const float* grad_out, const float* expert_outputs, const float* weights,
                             const int64_t* permutation, const int64_t* inverse_permutation, int64_t num_tokens,
                             int64_t dim, int64_t top_k, float* grad_expert_outputs, float* grad_weights,
                             cudaStream_t stream) {
  const int64_t slots = num_tokens * top_k;
  if (slots == 0) return cudaSuccess;
  if (grad_expert_outputs && dim > 0) {
    combine_backward_outputs_kernel<<<grid_for(slots * dim, kThreads * 4), kThreads, 0, stream>>>(
        grad_out, weights, permutation, slots, static_cast<int>(dim), static_cast<int>(top_k), grad_expert_outputs);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  if (grad_weights) {
    combine_backward_weights_kernel<<<grid_for(slots, kWarps), kThreads, 0, stream>>>(
        grad_out, expert_outputs, inverse_permutation, slots, static_cast<int>(dim), static_cast<int>(top_k),
        grad_weights);
    return cudaGetLastError();
  }
  return cudaSuccess;
}

size_t scores_backward_workspace_bytes(const RoutingShape& s) {
  return sizeof(float) * static_cast<size_t>(s.num_tokens) * static_cast<size_t>(s.num_experts * s.rank + 1);
}

cudaError_t scores_backward(const float* tokens, const float* bases, const float* grad_scores, const RoutingShape& s,
                            float* grad_tokens, float* grad_bases, void* workspace, cudaStream_t stream) {
  if (routing_shape_problem(s)) return cudaErrorInvalidValue;
  const int64_t T = s.num_tokens, d = s.dim, E = s.num_experts, r = s.rank;
  if (T == 0) {
    return grad_bases ? cudaMemsetAsync(grad_bases, 0, sizeof(float) * E * d * r, stream) : cudaSuccess;
  }
  float* projections = static_cast<float*>(workspace);  // [T, E, r]
  float* beta = projections + T * E * r;                // [T]

  // P[t, e, a] = Σ_i x[t, i] U[e, i, a]: batch e, [T, d] x [d, r].
  cudaError_t err = launch_gemm(Strided{tokens, 0, d, 1}, Strided{bases, d * r, r, 1},
                                StoreStrided{projections, r, E * r, 1}, T, r, d, static_cast<int>(E), stream);
  if (err != cudaSuccess) return err;
  // Q = c ⊙ P, β.
  scores_backward_scale_kernel<<<grid_for(T, kWarps), kThreads, 0, stream>>>(
      tokens, grad_scores, T, static_cast<int>(d), static_cast<int>(E), static_cast<int>(r), projections, beta);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  // grad_x[t, i] = Σ_(e,a) Q[t, (e,a)] U[e, i, a] − β_t x[t, i]: [T, E*r] x [E*r, d].
  if (grad_tokens) {
    err = launch_gemm(Strided{projections, 0, E * r, 1}, BasesByColumn{bases, static_cast<int>(d), static_cast<int>(r)},
                      StoreGradTokens{grad_tokens, tokens, beta, static_cast<int>(d)}, T, d, E * r, 1, stream);
    if (err != cudaSuccess) return err;
  }
  // grad_U[e, i, a] = Σ_t x[t, i] Q[t, e, a]: batch e, [d, T] x [T, r].
  if (grad_bases) {
    err = launch_gemm(Strided{tokens, 0, 1, d}, Strided{projections, r, E * r, 1}, StoreStrided{grad_bases, d * r, r, 1},
                      d, r, T, static_cast<int>(E), stream);
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace brainage::model::cuda
