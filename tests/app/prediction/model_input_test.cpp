// prediction::model_input (app/prediction/scan_prediction.h), the one place that builds a
// model's input: the channels a checkpoint names from a preprocessed scan (a model-grid T1
// with its modulated tissue maps beside it), the log brain volume input, and predict_scan
// with an ERMoE-ba v2 checkpoint through that path.
#include "app/prediction/scan_prediction.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/errors.h"
#include "preprocessing/model_grid.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
namespace bm = brainage::model;
namespace bp = brainage::prediction;
using brainage::preprocessing::make_model_grid_image;
using brainage::preprocessing::write_image;

namespace {

constexpr int kBoxVoxels = 20 * 30 * 40;  // the "brain": x 20..40, y 30..60, z 20..60
constexpr float kCsf = 0.001f, kGm = 0.004f, kWm = 0.002f;  // mL per voxel

/// A model-grid T1 (0.8 in the box) and modulated CSF/GM/WM maps (constants in the box)
/// as a preprocessed subject folder; returns the T1's path.
fs::path write_preprocessed_subject(const fs::path& dir) {
  auto t1 = make_model_grid_image(0.f);
  std::array<brainage::preprocessing::ImageType::Pointer, 3> maps{make_model_grid_image(0.f), make_model_grid_image(0.f),
                                                                  make_model_grid_image(0.f)};
  const float values[3] = {kCsf, kGm, kWm};
  const auto size = t1->GetLargestPossibleRegion().GetSize();  // x, y, z
  for (unsigned z = 20; z < 60; ++z)
    for (unsigned y = 30; y < 60; ++y)
      for (unsigned x = 20; x < 40; ++x) {
        const std::size_t k = (z * size[1] + y) * size[0] + x;
        t1->GetBufferPointer()[k] = 0.8f;
        for (int c = 0; c < 3; ++c) maps[c]->GetBufferPointer()[k] = values[c];
      }
  write_image(t1, dir / "t1_mni2mm.nii.gz");
  const char* names[] = {"csf", "gm", "wm"};
  for (int c = 0; c < 3; ++c) write_image(maps[c], dir / (std::string("tissue_modulated_") + names[c] + "_mni2mm.nii.gz"));
  return dir / "t1_mni2mm.nii.gz";
}

bm::CheckpointInfo v2_info() {
  bm::CheckpointInfo info;
  info.model.channels = {"t1", "gm", "wm", "csf"};
  info.model.global_input = bm::GlobalInput::kLogBrainVolume;
  return info;
}

bp::PreprocessedScan read_subject(const fs::path& t1, bool with_maps) {
  bp::PreprocessStepOptions step;
  step.accept_model_grid_input = true;
  step.read_tissue_maps = with_maps;
  return bp::preprocess_for_model(t1, step);
}

}  // namespace

TEST(ModelInput, BuildsTheFourChannelsAndTheLogBrainVolumeTheCheckpointNames) {
  const fs::path t1 = write_preprocessed_subject(brainage::testing::scratch_dir("model-input"));
  const auto info = v2_info();
  ASSERT_TRUE(bp::needs_tissue_maps(info));
  const auto input = bp::model_input(read_subject(t1, bp::needs_tissue_maps(info)), info);
  ASSERT_EQ(input.volumes.sizes(), (std::vector<int64_t>{1, 4, 80, 96, 80}));  // [1, C, Z, Y, X]
  // Inside the box (z, y, x) = (30, 40, 30), in the order t1, gm, wm, csf; tissue in mL / 0.008 mL.
  const auto voxel = input.volumes.index({0, torch::indexing::Slice(), 30, 40, 30});
  EXPECT_FLOAT_EQ(voxel[0].item<float>(), 0.8f);
  EXPECT_FLOAT_EQ(voxel[1].item<float>(), kGm / 0.008f);
  EXPECT_FLOAT_EQ(voxel[2].item<float>(), kWm / 0.008f);
  EXPECT_FLOAT_EQ(voxel[3].item<float>(), kCsf / 0.008f);
  EXPECT_EQ(input.volumes.index({0, 1, 10, 10, 10}).item<float>(), 0.f);  // outside the box
  // ln of the brain tissue volume: 24 000 voxels x 0.007 mL = 168 mL.
  ASSERT_EQ(input.global.sizes(), (std::vector<int64_t>{1, 1}));
  EXPECT_NEAR(input.global.item<double>(), std::log(kBoxVoxels * (kCsf + kGm + kWm)), 1e-4);
  // The same float at any thread count: the volume is summed in double in memory order (a
  // float torch reduction's last bits followed the thread count and moved ages by 2e-6 y).
  double exact = 0;
  for (const float v : {kCsf, kGm, kWm})
    for (int i = 0; i < kBoxVoxels; ++i) exact += v;
  const int threads = torch::get_num_threads();
  for (const int n : {1, 2, 3}) {
    torch::set_num_threads(n);
    const auto again = bp::model_input(read_subject(t1, true), info);
    EXPECT_EQ(again.global.item<float>(), static_cast<float>(std::log(exact))) << n << " threads";
  }
  torch::set_num_threads(threads);
}

