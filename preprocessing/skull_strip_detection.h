#pragma once
// Recognises inputs that are already skull-stripped (common in shared datasets): a
// stripped brain is a compact foreground of ≤ max_foreground_ml surrounded by exact (or
// near) zeros, while a head with skull, scalp and neck has a foreground of 2.5–6 L. A
// stripped brain also sits inside its field of view; a scan whose field of view cuts
// through the head (only the top of the head, or the vertex cut off) has a small
// foreground too, but a whole cross-section of it on one face of the voxel box: that is
// never taken for a stripped brain.
#include <string>

#include "preprocessing/image_types.h"

namespace brainage::preprocessing {

struct SkullStripDetectionOptions {
  /** Foreground = voxels above this fraction of the 99th intensity percentile. Default = 0.05. */
  double foreground_fraction{0.05};
  /** Largest foreground volume (mL) still taken for a stripped brain. Default = 2300. */
  double max_foreground_ml{2300.0};
  /** Smallest fraction of the field of view that must be exactly background (≤ 1e-6 of the max). Default = 0.3. */
  double min_zero_fraction{0.3};
  /** Largest foreground fraction of any of the six faces of the voxel box of a stripped brain. Default = 0.05. */
  double max_face_foreground_fraction{0.05};
};

struct SkullStripEvidence {
  bool skull_stripped{false};
  double foreground_ml{0};
  double zero_fraction{0};
  double max_face_foreground_fraction{0};  // the face of the voxel box with most foreground
  std::string reason;  // one line for the report
};

/// Never throws.
SkullStripEvidence detect_skull_stripped(const ImageType* image, const SkullStripDetectionOptions& options = {});

}  // namespace brainage::preprocessing
