#pragma once
// The smallest transformer the model tests build: grid [Z, Y, X] = [8, 12, 16] voxels,
// 4-voxel patches (2 × 3 × 4 = 24 tokens), width 16, 3 ERMoE experts of rank 4. Shared by
// the checkpoint, ensemble and VBM tests so they exercise one configuration.
#include "model/model_options.h"

namespace brainage::testing {

/// A tiny ERMoE-ba model's options with `depth` transformer blocks (default 2).
inline brainage::model::ModelOptions tiny_model_options(int64_t depth = 2) {
  brainage::model::ModelOptions o;
  o.grid = {8, 12, 16};
  o.patch_size = 4;
  o.dim = 16;
  o.depth = depth;
  o.heads = 2;
  o.num_experts = 3;
  o.expert_rank = 4;
  o.expert_hidden = 8;
  o.ffn_hidden = 16;
  return o;
}

}  // namespace brainage::testing