TEST(ModelInput, OldCheckpointsReadTheT1AloneAndMissingMapsAreAProcessingError) {
  const fs::path t1 = write_preprocessed_subject(brainage::testing::scratch_dir("model-input-t1"));
  const bm::CheckpointInfo old;  // the first design: {"t1"}, no global input
  EXPECT_FALSE(bp::needs_tissue_maps(old));
  const auto input = bp::model_input(read_subject(t1, false), old);
  ASSERT_EQ(input.volumes.sizes(), (std::vector<int64_t>{1, 1, 80, 96, 80}));
  EXPECT_FALSE(input.global.defined());
  EXPECT_FLOAT_EQ(input.volumes.index({0, 0, 30, 40, 30}).item<float>(), 0.8f);
  bm::CheckpointInfo vbm;
  vbm.model_kind = bm::kVbmModelKind;
  EXPECT_TRUE(bp::needs_tissue_maps(vbm));
  const auto maps = bp::model_input(read_subject(t1, true), vbm);  // VBM: mL per voxel, CSF, GM, WM
  ASSERT_EQ(maps.volumes.sizes(), (std::vector<int64_t>{1, 3, 80, 96, 80}));
  EXPECT_FLOAT_EQ(maps.volumes.index({0, 0, 30, 40, 30}).item<float>(), kCsf);
  // Tissue channels without the maps read: a ProcessingError naming the missing map.
  try {
    bp::model_input(read_subject(t1, false), v2_info());
    FAIL() << "expected a ProcessingError";
  } catch (const brainage::ProcessingError& e) {
    EXPECT_NE(std::string(e.what()).find("tissue_modulated_gm_mni2mm.nii.gz"), std::string::npos) << e.what();
  }
}

// predict_scan with a v2 checkpoint (4 channels, conv stem at 8 voxels = 1200 tokens, KL
// bins, global input) reads the maps itself and gives the model's own forward on model_input.
TEST(ModelInput, PredictScanRunsAV2CheckpointThroughTheOnePath) {
  const fs::path dir = brainage::testing::scratch_dir("model-input-predict");
  const fs::path t1 = write_preprocessed_subject(dir);
  torch::manual_seed(4);
  bm::ModelOptions o = v2_info().model;
  o.stem = bm::StemKind::kConv;
  o.patch_size = 8;
  o.dim = 16;
  o.depth = 1;
  o.heads = 2;
  o.num_experts = 4;
  o.expert_rank = 4;
  o.expert_hidden = 8;
  o.loss = bm::LossKind::kKl;
  o.age_bin_start = 15;
  o.age_bins = 71;
  o.global_mean = 5.0;
  o.global_std = 0.2;
  bm::BrainAgeModel model(o);
  model->eval();
  bm::save_checkpoint(dir / "v2", model, bm::CheckpointInfo{});
  bp::Predictor predictor(dir / "v2.json");
  bp::ScanPredictionOptions options;
  options.preprocess.accept_model_grid_input = true;  // read_tissue_maps: predict_scan decides
  const auto record = bp::predict_scan(predictor, t1, options);
  torch::NoGradGuard no_grad;
  const auto input = bp::model_input(read_subject(t1, true), predictor.info());
  const double expected = model->forward(input.volumes, false, input.global).age.item<double>();
  EXPECT_NEAR(record.predicted_age, expected, 1e-4);
  EXPECT_GE(record.predicted_age, 15.0);  // an expectation over the bins 15..85
  EXPECT_LE(record.predicted_age, 85.0);
  EXPECT_EQ(record.routing.at("token_grid"), (nlohmann::json{10, 12, 10}));
}

// Field failure (fifteenth session): `brainage predict OUT/t1_mni2mm.nii.gz` ran the
// pipeline again on the already-registered, normalised image and answered another age
// (IXI scans up to 8 y off, QC passed). Without accept_model_grid_input (predict,
// evaluate) a model-grid image is refused, naming the file and the rule.
TEST(PreprocessForModel, AModelGridImageIsRefusedUnlessPreprocessedInputsAreAccepted) {
  const auto dir = brainage::testing::scratch_dir("model-grid-refused");
  const fs::path t1 = write_preprocessed_subject(dir);
  bp::PreprocessStepOptions step;  // as predict and evaluate: accept_model_grid_input off
  try {
    bp::preprocess_for_model(t1, step);
    FAIL() << "a model-grid image was preprocessed again";
  } catch (const brainage::InvalidInputError& e) {
    EXPECT_NE(std::string(e.what()).find(t1.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("already a brainage model-grid image"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(read_subject(t1, true).model_grid_input);  // train's manifests still take it
  fs::remove_all(dir);
}

