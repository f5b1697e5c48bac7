// `brainage train` and `brainage predict` through the executable: a tiny model trained for
// 2 epochs on model-grid volumes written with ITK (a manifest of preprocessed inputs), then
// predict on the real Colin27 scan with -o (prediction.json in the documented format), and
// the exit code 6 (ModelError) for a missing or corrupt checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "app/prediction/scan_prediction.h"
#include "common/age_statistics.h"
#include "common/csv.h"
#include "model/checkpoint.h"
#include "model/vbm_model.h"
#include "preprocessing/model_grid.h"
#include "tests/cli_runner.h"
#include "tests/free_port.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::testing;

namespace {

/// Writes `n` model-grid volumes (a head-like ellipsoid whose inner "ventricle" grows with
/// age) and a manifest with relative paths; returns the manifest path.
fs::path write_manifest(const fs::path& dir, int n) {
  std::ofstream manifest(dir / "manifest.csv");
  manifest << "subject_id,age,path\n";
  for (int i = 0; i < n; ++i) {
    const double age = 20 + 60.0 * i / (n - 1);
    auto image = brainage::preprocessing::make_model_grid_image(0.f);
    const auto size = image->GetLargestPossibleRegion().GetSize();
    float* p = image->GetBufferPointer();
    const double inner = 0.15 + 0.25 * (age - 20) / 60;
    for (unsigned z = 0; z < size[2]; ++z)
      for (unsigned y = 0; y < size[1]; ++y)
        for (unsigned x = 0; x < size[0]; ++x) {
          const double dx = (x - 40.0) / 32, dy = (y - 48.0) / 40, dz = (z - 40.0) / 32;
          const double r = std::sqrt(dx * dx + dy * dy + dz * dz);
          p[(z * size[1] + y) * size[0] + x] = r < inner ? 0.25f : (r < 1 ? 0.9f : 0.f);
        }
    const std::string name = "sub" + std::to_string(i) + "_t1_mni2mm.nii.gz";
    brainage::preprocessing::write_image(image, dir / name);
    manifest << "sub" << i << "," << age << "," << name << "\n";
  }
  return dir / "manifest.csv";
}
}  // namespace

