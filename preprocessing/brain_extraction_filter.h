#pragma once
// Brain extraction shaped as an ITK filter. Input 0: the bias-corrected T1 in native
// space. The template brain mask (ch2bet > 0, template space) and the template→native
// affine (fixed MNI points -> native points) give the prior; the filter then refines it
// on the scan's own intensities:
//   1. prior   = template mask resampled onto the scan grid (linear, > 0.5);
//   2. statistics of brain tissue inside the prior eroded by CoreErosionMM;
//   3. candidates = voxels inside the prior dilated by SearchDilationMM whose intensity
//      lies in [LowerThresholdFraction, UpperThresholdFraction] × the brain-tissue median
//      (skull and air are darker than CSF on T1; fat and vessels brighter);
//   4. opening by OpeningRadiusMM (off by default), largest connected
//      component, union with the eroded prior core, closing by ClosingRadiusMM, hole filling
//      slice-free in 3D (VotingBinaryIterativeHoleFilling + background flood);
//   5. the result is limited to the prior dilated by SearchDilationMM.
// With SkullStripped on, steps 2–5 become: foreground (> ForegroundFraction × median) of
// the input, largest component, hole filling: an already-stripped scan is not cut again.
// Output: a mask (1 brain, 0 outside) on exactly the input's grid.
#include <itkImageToImageFilter.h>

#include "preprocessing/image_types.h"
#include "preprocessing/template_registration.h"

namespace brainage::preprocessing {

class BrainExtractionImageFilter : public itk::ImageToImageFilter<ImageType, MaskType> {
 public:
  ITK_DISALLOW_COPY_AND_ASSIGN(BrainExtractionImageFilter);
  using Self = BrainExtractionImageFilter;
  using Superclass = itk::ImageToImageFilter<ImageType, MaskType>;
  using Pointer = itk::SmartPointer<Self>;
  using ConstPointer = itk::SmartPointer<const Self>;
  itkNewMacro(Self);
  itkTypeMacro(BrainExtractionImageFilter, ImageToImageFilter);

  /** Template brain mask in template (MNI) space, > 0 = brain. Required. */
  void SetTemplateMask(const MaskType* mask);
  /** Template (fixed) -> native (moving) affine. Required. */
  void SetTemplateToNativeTransform(const AffineTransformType* transform);

  /** Prior erosion (mm) giving the sure-brain core. Default = 6.0. */
  itkSetMacro(CoreErosionMM, double);
  itkGetConstMacro(CoreErosionMM, double);
  /** How far (mm, Euclidean) beyond the prior brain may be found. Default = 2.0 (one voxel
      of the 2 mm model grid; the pipeline passes one voxel of the scan, see
      BrainExtractionOptions::search_dilation_voxels). */
  itkSetMacro(SearchDilationMM, double);
  itkGetConstMacro(SearchDilationMM, double);
  /** Lower intensity bound as a fraction of the brain-tissue median. Default = 0.30. */
  itkSetMacro(LowerThresholdFraction, double);
  itkGetConstMacro(LowerThresholdFraction, double);
  /** Upper intensity bound as a fraction of the brain-tissue median. Default = 1.8. */
  itkSetMacro(UpperThresholdFraction, double);
  itkGetConstMacro(UpperThresholdFraction, double);
  /** The brain contrast (BrainContrast) at which the two fractions apply as given; a scan
      whose contrast c differs uses fraction^(c / ReferenceContrast), so that a power-law
      change of the intensities (x^g: another scanner's contrast curve, to first order)
      moves both bounds with the tissues. 0 = the fractions as given. Default = 0. */
  itkSetMacro(ReferenceContrast, double);
  itkGetConstMacro(ReferenceContrast, double);
  /** Opening radius (mm); 0 = off. Default = 0. */
  itkSetMacro(OpeningRadiusMM, double);
  itkGetConstMacro(OpeningRadiusMM, double);
  /** Closing radius (mm). Default = 2.0. */
  itkSetMacro(ClosingRadiusMM, double);
  itkGetConstMacro(ClosingRadiusMM, double);
  /** The input is already skull-stripped: keep its foreground, do not cut again. Default = false. */
  itkSetMacro(SkullStripped, bool);
  itkGetConstMacro(SkullStripped, bool);
  itkBooleanMacro(SkullStripped);
  /** Foreground threshold for skull-stripped inputs, fraction of the foreground median. Default = 0.1. */
  itkSetMacro(ForegroundFraction, double);
  itkGetConstMacro(ForegroundFraction, double);

  /** Median intensity of brain tissue found in step 2 (after Update). */
  itkGetConstMacro(BrainMedian, double);
  /** Brain contrast of step 2 (after Update): ln(q75 / q25) of the intensities in the
      eroded prior (mostly grey and white matter), dimensionless; 0 for a skull-stripped input. */
  itkGetConstMacro(BrainContrast, double);

 protected:
  BrainExtractionImageFilter();
  ~BrainExtractionImageFilter() override = default;
  void GenerateInputRequestedRegion() override;
  void GenerateData() override;
  void PrintSelf(std::ostream& os, itk::Indent indent) const override;

 private:
  MaskType::ConstPointer m_TemplateMask;
  AffineTransformType::ConstPointer m_Transform;
  double m_CoreErosionMM{6.0};
  double m_SearchDilationMM{2.0};
  double m_LowerThresholdFraction{0.30};
  double m_UpperThresholdFraction{1.8};
  double m_OpeningRadiusMM{0.0};
  double m_ClosingRadiusMM{2.0};
  bool m_SkullStripped{false};
  double m_ForegroundFraction{0.1};
  double m_BrainMedian{0};
  double m_BrainContrast{0};
  double m_ReferenceContrast{0};
};

}  // namespace brainage::preprocessing
