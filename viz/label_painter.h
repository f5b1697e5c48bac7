#pragma once
// Paints one layer's token routing into the model grid: every voxel of token t gets
// label expert[t] + 1 and score score[t], inside the brain mask; 0 outside.
#include "viz/routing_summary.h"
#include "viz/volume_io.h"

namespace brainage::viz {

struct PaintedLayer {
  LabelImageType::Pointer labels;  // uint8, 0 outside the brain mask, 1..E inside
  ImageType::Pointer scores;       // float, top-1 score inside the brain mask, 0 outside
};

/// `brain_mask` (non-zero = brain) defines the grid. Throws InvalidInputError if its size
/// is not token_grid × patch_size along each axis.
PaintedLayer paint_layer(const RoutingSummary& routing, const RoutingLayer& layer, const LabelImageType* brain_mask);

/// Tokens with at least one brain voxel, per expert (0-based index), for legend shares.
std::vector<std::size_t> brain_tokens_per_expert(const RoutingSummary& routing, const RoutingLayer& layer,
                                                 const LabelImageType* brain_mask);

}  // namespace brainage::viz