TEST(TrainPredict, TrainTwoEpochsThenPredictOnColin27) {
  const fs::path ch2 = mricron_templates_dir() / "ch2.nii.gz";
  const fs::path dir = scratch_dir("train-predict");
  const fs::path manifest = write_manifest(dir, 10);
  const auto train = run_brainage("train --manifest \"" + manifest.string() + "\" -o \"" + (dir / "run").string() +
                         "\" --epochs 2 --batch-size 4 --dim 32 --depth 1 --heads 2 --experts 4 --expert-rank 8"
                         " --warmup-epochs 0 --threads 2 --quiet");
  ASSERT_EQ(train.code, 0) << train.out;
  EXPECT_TRUE(fs::exists(dir / "run" / "model.json"));
  EXPECT_TRUE(fs::exists(dir / "run" / "metrics.csv"));
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoints" / "epoch_002.json"));

  BRAINAGE_REQUIRE_PATH(ch2);
  // On a headless machine (DISPLAY unset, no xvfb-run): --maps renders the 3D view too.
  const auto predict = run_brainage_env("env -u DISPLAY -u XAUTHORITY",
                                        "predict \"" + ch2.string() + "\" --model \"" +
                                            (dir / "run" / "model.json").string() + "\" -o \"" + (dir / "pred").string() +
                                            "\" --json --maps --threads 2");
  ASSERT_EQ(predict.code, 0) << predict.out;
  std::ifstream in(dir / "pred" / "prediction.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_TRUE(std::isfinite(j.at("predicted_age").get<double>()));
  EXPECT_EQ(j.at("routing").at("token_grid"), nlohmann::json({5, 6, 5}));
  EXPECT_EQ(j.at("routing").at("num_experts").get<int>(), 4);
  ASSERT_EQ(j.at("routing").at("layers").size(), 1u);
  EXPECT_EQ(j["routing"]["layers"][0].at("expert").size(), 150u);
  EXPECT_EQ(j["routing"]["layers"][0].at("score").size(), 150u);
  EXPECT_TRUE(fs::exists(dir / "pred" / "t1_mni2mm.nii.gz"));
  EXPECT_EQ(j.at("model_id").get<std::string>().rfind("ermoe-ba-", 0), 0u);
  EXPECT_TRUE(fs::exists(dir / "pred" / "maps" / "experts_3d.png")) << predict.out;
  EXPECT_EQ(predict.out.find("experts_3d.png skipped"), std::string::npos) << predict.out;
  // The printed JSON is the prediction.json written into the folder (one writer).
  const auto printed = nlohmann::json::parse(predict.out.substr(predict.out.find('{')));
  EXPECT_EQ(printed.at("predicted_age"), j.at("predicted_age"));
  EXPECT_EQ(printed.at("bias_correction"), j.at("bias_correction"));
}

TEST(TrainPredict, MissingOrCorruptCheckpointExitsWithModelError) {
  const fs::path dir = scratch_dir("predict-bad-model");
  const fs::path ch2 = mricron_templates_dir() / "ch2.nii.gz";
  const auto missing = run_brainage("predict \"" + ch2.string() + "\" --model \"" + (dir / "absent.json").string() + "\"");
  EXPECT_EQ(missing.code, 6) << missing.out;
  EXPECT_NE(missing.out.find("ModelError"), std::string::npos) << missing.out;
  std::ofstream(dir / "bad.json") << "{\"format\": \"brainage-checkpoint\", \"format_version\": 1, \"model\": ";
  const auto corrupt = run_brainage("predict \"" + ch2.string() + "\" --model \"" + (dir / "bad.json").string() + "\"");
  EXPECT_EQ(corrupt.code, 6) << corrupt.out;
  // A helper's pass: a mistyped $BRAINAGE_MODEL and an empty --model (an unset variable)
  // ran the bundled default without a word.
  std::ofstream(dir / "cohort.csv") << "subject_id,path,age\nch2," << ch2.string() << ",30\n";
  for (const std::string& command : {"predict \"" + ch2.string() + "\"", "evaluate --cohort \"" + (dir / "cohort.csv").string() +
                                                                             "\" -o \"" + (dir / "ev").string() + "\""}) {
    const auto typo = run_brainage_env("BRAINAGE_MODEL=\"" + (dir / "typo.json").string() + "\"", command);
    EXPECT_EQ(typo.code, 6) << command << ": " << typo.out;
    EXPECT_NE(typo.out.find("BRAINAGE_MODEL="), std::string::npos) << typo.out;
  }
  const auto empty = run_brainage("predict \"" + ch2.string() + "\" --model \"\"");
  EXPECT_EQ(empty.code, 2) << empty.out;
  EXPECT_NE(empty.out.find("--model is empty"), std::string::npos) << empty.out;
}

TEST(TrainPredict, BadManifestIsAnInputError) {
  const fs::path dir = scratch_dir("train-bad-manifest");
  std::ofstream(dir / "m.csv") << "subject_id,age,path\nsubA,abc,x.nii.gz\nsubB,40,y.nii.gz\n";
  const auto r = run_brainage("train --manifest \"" + (dir / "m.csv").string() + "\" -o \"" + (dir / "out").string() + "\"");
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("age 'abc'"), std::string::npos) << r.out;
}

TEST(TrainPredict, BadModelAugmentationOrSplitOptionsAreUsageErrorsBeforeAnyWork) {
  const fs::path dir = scratch_dir("train-bad-options");
  std::ofstream(dir / "m.csv") << "subject_id,age,path\nsubA,30,x.nii.gz\nsubB,40,y.nii.gz\n";
  for (const std::string bad : {"--patch-pool 3", "--intensity-jitter -1", "--dim 30 --heads 4", "--final worst",
                                "--val-fraction 0", "--val-fraction 1 --final last",
                                "--model-kind vbm --vbm-scaling cubic", "--model-kind vbm --vbm-fwhm 4,x",
                                "--model-kind vbm --vbm-channels gm,t1", "--model-kind vbm --vbm-channels gm,gm",
                                "--model-kind vbm --world-size 2 --rank 0", "--vbm-augment copies.csv"}) {
    const auto r = run_brainage("train --manifest \"" + (dir / "m.csv").string() + "\" -o \"" + (dir / "out").string() +
                                "\" " + bad);
    EXPECT_EQ(r.code, 2) << bad << ": " << r.out;
    EXPECT_FALSE(fs::exists(dir / "out")) << bad << ": nothing may be written";
  }
}

