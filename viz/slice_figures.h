#pragma once
// 2D expert-map figures through VTK's imaging pipeline (vtkImageReslice →
// vtkImageMapToColors → vtkImageBlend, text by FreeType, vtkPNGWriter): no display needed.
//   ortho:  sagittal, coronal and axial views through one MNI point, anatomy in grey,
//           expert colours at partial opacity with each territory outlined, legend.
//   mosaic: evenly spaced axial slices through the brain.
// Convention: neurological (the subject's left on the left of the image), anterior up in
// axial views, anterior on the left in the sagittal view; every panel carries its
// orientation letters and its MNI coordinate.
#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "viz/palette.h"
#include "viz/volume_io.h"

namespace brainage::viz {

/// What a figure shows: model-grid volumes sharing one grid.
struct ExpertOverlay {
  const ImageType* anatomy{nullptr};         // t1_mni2mm
  const LabelImageType* brain_mask{nullptr}; // brain_mask_mni2mm
  const LabelImageType* labels{nullptr};     // expert map, 0 / 1..E
  int num_experts{0};
  std::vector<double> token_share;           // per expert, shown in the legend
  std::string title;                         // first line of the figure
  std::string subtitle;                      // second line (scan, layer rule)
};

enum class Plane { kSagittal, kCoronal, kAxial };

/// Where a panel landed on the page and how RAS millimetres map to its pixels.
struct PanelLayout {
  Plane plane{Plane::kAxial};
  double slice_mm{0.0};    // MNI coordinate of the slice along the panel's normal
  int x{0}, y{0}, w{0}, h{0};  // pixels, top-left origin
  int h_axis{0}, v_axis{1};    // RAS axes along the panel's width and height
  int h_sign{1}, v_sign{1};    // +1: coordinate grows rightwards / upwards
  double h0_mm{0.0}, v0_mm{0.0}, mm_per_pixel{1.0};  // (signed) coordinate of pixel centre 0

  /// Page pixel {x, y} showing RAS point `ras_mm`, or nullopt outside the panel.
  std::optional<std::array<int, 2>> pixel_of(const std::array<double, 3>& ras_mm) const;
};

struct FigureLayout {
  std::vector<PanelLayout> panels;
  std::vector<std::array<int, 4>> legend_swatches;  // per expert: x, y, w, h
};

struct OrthoFigureOptions {
  /** PNG width in pixels. Default = 1800. */
  int width{1800};
  /** PNG height in pixels. Default = 760. */
  int height{760};
  /** Opacity of the expert colours over the anatomy, 0..1. Default = 0.55. */
  double label_opacity{0.55};
  /** Outline each territory in its full colour. Default = true. */
  bool outlines{true};
  /** MNI point (mm) the three planes pass through. Default = brain-mask centroid. */
  std::optional<std::array<double, 3>> cut_mm{};
};

struct MosaicFigureOptions {
  /** PNG width in pixels. Default = 1600. */
  int width{1600};
  /** PNG height in pixels. Default = 1280. */
  int height{1280};
  /** Number of axial slices. Default = 12. */
  int slices{12};
  /** Slices per row. Default = 4. */
  int columns{4};
  /** Opacity of the expert colours over the anatomy, 0..1. Default = 0.55. */
  double label_opacity{0.55};
  /** Outline each territory in its full colour. Default = true. */
  bool outlines{true};
};

/// Renders the three-view figure to `png`; returns where everything landed.
FigureLayout render_ortho_figure(const ExpertOverlay& overlay, const OrthoFigureOptions& options,
                                 const std::filesystem::path& png);

/// Renders the axial mosaic to `png`.
FigureLayout render_mosaic_figure(const ExpertOverlay& overlay, const MosaicFigureOptions& options,
                                  const std::filesystem::path& png);

}  // namespace brainage::viz
