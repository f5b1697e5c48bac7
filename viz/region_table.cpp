#include "viz/region_table.h"

#include <itkIdentityTransform.h>
#include <itkImageRegionConstIterator.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "common/errors.h"
#include "viz/palette.h"

namespace brainage::viz {

CategoryMap load_atlas_on_grid(const std::filesystem::path& atlas, const std::filesystem::path& names_txt,
                               const itk::ImageBase<3>* grid) {
  const auto image = read_label_volume(atlas);
  std::ifstream in(names_txt);
  if (!in) throw InvalidInputError(names_txt.string() + ": cannot open atlas region names");
  CategoryMap map;
  map.names.assign(1, "outside_atlas");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    int value = 0;
    std::string name;
    if (!(ls >> value >> name)) continue;
    if (value <= 0 || value > 255)
      throw InvalidInputError(names_txt.string() + ": region value " + std::to_string(value) + " outside 1..255");
    if (static_cast<std::size_t>(value) >= map.names.size()) map.names.resize(static_cast<std::size_t>(value) + 1);
    map.names[static_cast<std::size_t>(value)] = name;
  }
  if (map.names.size() < 2) throw InvalidInputError(names_txt.string() + ": no \"value name\" lines");
  for (std::size_t v = 1; v < map.names.size(); ++v)
    if (map.names[v].empty()) map.names[v] = "region_" + std::to_string(v);

  using Resample = itk::ResampleImageFilter<LabelImageType, LabelImageType>;
  auto resample = Resample::New();
  resample->SetInput(image);
  resample->SetTransform(itk::IdentityTransform<double, 3>::New());  // atlas and grid share MNI space
  resample->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<LabelImageType, double>::New());
  resample->SetDefaultPixelValue(0);
  resample->SetSize(grid->GetLargestPossibleRegion().GetSize());
  resample->SetOutputStartIndex(grid->GetLargestPossibleRegion().GetIndex());
  resample->SetOutputSpacing(grid->GetSpacing());
  resample->SetOutputOrigin(grid->GetOrigin());
  resample->SetOutputDirection(grid->GetDirection());
  resample->Update();
  map.labels = resample->GetOutput();
  map.labels->DisconnectPipeline();
  for (itk::ImageRegionConstIterator<LabelImageType> it(map.labels, map.labels->GetLargestPossibleRegion());
       !it.IsAtEnd(); ++it)
    if (it.Get() >= map.names.size())
      throw InvalidInputError(atlas.string() + ": voxel value " + std::to_string(it.Get()) + " has no name in " +
                              names_txt.string());
  return map;
}

CategoryMap tissue_categories(const LabelImageType* tissue) {
  CategoryMap map;
  map.names = {"no_tissue", "CSF", "GM", "WM"};
  for (itk::ImageRegionConstIterator<LabelImageType> it(tissue, tissue->GetLargestPossibleRegion()); !it.IsAtEnd(); ++it)
    if (it.Get() > 3)
      throw InvalidInputError("tissue_mni2mm.nii.gz: value " + std::to_string(it.Get()) +
                              " outside 0 (background), 1 CSF, 2 GM, 3 WM");
  map.labels = LabelImageType::New();
  map.labels->Graft(tissue);
  return map;
}

Contingency cross_tabulate(const LabelImageType* experts, const CategoryMap& categories, int num_experts) {
  require_same_grid(experts, "expert map", categories.labels, "category map");
  Contingency counts(static_cast<std::size_t>(num_experts), std::vector<double>(categories.names.size(), 0.0));
  itk::ImageRegionConstIterator<LabelImageType> e(experts, experts->GetLargestPossibleRegion());
  itk::ImageRegionConstIterator<LabelImageType> c(categories.labels, categories.labels->GetLargestPossibleRegion());
  for (; !e.IsAtEnd(); ++e, ++c) {
    const int label = e.Get();
    if (label == 0) continue;
    if (label > num_experts)
      throw InvalidInputError("expert map: label " + std::to_string(label) + " above " + std::to_string(num_experts) +
                              " experts");
    counts[static_cast<std::size_t>(label - 1)][c.Get()] += 1.0;
  }
  return counts;
}

double normalised_mutual_information(const Contingency& counts) {
  double total = 0.0;
  std::vector<double> row(counts.size(), 0.0), col(counts.empty() ? 0 : counts[0].size(), 0.0);
  for (std::size_t i = 0; i < counts.size(); ++i)
    for (std::size_t j = 0; j < counts[i].size(); ++j) {
      row[i] += counts[i][j];
      col[j] += counts[i][j];
      total += counts[i][j];
    }
  if (total <= 0.0) return 0.0;
  auto entropy = [&](const std::vector<double>& m) {
    double h = 0.0;
    for (double v : m)
      if (v > 0.0) h -= (v / total) * std::log(v / total);
    return h;
  };
  const double he = entropy(row), hr = entropy(col);
  if (he <= 0.0 || hr <= 0.0) return 0.0;
  double mi = 0.0;
  for (std::size_t i = 0; i < counts.size(); ++i)
    for (std::size_t j = 0; j < counts[i].size(); ++j)
      if (counts[i][j] > 0.0) mi += (counts[i][j] / total) * std::log(counts[i][j] * total / (row[i] * col[j]));
  return std::clamp(2.0 * mi / (he + hr), 0.0, 1.0);
}

std::string share_csv(const std::vector<LayerTable>& tables, const CategoryMap& categories) {
  std::ostringstream o;
  o.precision(6);
  const std::size_t n = categories.names.size();
  o << "layer,expert,brain_tokens,token_share,brain_voxels";
  for (std::size_t c = 1; c < n; ++c) o << "," << categories.names[c];
  o << "," << categories.names[0] << "\n";
  for (const auto& t : tables) {
    double all_tokens = 0.0;
    for (auto v : t.brain_tokens) all_tokens += static_cast<double>(v);
    for (std::size_t e = 0; e < t.counts.size(); ++e) {
      double voxels = 0.0;
      for (double v : t.counts[e]) voxels += v;
      const double tokens = e < t.brain_tokens.size() ? static_cast<double>(t.brain_tokens[e]) : 0.0;
      o << t.layer << "," << expert_name(static_cast<int>(e)) << "," << tokens << ","
        << (all_tokens > 0 ? tokens / all_tokens : 0.0) << "," << voxels;
      auto cell = [&](std::size_t c) {
        o << ",";
        if (voxels > 0) o << t.counts[e][c] / voxels;
      };
      for (std::size_t c = 1; c < n; ++c) cell(c);
      cell(0);
      o << "\n";
    }
  }
  return o.str();
}

}  // namespace brainage::viz