namespace {

/// `n` preprocessed subjects for a VBM manifest: per subject a folder with the model-grid
/// T1 and modulated CSF/GM/WM maps (mL per 2 mm voxel) of an ellipsoid brain whose grey
/// matter thins and whose inner CSF space widens with age. Returns the manifest path.
fs::path write_vbm_manifest(const fs::path& dir, int n) {
  std::ofstream manifest(dir / "vbm.csv");
  manifest << "subject_id,age,path\n";
  const float voxel_ml = 0.008f;
  for (int i = 0; i < n; ++i) {
    const double age = 20 + 60.0 * i / (n - 1);
    const fs::path sub = dir / ("vbm" + std::to_string(i));
    fs::create_directories(sub);
    std::array<brainage::preprocessing::ImageType::Pointer, 3> maps;
    for (auto& m : maps) m = brainage::preprocessing::make_model_grid_image(0.f);
    auto t1 = brainage::preprocessing::make_model_grid_image(0.f);
    const auto size = t1->GetLargestPossibleRegion().GetSize();
    const double inner = 0.2 + 0.2 * (age - 20) / 60, gm = 1.0 - 0.3 * (age - 20) / 60;
    for (unsigned z = 0; z < size[2]; ++z)
      for (unsigned y = 0; y < size[1]; ++y)
        for (unsigned x = 0; x < size[0]; ++x) {
          const double dx = (x - 40.0) / 32, dy = (y - 48.0) / 40, dz = (z - 40.0) / 32;
          const double r = std::sqrt(dx * dx + dy * dy + dz * dz);
          const std::size_t k = (z * size[1] + y) * size[0] + x;
          if (r >= 1) continue;
          const int tissue = r < inner ? 0 : (r > 0.8 ? 1 : 2);  // CSF, GM rim, WM
          // Subject-specific texture (±5 %), so no voxel is exactly the same in everyone.
          const float noise = 0.05f * static_cast<float>(std::sin(0.7 * x + 1.3 * y + 0.9 * z + 2.1 * i));
          const float p = (tissue == 1 ? static_cast<float>(gm) : 1.f) * (1 - std::abs(noise));
          maps[tissue]->GetBufferPointer()[k] = p * voxel_ml;
          if (tissue == 1) maps[0]->GetBufferPointer()[k] = (1 - p) * voxel_ml;
          // CSF/WM 0.36 in the template's regions, like IXI-HH's (0.32-0.41): the model's
          // recorded contrast range then lets a real IXI scan through (contrast_domain_check.h).
          t1->GetBufferPointer()[k] = tissue == 0 ? 0.32f : (tissue == 1 ? 0.6f : 0.9f);
        }
    brainage::preprocessing::write_image(t1, sub / "t1_mni2mm.nii.gz");
    const char* names[] = {"csf", "gm", "wm"};
    for (int c = 0; c < 3; ++c)
      brainage::preprocessing::write_image(maps[c], sub / (std::string("tissue_modulated_") + names[c] + "_mni2mm.nii.gz"));
    manifest << "vbm" << i << "," << age << ",vbm" << i << "/t1_mni2mm.nii.gz\n";
  }
  return dir / "vbm.csv";
}

/// `brainage evaluate` of one scan (subject `id`, `age` in years) with the checkpoint
/// `model` into dir/eval: its predictions.csv row as column -> value. Records a test
/// failure and returns an empty map when evaluate does not exit 0 or the table is not one row.
std::map<std::string, std::string> evaluate_one(const fs::path& dir, const std::string& id, const fs::path& scan,
                                                double age, const fs::path& model) {
  std::ofstream(dir / "cohort.csv") << "subject_id,path,age\n" << id << "," << scan.string() << "," << age << "\n";
  const auto evaluate = run_brainage("evaluate --cohort \"" + (dir / "cohort.csv").string() + "\" -o \"" +
                                     (dir / "eval").string() + "\" --model \"" + model.string() +
                                     "\" --threads 2 --no-progress --no-plots");
  std::map<std::string, std::string> row;
  if (evaluate.code != 0) {
    ADD_FAILURE() << evaluate.out;
    return row;
  }
  const auto table = brainage::read_delimited_file(dir / "eval" / "predictions.csv");
  if (table.rows.size() != 1u || table.rows[0].size() != table.header.size()) {
    ADD_FAILURE() << "predictions.csv has " << table.rows.size() << " rows: " << evaluate.out;
    return row;
  }
  for (std::size_t c = 0; c < table.header.size(); ++c) row[table.header[c]] = table.rows[0][c];
  return row;
}

}  // namespace

