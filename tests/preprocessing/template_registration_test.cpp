// Registration: exact synthetic answers (a blob shifted by a known offset comes back by that
// offset) and a known affine on Colin27 recovered to <= 1 mm mean displacement over the brain.
#include "preprocessing/template_registration.h"

#include <gtest/gtest.h>

#include <itkImageRegionConstIteratorWithIndex.h>
#include <itkMultiThreaderBase.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "common/errors.h"
#include "preprocessing/mask_metrics.h"
#include "preprocessing/model_grid.h"
#include "tests/preprocessing/synthetic_images.h"
#include "tests/test_data.h"

using namespace brainage::preprocessing;
using namespace brainage::testing;

TEST(TemplateRegistration, BlobShiftedByKnownOffsetComesBack) {
  const itk::Vector<double, 3> shift(std::array<double, 3>{6.0, -4.0, 3.0}.data());
  const auto fixed = make_blob_image(48, 2.0);
  const auto moving = make_blob_image(48, 2.0, shift);
  RegistrationOptions options;
  options.moments_initialisation = false;  // start from the identity: the optimiser must find the shift
  options.rigid = {{2, 1}, {2.0, 0.0}, {200, 100}, 2.0};
  options.affine = {{1}, {0.0}, {100}, 0.5};
  const auto result = register_to_template(fixed, moving, options);
  // fixed point p maps to moving point p + shift
  ImageType::PointType p;
  p.Fill(0);
  const auto q = result.mni_to_native->TransformPoint(p);
  for (unsigned d = 0; d < 3; ++d) EXPECT_NEAR(q[d] - p[d], shift[d], 0.3) << "axis " << d;  // mm
  const auto m = result.mni_to_native->GetMatrix();
  for (unsigned r = 0; r < 3; ++r)
    for (unsigned c = 0; c < 3; ++c) EXPECT_NEAR(m(r, c), r == c ? 1.0 : 0.0, 0.02);
}

TEST(TemplateRegistration, RefineAffineContinuesFromAnInitialTransform) {
  // The brain-only second pass starts from the first pass's transform: from a start 3 mm
  // off, the affine stage alone must land on the known shift.
  const itk::Vector<double, 3> shift(std::array<double, 3>{5.0, -3.0, 2.0}.data());
  const auto fixed = make_blob_image(48, 2.0);
  const auto moving = make_blob_image(48, 2.0, shift);
  auto initial = AffineTransformType::New();
  AffineTransformType::OutputVectorType start;
  for (unsigned d = 0; d < 3; ++d) start[d] = shift[d] + (d == 0 ? 3.0 : -2.0);
  initial->SetTranslation(start);
  RegistrationOptions options;
  options.affine = {{1}, {0.0}, {150}, 0.5};
  const auto result = refine_affine(fixed, moving, initial, options);
  ImageType::PointType p;
  p.Fill(0);
  const auto q = result.mni_to_native->TransformPoint(p);
  for (unsigned d = 0; d < 3; ++d) EXPECT_NEAR(q[d] - p[d], shift[d], 0.3) << "axis " << d;
  EXPECT_GT(result.affine_iterations, 0u);
  // The initial transform is not modified.
  EXPECT_DOUBLE_EQ(initial->GetTranslation()[0], start[0]);
}

