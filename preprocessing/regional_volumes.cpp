#include "preprocessing/regional_volumes.h"

#include <itkImageRegionConstIterator.h>
#include <itkImageRegionIteratorWithIndex.h>

#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "preprocessing/model_grid.h"

namespace brainage::preprocessing {

ModelGridAtlas load_model_grid_atlas(const std::filesystem::path& atlas_image, const std::filesystem::path& names_file) {
  ModelGridAtlas atlas;
  std::ifstream in(names_file);
  if (!in) throw InvalidInputError(names_file.string() + ": atlas names file cannot be opened");
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::istringstream fields(line);
    AtlasRegion region;
    if (!(fields >> region.label >> region.name) || region.label <= 0 || region.label > 65535)
      throw InvalidInputError(names_file.string() + ": line " + std::to_string(line_number) +
                              " is not \"<label 1-65535> <name> ...\"");
    atlas.regions.push_back(region);
  }
  if (atlas.regions.empty()) throw InvalidInputError(names_file.string() + ": names no atlas region");

  const auto source = read_image(atlas_image);  // throws InvalidInputError naming the file
  atlas.labels = LabelImageType::New();
  const auto grid = make_model_grid_mask();
  atlas.labels->CopyInformation(grid);
  atlas.labels->SetRegions(grid->GetLargestPossibleRegion());
  atlas.labels->Allocate();
  atlas.labels->FillBuffer(0);
  itk::ImageRegionIteratorWithIndex<LabelImageType> it(atlas.labels, atlas.labels->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) {
    LabelImageType::PointType point;
    atlas.labels->TransformIndexToPhysicalPoint(it.GetIndex(), point);
    ImageType::IndexType index;
    if (!source->TransformPhysicalPointToIndex(point, index)) continue;  // nearest neighbour
    const float value = source->GetPixel(index);
    if (value > 0 && value <= 65535) it.Set(static_cast<unsigned short>(std::lround(value)));
  }
  return atlas;
}

const ModelGridAtlas& load_aal_atlas(const std::filesystem::path& template_dir) {
  static std::mutex mutex;
  static std::map<std::filesystem::path, ModelGridAtlas> cache;  // node-based: references stay valid
  std::lock_guard<std::mutex> lock(mutex);
  const auto found = cache.find(template_dir);
  if (found != cache.end()) return found->second;
  auto atlas = load_model_grid_atlas(template_dir / "aal.nii.gz", template_dir / "aal.nii.txt");
  return cache[template_dir] = std::move(atlas);
}

std::vector<RegionVolume> regional_volumes(const std::array<ImageType::Pointer, 3>& modulated,
                                           const ModelGridAtlas& atlas) {
  for (int c = 0; c < 3; ++c)
    if (!modulated[c] || !is_model_grid(modulated[c]))
      throw ProcessingError("regional volumes: the modulated tissue maps must be on the model grid");
  if (!atlas.labels || !is_model_grid(atlas.labels))
    throw ProcessingError("regional volumes: the atlas must be sampled on the model grid");
  std::map<int, std::size_t> row;
  std::vector<RegionVolume> out;
  for (const auto& region : atlas.regions) {
    row[region.label] = out.size();
    out.push_back({region.label, region.name, {}, 0});
  }
  itk::ImageRegionConstIterator<LabelImageType> l(atlas.labels, atlas.labels->GetLargestPossibleRegion());
  std::array<itk::ImageRegionConstIterator<ImageType>, 3> m{
      itk::ImageRegionConstIterator<ImageType>(modulated[0], modulated[0]->GetLargestPossibleRegion()),
      itk::ImageRegionConstIterator<ImageType>(modulated[1], modulated[1]->GetLargestPossibleRegion()),
      itk::ImageRegionConstIterator<ImageType>(modulated[2], modulated[2]->GetLargestPossibleRegion())};
  for (; !l.IsAtEnd(); ++l, ++m[0], ++m[1], ++m[2]) {
    const auto found = row.find(l.Get());
    if (found == row.end()) continue;
    auto& r = out[found->second];
    ++r.voxels;
    for (int c = 0; c < 3; ++c) r.ml[c] += m[c].Get();
  }
  return out;
}

void write_regional_volumes_csv(const std::vector<RegionVolume>& volumes, const std::filesystem::path& path) {
  std::ostringstream csv;
  csv << "label,region,csf_ml,gm_ml,wm_ml,voxels\n";
  char numbers[128];
  for (const auto& v : volumes) {
    std::snprintf(numbers, sizeof numbers, "%.4f,%.4f,%.4f,%zu", v.ml[0], v.ml[1], v.ml[2], v.voxels);
    csv << v.label << ',' << v.name << ',' << numbers << '\n';
  }
  write_file_atomic(path, csv.str());
}

}  // namespace brainage::preprocessing