// `train --model-kind vbm` fits the VBM model on the modulated tissue maps beside each
// preprocessed input; `predict` and `evaluate` run its checkpoint through the same path as
// a transformer's (the maps come from the scan's own preprocessing) and give the same age;
// --maps (expert routing) is refused for a model without experts, before any work.
TEST(TrainPredict, VbmModelTrainsOnTissueMapsAndPredictsLikeAnyCheckpoint) {
  const fs::path scan = shared_data_dir() / "ixi-hh-2mm" / "t1" / "IXI012-HH-1211_T1.nii.gz";
  BRAINAGE_REQUIRE_PATH(scan);
  const fs::path dir = scratch_dir("train-vbm");
  const auto train = run_brainage("train --model-kind vbm --manifest \"" + write_vbm_manifest(dir, 12).string() +
                                  "\" -o \"" + (dir / "run").string() + "\" --threads 2 --quiet");
  ASSERT_EQ(train.code, 0) << train.out;
  const auto meta = nlohmann::json::parse(std::ifstream(dir / "run" / "model.json"));
  EXPECT_EQ(meta.at("model_kind"), "vbm");
  EXPECT_EQ(meta.at("model_id").get<std::string>().rfind("vbm-", 0), 0u);
  // Age is a linear function of the synthetic GM and CSF volumes: the inner CV recovers it.
  EXPECT_LT(meta.at("metrics").at("inner_cv_mae").get<double>(), 5.0) << train.out;
  EXPECT_EQ(meta.at("model").at("scaling"), "proportional");
  // The training ages' range is recorded, as for a transformer (the extrapolation flag reads it).
  const auto& data = meta.at("training").at("data");
  EXPECT_LT(data.at("age_min").get<double>(), data.at("age_max").get<double>());
  EXPECT_EQ(data.at("subjects").get<int>(), 12);

  const std::string model = " --model \"" + (dir / "run" / "model.json").string() + "\"";
  const auto maps = run_brainage("predict \"" + scan.string() + "\"" + model + " -o \"" + (dir / "maps").string() + "\" --maps");
  EXPECT_EQ(maps.code, 2) << maps.out;
  EXPECT_NE(maps.out.find("without experts"), std::string::npos) << maps.out;
  EXPECT_FALSE(fs::exists(dir / "maps"));

  const auto predict = run_brainage("predict \"" + scan.string() + "\"" + model + " -o \"" + (dir / "pred").string() +
                                    "\" --threads 2");
  ASSERT_EQ(predict.code, 0) << predict.out;
  const auto j = nlohmann::json::parse(std::ifstream(dir / "pred" / "prediction.json"));
  // Trained on synthetic brains, the age of a real one means nothing (about -470); it must
  // still be of bounded size (an unfloored feature sd once made it -1e8).
  EXPECT_LT(std::abs(j.at("predicted_age").get<double>()), 1000.0) << predict.out;
  EXPECT_NE(j.at("qc_flags").dump().find("outside the training range"), std::string::npos)
      << "a VBM model's extrapolation is flagged: " << j.at("qc_flags").dump();
  EXPECT_TRUE(j.at("routing").is_null());
  EXPECT_EQ(j.at("model_id"), meta.at("model_id"));
  EXPECT_TRUE(fs::exists(dir / "pred" / "tissue_modulated_gm_mni2mm.nii.gz"));

  const auto row = evaluate_one(dir, "IXI012", scan, 38.8, dir / "run" / "model.json");
  ASSERT_TRUE(row.count("predicted_age"));
  EXPECT_NEAR(std::stod(row.at("predicted_age")), j.at("predicted_age").get<double>(), 0.01);
}

// `train --model-kind vbm --vbm-augment CSV`: the copies join the fit (recorded in the
// checkpoint), the out-of-fold ages stay one per subject; a copy of a subject the manifest
// does not hold, or with another age, is refused naming the file (exit 3), before a model
// is written.
TEST(TrainPredict, VbmAugmentationCopiesTrainWithTheirSubjects) {
  const fs::path dir = scratch_dir("train-vbm-augment");
  const fs::path manifest = write_vbm_manifest(dir, 12);
  std::string copies = "subject_id,age,path\n";
  for (const auto& row : brainage::read_delimited_file(manifest).rows)
    copies += row[0] + "," + row[1] + "," + row[2] + "\n";  // each subject's maps once more
  std::ofstream(dir / "copies.csv") << copies;
  const auto train = run_brainage("train --model-kind vbm --manifest \"" + manifest.string() + "\" --vbm-augment \"" +
                                  (dir / "copies.csv").string() + "\" -o \"" + (dir / "run").string() +
                                  "\" --threads 2 --quiet");
  ASSERT_EQ(train.code, 0) << train.out;
  const auto meta = nlohmann::json::parse(std::ifstream(dir / "run" / "model.json"));
  EXPECT_EQ(meta.at("training").at("augmentation").at("copies").get<int>(), 12);
  EXPECT_EQ(meta.at("training").at("selection").at("augmentation_copies").get<int>(), 12);
  EXPECT_EQ(meta.at("training").at("subjects").get<int>(), 12);
  EXPECT_EQ(brainage::read_delimited_file(dir / "run" / "oof_predictions.csv").rows.size(), 12u);

  for (const std::string& bad : {std::string("stranger,40,vbm0/t1_mni2mm.nii.gz\n"), std::string("vbm0,99,vbm0/t1_mni2mm.nii.gz\n")}) {
    std::ofstream(dir / "bad.csv") << "subject_id,age,path\n" << bad << "vbm1,30,vbm1/t1_mni2mm.nii.gz\n";
    const auto refused = run_brainage("train --model-kind vbm --manifest \"" + manifest.string() + "\" --vbm-augment \"" +
                                      (dir / "bad.csv").string() + "\" -o \"" + (dir / "bad").string() + "\" --quiet");
    EXPECT_EQ(refused.code, 3) << bad << refused.out;
    EXPECT_NE(refused.out.find("bad.csv: copy 1"), std::string::npos) << refused.out;
    EXPECT_FALSE(fs::exists(dir / "bad" / "model.json"));
  }
}

