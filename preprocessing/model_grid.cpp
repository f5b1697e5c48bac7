#include "preprocessing/model_grid.h"

#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>

#include <cmath>
#include <cstring>
#include <sstream>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "preprocessing/itk_error_text.h"
#include "preprocessing/itk_factories.h"

namespace brainage::preprocessing {
namespace {

template <typename TImage>
typename TImage::Pointer make_grid(typename TImage::PixelType fill) {
  auto image = TImage::New();
  typename TImage::SizeType size;
  typename TImage::SpacingType spacing;
  typename TImage::PointType origin;
  typename TImage::DirectionType direction;
  direction.SetIdentity();
  direction(0, 0) = -1;  // voxel x points Right (ITK world is LPS)
  direction(1, 1) = -1;  // voxel y points Anterior
  for (unsigned i = 0; i < 3; ++i) {
    size[i] = kModelGridSize[i];
    spacing[i] = kModelGridSpacing;
  }
  origin[0] = -kModelGridOriginRAS[0];  // RAS -> LPS
  origin[1] = -kModelGridOriginRAS[1];
  origin[2] = kModelGridOriginRAS[2];
  image->SetRegions(typename TImage::RegionType(size));
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  image->Allocate();
  image->FillBuffer(fill);
  return image;
}

template <typename TImage>
typename TImage::Pointer read_any(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw InvalidInputError(path.string() + ": file does not exist");
  ensure_itk_factories();
  auto reader = itk::ImageFileReader<TImage>::New();
  reader->SetFileName(path.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    throw InvalidInputError(path.string() + ": ITK cannot read the image (" + itk_error_text(e.GetDescription()) + ")");
  }
  typename TImage::Pointer image = reader->GetOutput();
  image->DisconnectPipeline();
  return image;
}

template <typename TImage>
void write_any(const TImage* image, const std::filesystem::path& path) {
  if (image == nullptr) throw OutputError(path.string() + ": no image to write");
  write_via_temp(path, [&](const std::filesystem::path& tmp) {
    auto writer = itk::ImageFileWriter<TImage>::New();
    writer->SetFileName(tmp.string());
    writer->SetInput(image);
    writer->SetUseCompression(true);
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& e) {
      throw OutputError(path.string() + ": ITK cannot write the image (" + itk_error_text(e.GetDescription()) + ")");
    }
  });
}

}  // namespace

ImageType::Pointer make_model_grid_image(float fill) { return make_grid<ImageType>(fill); }
MaskType::Pointer make_model_grid_mask(unsigned char fill) { return make_grid<MaskType>(fill); }

bool is_model_grid(const itk::ImageBase<3>* image) {
  if (image == nullptr) return false;
  const auto ref = make_model_grid_mask();
  const auto size = image->GetLargestPossibleRegion().GetSize();
  for (unsigned i = 0; i < 3; ++i) {
    if (size[i] != kModelGridSize[i]) return false;
    if (std::abs(image->GetSpacing()[i] - kModelGridSpacing) > 1e-4) return false;
    if (std::abs(image->GetOrigin()[i] - ref->GetOrigin()[i]) > 1e-4) return false;
    for (unsigned j = 0; j < 3; ++j)
      if (std::abs(image->GetDirection()(i, j) - ref->GetDirection()(i, j)) > 1e-4) return false;
  }
  return true;
}

std::vector<float> image_to_buffer(const ImageType* image) {
  if (!is_model_grid(image)) {
    std::ostringstream msg;
    msg << "image_to_buffer: image is not on the model grid (" << kModelGridSize[0] << "x" << kModelGridSize[1]
        << "x" << kModelGridSize[2] << " at " << kModelGridSpacing << " mm, see preprocessing/model_grid.h)";
    throw ProcessingError(msg.str());
  }
  const std::size_t n = std::size_t{kModelGridSize[0]} * kModelGridSize[1] * kModelGridSize[2];
  std::vector<float> values(n);
  std::memcpy(values.data(), image->GetBufferPointer(), n * sizeof(float));
  return values;
}

ImageType::Pointer buffer_to_model_grid(const std::vector<float>& values) {
  const std::size_t n = std::size_t{kModelGridSize[0]} * kModelGridSize[1] * kModelGridSize[2];
  if (values.size() != n)
    throw ProcessingError("buffer_to_model_grid: got " + std::to_string(values.size()) + " values, the model grid has " +
                          std::to_string(n));
  auto image = make_model_grid_image();
  std::memcpy(image->GetBufferPointer(), values.data(), n * sizeof(float));
  return image;
}

ImageType::Pointer read_image(const std::filesystem::path& path) { return read_any<ImageType>(path); }
MaskType::Pointer read_mask(const std::filesystem::path& path) { return read_any<MaskType>(path); }
void write_image(const ImageType* image, const std::filesystem::path& path) { write_any<ImageType>(image, path); }
void write_mask(const MaskType* mask, const std::filesystem::path& path) { write_any<MaskType>(mask, path); }

}  // namespace brainage::preprocessing
