#include "preprocessing/qc_image.h"

#include <itkImageFileWriter.h>
#include <itkImageRegionConstIteratorWithIndex.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkNearestNeighborInterpolateImageFunction.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "preprocessing/mask_metrics.h"
#include "preprocessing/mask_operations.h"

namespace brainage::preprocessing {
namespace {

constexpr unsigned kTile = 256;
using Point = ImageType::PointType;
using Vec = itk::Vector<double, 3>;

struct View {
  Vec u, v;  // LPS unit vectors of the tile's columns (left->right) and rows (top->bottom)
};

// Patient right on the left of the picture (+x LPS to the right), anterior/superior up.
const View kViews[3] = {
    {Vec{std::array<double, 3>{1, 0, 0}.data()}, Vec{std::array<double, 3>{0, 1, 0}.data()}},   // axial
    {Vec{std::array<double, 3>{1, 0, 0}.data()}, Vec{std::array<double, 3>{0, 0, -1}.data()}},  // coronal
    {Vec{std::array<double, 3>{0, -1, 0}.data()}, Vec{std::array<double, 3>{0, 0, -1}.data()}}, // sagittal
};

double percentile(std::vector<float> values, double q) {
  if (values.empty()) return 1.0;
  const auto k = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
  return values[k];
}

/// Samples `image` on a tile centred at `centre`, `fov` mm wide; writes grey levels.
std::vector<float> sample(const ImageType* image, const Point& centre, const View& view, double fov) {
  auto interp = itk::LinearInterpolateImageFunction<ImageType, double>::New();
  interp->SetInputImage(image);
  std::vector<float> out(kTile * kTile, 0.f);
  const double step = fov / kTile;
  for (unsigned r = 0; r < kTile; ++r)
    for (unsigned c = 0; c < kTile; ++c) {
      Point p = centre + view.u * ((c + 0.5 - kTile / 2.0) * step) + view.v * ((r + 0.5 - kTile / 2.0) * step);
      itk::ContinuousIndex<double, 3> ci;
      if (image->TransformPhysicalPointToContinuousIndex(p, ci) && interp->IsInsideBuffer(ci))
        out[r * kTile + c] = static_cast<float>(interp->EvaluateAtContinuousIndex(ci));
    }
  return out;
}

std::vector<unsigned char> sample_mask(const MaskType* mask, const Point& centre, const View& view, double fov) {
  std::vector<unsigned char> out(kTile * kTile, 0);
  const double step = fov / kTile;
  for (unsigned r = 0; r < kTile; ++r)
    for (unsigned c = 0; c < kTile; ++c) {
      Point p = centre + view.u * ((c + 0.5 - kTile / 2.0) * step) + view.v * ((r + 0.5 - kTile / 2.0) * step);
      MaskType::IndexType idx;
      if (mask->TransformPhysicalPointToIndex(p, idx)) out[r * kTile + c] = mask->GetPixel(idx) ? 1 : 0;
    }
  return out;
}

std::vector<unsigned char> outline(const std::vector<unsigned char>& m) {
  std::vector<unsigned char> edge(m.size(), 0);
  for (unsigned r = 1; r + 1 < kTile; ++r)
    for (unsigned c = 1; c + 1 < kTile; ++c) {
      const auto i = r * kTile + c;
      if (m[i] && (!m[i - 1] || !m[i + 1] || !m[i - kTile] || !m[i + kTile])) edge[i] = 1;
    }
  return edge;
}

void paste(RGBImageType* canvas, unsigned col, unsigned row, const std::vector<float>& grey, double hi,
           const std::vector<unsigned char>& overlay, itk::RGBPixel<unsigned char> colour) {
  for (unsigned r = 0; r < kTile; ++r)
    for (unsigned c = 0; c < kTile; ++c) {
      const auto i = r * kTile + c;
      RGBImageType::IndexType idx{{static_cast<itk::IndexValueType>(col * kTile + c),
                                   static_cast<itk::IndexValueType>(row * kTile + r)}};
      itk::RGBPixel<unsigned char> px;
      if (!overlay.empty() && overlay[i]) {
        px = colour;
      } else {
        const double g = std::clamp(grey[i] / (hi > 0 ? hi : 1.0), 0.0, 1.0) * 255.0;
        px.Fill(static_cast<unsigned char>(g));
      }
      canvas->SetPixel(idx, px);
    }
}

/// The mask's centroid (mask_metrics.h); the image centre for an empty mask.
Point centroid_or_centre(const MaskType* mask) {
  if (any_set(mask)) return mask_centroid(mask);
  itk::ContinuousIndex<double, 3> mid;
  for (unsigned d = 0; d < 3; ++d) mid[d] = 0.5 * (mask->GetLargestPossibleRegion().GetSize()[d] - 1);
  Point p;
  mask->TransformContinuousIndexToPhysicalPoint(mid, p);
  return p;
}

}  // namespace

RGBImageType::Pointer render_qc_image(const ImageType* native, const MaskType* native_mask, const ImageType* model_t1,
                                      const ImageType* template_model) {
  auto canvas = RGBImageType::New();
  RGBImageType::SizeType size{{3 * kTile, 2 * kTile}};
  canvas->SetRegions(RGBImageType::RegionType(size));
  canvas->Allocate();
  const itk::RGBPixel<unsigned char> red{std::array<unsigned char, 3>{255, 40, 40}.data()};
  const itk::RGBPixel<unsigned char> green{std::array<unsigned char, 3>{40, 255, 40}.data()};

  // Top row: native scan + mask outline.
  const Point centre = centroid_or_centre(native_mask);
  std::vector<float> brain_values;
  {
    itk::ImageRegionConstIteratorWithIndex<ImageType> i(native, native->GetLargestPossibleRegion());
    itk::ImageRegionConstIteratorWithIndex<MaskType> m(native_mask, native_mask->GetLargestPossibleRegion());
    for (; !i.IsAtEnd(); ++i, ++m)
      if (m.Get()) brain_values.push_back(i.Get());
  }
  const double native_hi = 1.3 * percentile(brain_values, 0.99);
  for (unsigned v = 0; v < 3; ++v) {
    const auto grey = sample(native, centre, kViews[v], 240.0);
    const auto edge = outline(sample_mask(native_mask, centre, kViews[v], 240.0));
    paste(canvas, v, 0, grey, native_hi, edge, red);
  }

  // Bottom row: model-grid brain + template edges.
  itk::ContinuousIndex<double, 3> mid;
  for (unsigned d = 0; d < 3; ++d) mid[d] = 0.5 * (model_t1->GetLargestPossibleRegion().GetSize()[d] - 1);
  Point model_centre;
  model_t1->TransformContinuousIndexToPhysicalPoint(mid, model_centre);
  for (unsigned v = 0; v < 3; ++v) {
    const auto grey = sample(model_t1, model_centre, kViews[v], 200.0);
    const auto tmpl = sample(template_model, model_centre, kViews[v], 200.0);
    // Template edges: gradient magnitude of the template tile above its 88th percentile.
    std::vector<float> grad(tmpl.size(), 0.f);
    for (unsigned r = 1; r + 1 < kTile; ++r)
      for (unsigned c = 1; c + 1 < kTile; ++c) {
        const auto i = r * kTile + c;
        const double gx = tmpl[i + 1] - tmpl[i - 1], gy = tmpl[i + kTile] - tmpl[i - kTile];
        grad[i] = static_cast<float>(std::sqrt(gx * gx + gy * gy));
      }
    const double t = percentile(grad, 0.88);
    std::vector<unsigned char> edge(grad.size(), 0);
    for (std::size_t i = 0; i < grad.size(); ++i) edge[i] = grad[i] > t && t > 0;
    std::vector<float> model_values(grey.begin(), grey.end());
    paste(canvas, v, 1, grey, 1.2, edge, green);
  }
  return canvas;
}

void write_png(const RGBImageType* image, const std::filesystem::path& path) {
  write_via_temp(path, [&](const std::filesystem::path& tmp) {
    auto writer = itk::ImageFileWriter<RGBImageType>::New();
    writer->SetInput(image);
    writer->SetFileName(tmp.string());
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& e) {
      throw OutputError(path.string() + ": cannot write PNG (" + e.GetDescription() + ")");
    }
  });
}

}  // namespace brainage::preprocessing