// `train --world-size 2`: each rank loads only the scans it needs, yet the checkpoint's
// training record (age range, CSF/WM contrast range: what predict's checks read) covers the
// whole manifest, not rank 0's share.
TEST(TrainPredict, TwoRanksRecordTheWholeTrainingSetsRanges) {
  const fs::path dir = scratch_dir("train-two-ranks");
  const std::string manifest = write_vbm_manifest(dir, 10).string();
  const std::string common = "train --manifest \"" + manifest + "\" -o \"" + (dir / "run").string() +
                             "\" --epochs 1 --batch-size 2 --dim 16 --depth 1 --heads 2 --experts 4 --expert-rank 4"
                             " --warmup-epochs 0 --final last --threads 1 --quiet --world-size 2 --master-port " +
                             std::to_string(free_port());
  // Rank 1 in the background of the same shell, rank 0 in front; the shell waits for both.
  const auto train = run_brainage(common + " --rank 1 > \"" + (dir / "rank1.log").string() + "\" 2>&1 & \"" +
                                  BRAINAGE_EXE + "\" " + common + " --rank 0; r0=$?; wait $!; exit $((r0 | $?))");
  ASSERT_EQ(train.code, 0) << train.out;
  const auto data = nlohmann::json::parse(std::ifstream(dir / "run" / "model.json")).at("training").at("data");
  EXPECT_EQ(data.at("world_size").get<int>(), 2);
  EXPECT_EQ(data.at("subjects").get<int>(), 10);
  EXPECT_EQ(data.at("tissue_contrast").at("csf_wm_ratio").at("subjects").get<int>(), 10)
      << "the contrast range of every training scan, not rank 0's";
  EXPECT_DOUBLE_EQ(data.at("age_min").get<double>(), 20.0);
  EXPECT_DOUBLE_EQ(data.at("age_max").get<double>(), 80.0);
}

// ERMoE-ba v2 through the command line: the four channels (T1 and the tissue maps beside
// each preprocessed input), the conv stem, the KL loss and the log brain volume input train
// for 2 epochs; model.json records every option (bins from the training ages ± 5 y, the
// global input's standardisation); `train --help` describes the options.
TEST(TrainPredict, V2OptionsTrainAndAreRecordedInTheCheckpoint) {
  const fs::path dir = scratch_dir("train-v2");
  const auto train = run_brainage("train --manifest \"" + write_vbm_manifest(dir, 10).string() + "\" -o \"" +
                                  (dir / "run").string() +
                                  "\" --channels t1,gm,wm,csf --stem conv --patch-size 16 --loss kl --label-sigma 2"
                                  " --global-input log_brain_volume --epochs 2 --batch-size 4 --dim 16 --depth 1"
                                  " --heads 2 --experts 4 --expert-rank 4 --warmup-epochs 0 --val-fraction 0 --final last"
                                  " --threads 2 --quiet");
  ASSERT_EQ(train.code, 0) << train.out;
  const auto model = nlohmann::json::parse(std::ifstream(dir / "run" / "model.json")).at("model");
  EXPECT_EQ(model.at("channels"), (nlohmann::json{"t1", "gm", "wm", "csf"}));
  EXPECT_EQ(model.at("stem"), "conv");
  EXPECT_EQ(model.at("loss"), "kl");
  EXPECT_EQ(model.at("label_sigma"), 2.0);
  EXPECT_EQ(model.at("global_input"), "log_brain_volume");
  // Training ages (everyone, --val-fraction 0) lie in [20, 80]: bins 15..85, one per year.
  EXPECT_LE(model.at("age_bin_start").get<double>(), 15.0);
  EXPECT_GE(model.at("age_bin_start").get<double>() + model.at("age_bins").get<double>() - 1, 85.0);
  EXPECT_GT(model.at("global_std").get<double>(), 0.0);
  EXPECT_GT(model.at("global_mean").get<double>(), std::log(100.0));  // ln mL of the synthetic brains

  const auto bad = run_brainage("train --manifest \"" + (dir / "vbm.csv").string() + "\" -o \"" + (dir / "bad").string() +
                                "\" --channels t1,flair");
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("flair"), std::string::npos) << bad.out;
  const auto help = run_brainage("train --help");
  for (const char* option : {"--channels", "--stem", "--patch-size", "--loss", "--label-sigma", "--global-input"})
    EXPECT_NE(help.out.find(option), std::string::npos) << option;
}

