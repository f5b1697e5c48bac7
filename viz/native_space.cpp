#include "viz/native_space.h"

#include <itkMatrixOffsetTransformBase.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>
#include <itkTransformFileReader.h>
#include <itkTransformFileWriter.h>

#include "common/atomic_file.h"
#include "common/errors.h"

namespace brainage::viz {

AffineTransformType::Pointer read_mni_to_native_transform(const std::filesystem::path& tfm) {
  if (!std::filesystem::exists(tfm)) throw InvalidInputError(tfm.string() + ": transform file not found");
  auto reader = itk::TransformFileReaderTemplate<double>::New();
  reader->SetFileName(tfm.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    throw InvalidInputError(tfm.string() + ": cannot read ITK transform (" + e.GetDescription() + ")");
  }
  const auto* list = reader->GetTransformList();
  if (list->size() != 1)
    throw InvalidInputError(tfm.string() + ": expected one transform, found " + std::to_string(list->size()));
  using Base = itk::MatrixOffsetTransformBase<double, 3, 3>;
  const auto* base = dynamic_cast<const Base*>(list->front().GetPointer());
  if (!base)
    throw InvalidInputError(tfm.string() + ": transform " + list->front()->GetNameOfClass() +
                            " is not a matrix+offset (affine) transform");
  auto affine = AffineTransformType::New();
  affine->SetCenter(base->GetCenter());
  affine->SetMatrix(base->GetMatrix());
  affine->SetTranslation(base->GetTranslation());
  if (!affine->GetInverseTransform())
    throw InvalidInputError(tfm.string() + ": transform matrix is singular (not invertible)");
  return affine;
}

void write_transform(const AffineTransformType* transform, const std::filesystem::path& tfm) {
  write_via_temp(tfm, [&](const std::filesystem::path& tmp) {
    auto writer = itk::TransformFileWriterTemplate<double>::New();
    writer->SetInput(transform);
    writer->SetFileName(tmp.string());
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& e) {
      throw OutputError(tfm.string() + ": cannot write transform (" + e.GetDescription() + ")");
    }
  });
}

namespace {
template <typename TImage>
typename TImage::Pointer to_native(const TImage* mni, const AffineTransformType* mni_to_native,
                                   const itk::ImageBase<3>* reference) {
  auto inverse = AffineTransformType::New();
  if (!mni_to_native->GetInverse(inverse))
    throw ProcessingError("native_to_mni.tfm: transform is not invertible");
  auto resample = itk::ResampleImageFilter<TImage, TImage>::New();
  resample->SetInput(mni);
  resample->SetTransform(inverse);  // output (native) point -> input (MNI) point
  resample->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<TImage, double>::New());
  resample->SetDefaultPixelValue(0);
  resample->SetSize(reference->GetLargestPossibleRegion().GetSize());
  resample->SetOutputStartIndex(reference->GetLargestPossibleRegion().GetIndex());
  resample->SetOutputSpacing(reference->GetSpacing());
  resample->SetOutputOrigin(reference->GetOrigin());
  resample->SetOutputDirection(reference->GetDirection());
  resample->Update();
  typename TImage::Pointer out = resample->GetOutput();
  out->DisconnectPipeline();
  return out;
}
}  // namespace

LabelImageType::Pointer labels_to_native(const LabelImageType* labels_mni, const AffineTransformType* t,
                                         const itk::ImageBase<3>* reference) {
  return to_native(labels_mni, t, reference);
}

ImageType::Pointer scores_to_native(const ImageType* scores_mni, const AffineTransformType* t,
                                    const itk::ImageBase<3>* reference) {
  return to_native(scores_mni, t, reference);
}

}  // namespace brainage::viz
