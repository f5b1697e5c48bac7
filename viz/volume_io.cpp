#include "viz/volume_io.h"

#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>

#include <cmath>
#include <sstream>

#include "common/atomic_file.h"
#include "common/errors.h"

namespace brainage::viz {

namespace {
template <typename TImage>
typename TImage::Pointer read(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) throw InvalidInputError(path.string() + ": file not found");
  auto reader = itk::ImageFileReader<TImage>::New();
  reader->SetFileName(path.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    throw InvalidInputError(path.string() + ": cannot read volume (" + e.GetDescription() + ")");
  }
  typename TImage::Pointer image = reader->GetOutput();
  image->DisconnectPipeline();
  return image;
}

template <typename TImage>
void write(const TImage* image, const std::filesystem::path& path) {
  write_via_temp(path, [&](const std::filesystem::path& tmp) {
    auto writer = itk::ImageFileWriter<TImage>::New();
    writer->SetInput(image);
    writer->SetFileName(tmp.string());
    writer->UseCompressionOn();
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& e) {
      throw OutputError(path.string() + ": cannot write volume (" + e.GetDescription() + ")");
    }
  });
}

std::string size_text(const itk::ImageBase<3>* im) {
  const auto s = im->GetLargestPossibleRegion().GetSize();
  return std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]);
}
}  // namespace

ImageType::Pointer read_float_volume(const std::filesystem::path& path) { return read<ImageType>(path); }
LabelImageType::Pointer read_label_volume(const std::filesystem::path& path) { return read<LabelImageType>(path); }
void write_volume(const ImageType* image, const std::filesystem::path& path) { write(image, path); }
void write_volume(const LabelImageType* image, const std::filesystem::path& path) { write(image, path); }

void require_same_grid(const itk::ImageBase<3>* a, const std::string& a_name, const itk::ImageBase<3>* b,
                       const std::string& b_name, double tolerance) {
  if (a->GetLargestPossibleRegion().GetSize() != b->GetLargestPossibleRegion().GetSize())
    throw InvalidInputError(b_name + ": size " + size_text(b) + " differs from " + a_name + " size " + size_text(a));
  for (unsigned i = 0; i < 3; ++i) {
    bool same = std::abs(a->GetSpacing()[i] - b->GetSpacing()[i]) <= tolerance &&
                std::abs(a->GetOrigin()[i] - b->GetOrigin()[i]) <= tolerance;
    for (unsigned j = 0; j < 3; ++j)
      same = same && std::abs(a->GetDirection()(i, j) - b->GetDirection()(i, j)) <= tolerance;
    if (!same) throw InvalidInputError(b_name + ": spacing/origin/direction differ from " + a_name + " (same grid required)");
  }
}

}  // namespace brainage::viz
