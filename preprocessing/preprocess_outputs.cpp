// write_preprocess_outputs / read_mni_to_native_transform (declared in preprocess_pipeline.h).
#include <itkTransformFactoryBase.h>
#include <itkTransformFileReader.h>
#include <itkTransformFileWriter.h>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "preprocessing/native_header.h"
#include "preprocessing/preprocess_pipeline.h"

namespace brainage::preprocessing {

namespace fs = std::filesystem;

void write_preprocess_outputs(const PreprocessResult& result, const fs::path& dir) {
  ensure_writable_directory(dir);
  // The input's own qform and sform, so viewers overlay the mask on the scan (native_header.h).
  write_like_input(result.brain_mask_native, dir / "brain_mask_native.nii.gz", result.native_image);
  write_image(result.t1_model, dir / "t1_mni2mm.nii.gz");
  write_mask(result.brain_mask_model, dir / "brain_mask_mni2mm.nii.gz");
  write_mask(result.tissue_model, dir / "tissue_mni2mm.nii.gz");
  for (int c = 0; c < 3; ++c) {
    if (result.tissue_maps.probabilities[c])
      write_image(result.tissue_maps.probabilities[c], dir / (std::string("tissue_prob_") + kTissueNames[c] + "_mni2mm.nii.gz"));
    if (result.tissue_maps.modulated[c])
      write_image(result.tissue_maps.modulated[c], dir / (std::string("tissue_modulated_") + kTissueNames[c] + "_mni2mm.nii.gz"));
  }
  if (!result.regional_volumes.empty()) write_regional_volumes_csv(result.regional_volumes, dir / "regional_volumes.csv");
  const fs::path tfm = dir / "native_to_mni.tfm";
  write_via_temp(tfm, [&](const fs::path& tmp) {
    auto writer = itk::TransformFileWriterTemplate<double>::New();
    writer->SetInput(result.mni_to_native);
    writer->SetFileName(tmp.string());
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& e) {
      throw OutputError(tfm.string() + ": cannot write the transform (" + e.GetDescription() + ")");
    }
  });
  if (result.qc_image) write_png(result.qc_image, dir / "qc.png");
  write_file_atomic(dir / "preprocess.json", result.report.dump(2) + "\n");
}

AffineTransformType::Pointer read_mni_to_native_transform(const fs::path& tfm) {
  itk::TransformFactoryBase::RegisterDefaultTransforms();
  auto reader = itk::TransformFileReaderTemplate<double>::New();
  reader->SetFileName(tfm.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    throw InvalidInputError(tfm.string() + ": cannot read the transform (" + e.GetDescription() + ")");
  }
  const auto* list = reader->GetTransformList();
  if (list->empty()) throw InvalidInputError(tfm.string() + ": holds no transform");
  auto* affine = dynamic_cast<AffineTransformType*>(list->front().GetPointer());
  if (affine == nullptr)
    throw InvalidInputError(tfm.string() + ": holds a " + list->front()->GetNameOfClass() +
                            ", expected an AffineTransform (MNI points -> native points)");
  return affine;
}

}  // namespace brainage::preprocessing