TEST(TemplateRegistration, RecoversKnownAffineOnColin27) {
  const auto dir = mricron_templates_dir();
  BRAINAGE_REQUIRE_PATH(dir / "ch2.nii.gz");
  const auto ch2 = read_image(dir / "ch2.nii.gz");
  const auto brain = read_mask(dir / "ch2bet.nii.gz");
  auto brain_mask = MaskType::New();
  brain_mask->CopyInformation(brain);
  brain_mask->SetRegions(brain->GetLargestPossibleRegion());
  brain_mask->Allocate();
  for (std::size_t i = 0; i < brain->GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
    brain_mask->GetBufferPointer()[i] = brain->GetBufferPointer()[i] > 0;
  ImageType::PointType centre;
  centre.Fill(0);
  // <= 15 degrees, <= 20 mm, 5% scale: the bound.
  const auto truth = make_affine(itk::Vector<double, 3>(std::array<double, 3>{12.0, -8.0, 5.0}.data()),
                                 itk::Vector<double, 3>(std::array<double, 3>{15.0, -10.0, 12.0}.data()), 1.05, centre);
  ImageType::SizeType size{{160, 160, 130}};
  ImageType::DirectionType psr;  // sagittal acquisition: voxel axes P, S, R
  psr.Fill(0);
  psr(1, 0) = 1;   // axis 0 -> +y (posterior)
  psr(2, 1) = 1;   // axis 1 -> +z (superior)
  psr(0, 2) = -1;  // axis 2 -> -x (right)
  const auto moving = move_image<ImageType>(ch2, truth, size, 1.5, psr);
  const auto t0 = std::chrono::steady_clock::now();
  const auto result = register_to_template(ch2, moving);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double error = mean_displacement_mm(result.mni_to_native, truth, brain_mask);
  std::printf("Colin27 known affine: mean displacement %.3f mm over the brain, %.2f s, metric %.3f\n", error, seconds,
              result.final_metric);
  EXPECT_LE(error, 1.0);
}

TEST(TemplateRegistration, SameInputSameTransformWithOneThread) {
  const auto saved = itk::MultiThreaderBase::GetGlobalDefaultNumberOfThreads();
  itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(1);
  const auto fixed = make_blob_image(40, 2.0);
  const auto moving = make_blob_image(40, 2.0, itk::Vector<double, 3>(std::array<double, 3>{3.0, 2.0, -1.0}.data()));
  RegistrationOptions options;
  options.rigid = {{2, 1}, {2.0, 0.0}, {50, 30}, 2.0};
  options.affine = {{1}, {0.0}, {30}, 0.5};
  const auto a = register_to_template(fixed, moving, options);
  const auto b = register_to_template(fixed, moving, options);
  EXPECT_EQ(a.mni_to_native->GetParameters(), b.mni_to_native->GetParameters());
  EXPECT_EQ(a.final_metric, b.final_metric);
  itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(saved);
}

TEST(TemplateRegistration, WorkingGridIsBlockMeansForWholeRatiosAndTheImageItselfWhenAlreadyThere) {
  const auto fine = make_blob_image(8, 1.0);
  const auto work = to_working_grid(fine, 2.0);
  ASSERT_EQ(work->GetLargestPossibleRegion().GetSize()[0], 4u);
  for (unsigned d = 0; d < 3; ++d) {
    EXPECT_DOUBLE_EQ(work->GetSpacing()[d], 2.0);
    EXPECT_DOUBLE_EQ(work->GetOrigin()[d], fine->GetOrigin()[d] + 0.5);  // centre of the first 2x2x2 block
  }
  double mean = 0;
  for (int x = 2; x <= 3; ++x)
    for (int y = 0; y <= 1; ++y)
      for (int z = 4; z <= 5; ++z) mean += fine->GetPixel({{x, y, z}}) / 8.0;
  EXPECT_NEAR(work->GetPixel({{1, 0, 2}}), mean, 1e-4);
  EXPECT_TRUE(is_on_working_grid(work, 2.0));
  EXPECT_EQ(to_working_grid(work, 2.0).GetPointer(), work.GetPointer());
}

// The neck-cut rescue (preprocess_pipeline.h rescue_fields_of_view_mm) registers the scan cut
// below the top of the head: the cut keeps exactly the planes within the height, in place
// (same physical position and value for every kept voxel), and returns the image itself
// when there is nothing to cut.
TEST(TemplateRegistration, CutBelowHeadTopKeepsThePlanesWithinTheHeightInPlace) {
  const auto image = make_blob_image(48, 2.0);
  // The head top: the most superior voxel above 10 % of the 99th percentile (the blob's top).
  double top = -1e30;
  itk::ImageRegionConstIteratorWithIndex<ImageType> it(image, image->GetLargestPossibleRegion());
  std::vector<float> values(image->GetBufferPointer(),
                            image->GetBufferPointer() + image->GetLargestPossibleRegion().GetNumberOfPixels());
  std::nth_element(values.begin(), values.begin() + static_cast<long>(0.99 * (values.size() - 1)), values.end());
  const float threshold = 0.1f * values[static_cast<std::size_t>(0.99 * (values.size() - 1))];
  for (; !it.IsAtEnd(); ++it)
    if (it.Get() > threshold) {
      ImageType::PointType p;
      image->TransformIndexToPhysicalPoint(it.GetIndex(), p);
      top = std::max(top, p[2]);
    }
  const auto cut = cut_below_head_top(image, 20.0);
  const auto size = cut->GetLargestPossibleRegion().GetSize();
  EXPECT_EQ(size[0], 48u);
  EXPECT_EQ(size[1], 48u);
  ASSERT_LT(size[2], 48u);
  ImageType::PointType lowest, highest;
  cut->TransformIndexToPhysicalPoint({{0, 0, 0}}, lowest);
  cut->TransformIndexToPhysicalPoint({{0, 0, static_cast<long>(size[2]) - 1}}, highest);
  EXPECT_GE(lowest[2], top - 20.0);
  EXPECT_LT(lowest[2] - 2.0, top - 20.0);  // the plane below lies outside the height
  ImageType::PointType image_top;
  image->TransformIndexToPhysicalPoint({{0, 0, 47}}, image_top);
  EXPECT_DOUBLE_EQ(highest[2], image_top[2]);  // everything above the head is kept
  itk::ImageRegionConstIteratorWithIndex<ImageType> c(cut, cut->GetLargestPossibleRegion());
  for (; !c.IsAtEnd(); ++c) {
    ImageType::PointType p;
    cut->TransformIndexToPhysicalPoint(c.GetIndex(), p);
    ImageType::IndexType source;
    ASSERT_TRUE(image->TransformPhysicalPointToIndex(p, source));
    ASSERT_EQ(c.Get(), image->GetPixel(source));
  }
  EXPECT_EQ(cut_below_head_top(image, 500.0).GetPointer(), image.GetPointer());
}

// The template-scale rescue's start (preprocess_pipeline.cpp): the pose unchanged at the
// centre, the template `scale` times its size around it; a mask's centroid in mm.
TEST(TemplateRegistration, ScaledAboutKeepsTheCentreAndScalesTheTemplateAroundIt) {
  const itk::Point<double, 3> centre(std::array<double, 3>{1.0, -17.0, 18.0}.data());
  const auto pose = make_affine(itk::Vector<double, 3>(std::array<double, 3>{10.0, -5.0, 20.0}.data()),
                                itk::Vector<double, 3>(std::array<double, 3>{4.0, 2.0, -3.0}.data()), 1.1,
                                itk::Point<double, 3>(std::array<double, 3>{0.0, 0.0, 0.0}.data()));
  const auto scaled = scaled_about(pose, centre, 0.9);
  itk::Point<double, 3> far = centre;
  far[0] += 50;
  itk::Point<double, 3> near = centre;
  near[0] += 45;  // 0.9 of the way
  for (int d = 0; d < 3; ++d) {
    EXPECT_NEAR(scaled->TransformPoint(centre)[d], pose->TransformPoint(centre)[d], 1e-9);
    EXPECT_NEAR(scaled->TransformPoint(far)[d], pose->TransformPoint(near)[d], 1e-9);
  }
  auto mask = MaskType::New();
  MaskType::SizeType size;
  size.Fill(9);
  mask->SetRegions(size);
  mask->Allocate();
  mask->FillBuffer(0);
  mask->SetPixel({{2, 3, 4}}, 1);
  mask->SetPixel({{4, 3, 4}}, 1);
  const auto c = mask_centroid(mask);
  EXPECT_DOUBLE_EQ(c[0], 3.0);
  EXPECT_DOUBLE_EQ(c[1], 3.0);
  EXPECT_DOUBLE_EQ(c[2], 4.0);
  mask->FillBuffer(0);
  EXPECT_THROW(mask_centroid(mask), brainage::ProcessingError);
}