// `train --seeds 2`: two members on the two folds of one partition (seeds 42 and 43, last
// epoch), assembled into one ensemble checkpoint with the bias correction fitted on their
// pooled out-of-fold predictions. Predictor::forward returns the mean of the members;
// `predict` reports both members' ages, their sd and the corrected age the checkpoint's
// correction gives; `evaluate` writes the sd column with the same number.
TEST(TrainPredict, SeedEnsembleTrainsPredictsAndEvaluates) {
  const fs::path dir = scratch_dir("train-seeds");
  const fs::path manifest = write_manifest(dir, 10);
  const auto train = run_brainage("train --manifest \"" + manifest.string() + "\" -o \"" + (dir / "run").string() +
                                  "\" --seeds 2 --epochs 2 --batch-size 4 --dim 32 --depth 1 --heads 2 --experts 4"
                                  " --expert-rank 8 --warmup-epochs 0 --threads 2 --quiet");
  ASSERT_EQ(train.code, 0) << train.out;
  const fs::path model = dir / "run" / "model.json";
  const auto meta = nlohmann::json::parse(std::ifstream(model));
  EXPECT_EQ(meta.at("model_kind"), "ensemble");
  ASSERT_EQ(meta.at("members").size(), 2u);
  for (int k = 0; k < 2; ++k) {
    const auto& member = meta["members"][k];
    EXPECT_EQ(member.at("training").at("seed"), 42 + k);
    EXPECT_EQ(member.at("training").at("fold"), k);
    EXPECT_EQ(member.at("training").at("final_weights"), "last");
    EXPECT_TRUE(fs::exists(dir / "run" / member.at("weights_file").get<std::string>()));
    EXPECT_TRUE(fs::exists(dir / "run" / ("member" + std::to_string(k)) / "validation_predictions.csv"));
  }
  EXPECT_EQ(meta.at("bias_correction").at("fitted_on"), "out-of-fold (K-fold inner CV)");
  EXPECT_EQ(meta.at("bias_correction").at("n"), 10);  // every subject held out once
  EXPECT_EQ(meta.at("metrics").at("oof_n"), 10);
  const auto oof = brainage::read_delimited_file(dir / "run" / "oof_predictions.csv");
  EXPECT_EQ(oof.rows.size(), 10u);

  // The forward of the ensemble is the mean of its members' forwards.
  brainage::prediction::Predictor predictor(model);
  EXPECT_EQ(predictor.ensemble_size(), 2);
  brainage::prediction::ModelInput input;
  input.volumes = torch::rand({1, 1, 80, 96, 80});
  const auto out = predictor.forward(input, true);
  auto loaded = brainage::model::load_checkpoint(model);
  torch::NoGradGuard no_grad;
  const auto a = loaded.members[0]->forward(input.volumes).age, b = loaded.members[1]->forward(input.volumes).age;
  ASSERT_EQ(out.member_ages.sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_NEAR(out.age.item<double>(), ((a + b) / 2).item<double>(), 1e-5);
  EXPECT_NEAR(out.member_ages[0][1].item<double>(), b.item<double>(), 1e-6);
  EXPECT_EQ(out.layers.size(), 1u);  // the routing member's routing
  // The routing member is the one whose validation routing was most balanced scan by scan.
  const int routing_member = meta.at("routing_member");
  const double cv0 = meta["members"][0]["training"].at("val_scan_load_cv"),
               cv1 = meta["members"][1]["training"].at("val_scan_load_cv");
  EXPECT_EQ(routing_member, cv1 < cv0 ? 1 : 0) << cv0 << " " << cv1;

  const fs::path scan = mricron_templates_dir() / "ch2.nii.gz";
  BRAINAGE_REQUIRE_PATH(scan);
  const auto predict = run_brainage("predict \"" + scan.string() + "\" --model \"" + model.string() + "\" -o \"" +
                                    (dir / "pred").string() + "\" --threads 2");
  ASSERT_EQ(predict.code, 0) << predict.out;
  const auto j = nlohmann::json::parse(std::ifstream(dir / "pred" / "prediction.json"));
  const auto& ensemble = j.at("ensemble");
  EXPECT_EQ(ensemble.at("members"), 2);
  ASSERT_EQ(ensemble.at("member_ages").size(), 2u);
  const double m0 = ensemble["member_ages"][0], m1 = ensemble["member_ages"][1];
  EXPECT_NEAR(j.at("predicted_age").get<double>(), (m0 + m1) / 2, 1e-4);
  EXPECT_NEAR(ensemble.at("sd_years").get<double>(), std::abs(m0 - m1) / std::sqrt(2.0), 1e-6);
  EXPECT_GE(ensemble.at("sd_years").get<double>(), 0.0);
  EXPECT_EQ(ensemble.at("routing_from"), "member " + std::to_string(routing_member) + " of 2");
  brainage::BiasCorrection correction;
  correction.slope = meta["bias_correction"]["slope"];
  correction.intercept = meta["bias_correction"]["intercept"];
  correction.n = meta["bias_correction"]["n"];
  EXPECT_NEAR(j.at("bias_corrected_age").get<double>(), correction.apply(j.at("predicted_age").get<double>()), 1e-9);
  EXPECT_EQ(j.at("bias_correction").at("applied"), correction.usable());
  EXPECT_EQ(j.at("model_id"), meta.at("model_id"));

  const auto row = evaluate_one(dir, "ch2", scan, 27, model);
  ASSERT_TRUE(row.count("age_sd_years") && row.count("predicted_age"));
  EXPECT_NEAR(std::stod(row.at("age_sd_years")), ensemble["sd_years"].get<double>(), 1e-3);
  EXPECT_NEAR(std::stod(row.at("predicted_age")), j["predicted_age"].get<double>(), 1e-3);

  const auto help = run_brainage("train --help");
  EXPECT_NE(help.out.find("--seeds"), std::string::npos);
  const auto bad = run_brainage("train --manifest \"" + manifest.string() + "\" -o \"" + (dir / "bad").string() +
                                "\" --seeds 2 --folds 5");
  EXPECT_EQ(bad.code, 2) << bad.out;
  // The same member twice: refused with one line naming it as a folder given twice, and no
  // output folder left behind.
  const std::string member0 = "\"" + (dir / "run" / "member0").string() + "\"";
  const auto twice = run_brainage("ensemble " + member0 + " " + member0 + " -o \"" + (dir / "twice").string() + "\"");
  EXPECT_NE(twice.code, 0) << twice.out;
  EXPECT_NE(twice.out.find("has the same weights as member 0"), std::string::npos) << twice.out;
  EXPECT_EQ(std::count(twice.out.begin(), twice.out.end(), '\n'), 1) << twice.out;
  EXPECT_FALSE(fs::exists(dir / "twice"));
}

// `ensemble MEMBERS --vbm DIR`: the transformers of `train --seeds 2` and the VBM model of
// `train --model-kind vbm` (its oof_predictions.csv) on the same subjects become one
// checkpoint; Predictor::forward gives (1 − w) · the members' mean + w · the VBM age, and
// `predict` (prediction.json) and `evaluate` (predictions.csv) report each part beside the
// combination. A weight outside [0, 1], or one without --vbm, is a usage error.
TEST(TrainPredict, EnsembleWithAVbmModelAveragesBothAndReportsEachPart) {
  const fs::path dir = scratch_dir("ensemble-vbm");
  const std::string manifest = "\"" + write_vbm_manifest(dir, 12).string() + "\"";
  const auto vbm = run_brainage("train --model-kind vbm --manifest " + manifest + " -o \"" + (dir / "vbm").string() +
                                "\" --threads 2 --quiet");
  ASSERT_EQ(vbm.code, 0) << vbm.out;
  EXPECT_EQ(brainage::read_delimited_file(dir / "vbm" / "oof_predictions.csv").rows.size(), 12u);
  // Members trained before the scans' CSF/WM contrast was recorded (made here by erasing
  // it) take the VBM part's, which was fitted on the same subjects; a distinct range shows
  // which one the ensemble carries.
  auto vbm_json = nlohmann::json::parse(std::ifstream(dir / "vbm" / "model.json"));
  const nlohmann::json contrast = {{"csf_wm_ratio", {{"min", 0.3}, {"max", 0.4}, {"mean", 0.35}, {"sd", 0.02}, {"subjects", 12}}}};
  vbm_json["training"]["data"]["tissue_contrast"] = contrast;
  std::ofstream(dir / "vbm" / "model.json") << vbm_json.dump(2);
  // The CLI defaults (the shipped default's VBM part): CSF, GM and WM, proportional
  // scaling, left-right symmetric features.
  const auto vbm_meta = nlohmann::json::parse(std::ifstream(dir / "vbm" / "model.json"));
  EXPECT_EQ(vbm_meta.at("model").at("channels"), nlohmann::json::array({0, 1, 2}));
  EXPECT_EQ(vbm_meta.at("model").at("scaling"), "proportional");
  EXPECT_TRUE(vbm_meta.at("model").at("left_right_symmetric").get<bool>());
  const auto seeds = run_brainage("train --manifest " + manifest + " -o \"" + (dir / "run").string() +
                                  "\" --seeds 2 --channels gm,csf --epochs 1 --batch-size 4 --dim 16 --depth 1"
                                  " --heads 2 --experts 4 --expert-rank 4 --warmup-epochs 0 --threads 2 --quiet");
  ASSERT_EQ(seeds.code, 0) << seeds.out;
  for (const char* member : {"member0", "member1"}) {
    auto member_json = nlohmann::json::parse(std::ifstream(dir / "run" / member / "model.json"));
    ASSERT_EQ(member_json.at("training").at("data").erase("tissue_contrast"), 1u);
    std::ofstream(dir / "run" / member / "model.json") << member_json.dump(2);
  }
  const std::string members = "\"" + (dir / "run" / "member0").string() + "\" \"" + (dir / "run" / "member1").string() + "\"";
  const auto combined = run_brainage("ensemble " + members + " --vbm \"" + (dir / "vbm").string() + "\" -o \"" +
                                     (dir / "combined").string() + "\"");
  ASSERT_EQ(combined.code, 0) << combined.out;
  EXPECT_NE(combined.out.find("VBM weight"), std::string::npos) << combined.out;
  const fs::path model = dir / "combined" / "model.json";
  const auto meta = nlohmann::json::parse(std::ifstream(model));
  const double w = meta.at("vbm_member").at("weight");
  // The weight chosen is the scan's minimum (0, 0.1, ..., 1).
  double best = 1e9;
  for (const auto& row : meta.at("metrics").at("vbm_weight_scan")) best = std::min(best, row.at("oof_mae").get<double>());
  for (const auto& row : meta.at("metrics").at("vbm_weight_scan"))
    if (std::abs(row.at("vbm_weight").get<double>() - w) < 1e-9) EXPECT_DOUBLE_EQ(row.at("oof_mae").get<double>(), best);
  const auto oof = brainage::read_delimited_file(dir / "combined" / "oof_predictions.csv");
  EXPECT_GE(brainage::column_index(oof.header, "vbm_age"), 0);
  EXPECT_EQ(meta.at("training").at("data").at("tissue_contrast"), contrast);
  EXPECT_EQ(meta.at("vbm_member").at("training").at("data").at("subjects").get<int>(), 12);

  // The forward: (1 − w) · mean of the members + w · the VBM model, on the same tissue maps.
  brainage::prediction::Predictor predictor(model);
  brainage::prediction::ModelInput input;
  input.tissue_maps = torch::rand({1, 3, 80, 96, 80}) * 0.008f;
  input.volumes = torch::stack({input.tissue_maps[0][1], input.tissue_maps[0][0]}).unsqueeze(0) / 0.008f;  // gm, csf
  const auto out = predictor.forward(input, false);
  auto original = brainage::model::load_checkpoint(dir / "vbm" / "model.json", /*accept_vbm=*/true);
  const double vbm_age = original.vbm->predict_raw(input.tissue_maps).item<double>();
  EXPECT_NEAR(out.vbm_age.item<double>(), vbm_age, 1e-3);
  EXPECT_NEAR(out.age.item<double>(), (1 - w) * out.member_ages.mean().item<double>() + w * vbm_age, 1e-3);

  const fs::path scan = shared_data_dir() / "ixi-hh-2mm" / "t1" / "IXI012-HH-1211_T1.nii.gz";
  if (fs::exists(scan)) {
    const auto predict = run_brainage("predict \"" + scan.string() + "\" --model \"" + model.string() + "\" -o \"" +
                                      (dir / "pred").string() + "\" --threads 2");
    ASSERT_EQ(predict.code, 0) << predict.out;
    const auto j = nlohmann::json::parse(std::ifstream(dir / "pred" / "prediction.json"));
    const auto& e = j.at("ensemble");
    EXPECT_EQ(e.at("vbm_weight").get<double>(), w);
    EXPECT_NEAR(j.at("predicted_age").get<double>(),
                (1 - w) * e.at("transformer_mean_age").get<double>() + w * e.at("vbm_age").get<double>(), 1e-4);
    // `evaluate` gives the two parts beside the combination in predictions.csv.
    const auto row = evaluate_one(dir, "IXI012", scan, 38.8, model);
    ASSERT_TRUE(row.count("transformer_age") && row.count("vbm_age"));
    EXPECT_NEAR(std::stod(row.at("transformer_age")), e.at("transformer_mean_age").get<double>(), 1e-3);
    EXPECT_NEAR(std::stod(row.at("vbm_age")), e.at("vbm_age").get<double>(), 1e-3);
  }

  for (const char* bad : {" --vbm-weight 1.5", " --vbm-weight x"}) {
    const auto r = run_brainage("ensemble " + members + " --vbm \"" + (dir / "vbm").string() + "\" -o \"" +
                                (dir / "bad").string() + "\"" + bad);
    EXPECT_EQ(r.code, 2) << bad << r.out;
  }
  EXPECT_EQ(run_brainage("ensemble " + members + " -o \"" + (dir / "bad").string() + "\" --vbm-weight 0.5").code, 2);
  EXPECT_EQ(run_brainage("ensemble " + members + " -o \"" + (dir / "bad").string() + "\" --vbm \"\"").code, 2);
  EXPECT_FALSE(fs::exists(dir / "bad"));
}
