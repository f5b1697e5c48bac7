// Checkpoints: save -> load gives identical outputs; corrupt, truncated, wrong-version
// or mismatched checkpoints throw ModelError (never crash).
#include "model/checkpoint.h"
#include "model/vbm_model.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "common/errors.h"
#include "common/content_hash.h"
#include "tests/test_data.h"
#include "tests/model/tiny_model_options.h"

namespace bm = brainage::model;
namespace fs = std::filesystem;

namespace {
bm::ModelOptions tiny() { return brainage::testing::tiny_model_options(2); }

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_all(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
}  // namespace

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(17);
    dir = brainage::testing::scratch_dir("checkpoint");
    model = bm::BrainAgeModel(tiny());
    model->eval();
    bm::CheckpointInfo info;
    info.preprocessing_version = "test";
    info.bias_correction = brainage::BiasCorrection::fit({20, 40, 60, 80}, {30, 42, 54, 66});
    id = bm::save_checkpoint(dir / "ckpt", model, info);
  }
  fs::path dir;
  bm::BrainAgeModel model{nullptr};
  std::string id;
};

TEST_F(CheckpointTest, SaveLoadGivesIdenticalOutputs) {
  auto loaded = bm::load_checkpoint(dir / "ckpt.json");
  const auto x = torch::randn({2, 1, 8, 12, 16});
  torch::NoGradGuard no_grad;
  const auto a = model->forward(x, true);
  const auto b = loaded.model->forward(x, true);
  EXPECT_TRUE(torch::equal(a.age, b.age));
  EXPECT_TRUE(torch::equal(a.layers[0].expert_ids, b.layers[0].expert_ids));
  EXPECT_EQ(loaded.info.model_id, id);
  EXPECT_EQ(id.rfind("ermoe-ba-", 0), 0u);
  EXPECT_EQ(loaded.info.preprocessing_version, "test");
  EXPECT_NEAR(loaded.info.bias_correction.slope, 0.6, 1e-12);
  EXPECT_NEAR(loaded.info.bias_correction.intercept, 18.0, 1e-12);
  EXPECT_NEAR(loaded.info.bias_correction.apply(54.0), 60.0, 1e-9);
  // .pt and the stem name the same checkpoint.
  EXPECT_EQ(bm::load_checkpoint(dir / "ckpt.pt").info.model_id, id);
}

TEST_F(CheckpointTest, APairRenamedTogetherStillLoads) {
  fs::rename(dir / "ckpt.pt", dir / "brainage-default.pt");
  fs::rename(dir / "ckpt.json", dir / "brainage-default.json");
  EXPECT_EQ(bm::load_checkpoint(dir / "brainage-default.json").info.model_id, id);
}

// `train -o DIR` writes DIR/model.{json,pt}; `--model DIR` names it (a helper's new-user
// pass got "DIR.json: checkpoint not found").
TEST_F(CheckpointTest, AnOutputFolderNamesItsModelJson) {
  fs::create_directories(dir / "run");
  fs::rename(dir / "ckpt.pt", dir / "run" / "model.pt");
  fs::rename(dir / "ckpt.json", dir / "run" / "model.json");
  EXPECT_EQ(bm::checkpoint_json_path(dir / "run"), dir / "run" / "model.json");
  EXPECT_EQ(bm::load_checkpoint(dir / "run").info.model_id, id);
  EXPECT_EQ(bm::load_checkpoint(dir / "run/").info.model_id, id);
}

// A helper's pass: `--model amb` took the folder amb/ although amb.json was the checkpoint,
// and `--model nonexist/` was reported as "nonexist/.json.json".
TEST_F(CheckpointTest, AStemBesideAFolderOfTheSameNameIsNotTakenForTheFolder) {
  fs::create_directories(dir / "ckpt");  // e.g. train's cache beside the checkpoint
  EXPECT_EQ(bm::checkpoint_json_path(dir / "ckpt"), dir / "ckpt.json");
  EXPECT_EQ(bm::load_checkpoint(dir / "ckpt").info.model_id, id);
  std::ofstream(dir / "ckpt" / "model.json") << "{}";
  EXPECT_THROW(bm::checkpoint_json_path(dir / "ckpt"), brainage::UsageError);  // two checkpoints: say so
  EXPECT_EQ(bm::checkpoint_json_path(dir / "ckpt.json"), dir / "ckpt.json");   // a named file is never ambiguous
  EXPECT_EQ(bm::checkpoint_json_path(dir / "nonexist/"), dir / "nonexist/" / "model.json");
  EXPECT_EQ(bm::checkpoint_json_path(dir / "nonexist"), dir / "nonexist.json");
  try {  // "ckpt2/" for ckpt2.json: a folder that is not there; the message names the file meant
    fs::copy_file(dir / "ckpt.json", dir / "ckpt2.json");
    bm::load_checkpoint(dir / "ckpt2/");
    FAIL() << "a missing folder loaded";
  } catch (const brainage::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean " + (dir / "ckpt2.json").string()), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointTest, CorruptWeightsThrowModelError) {
  auto bytes = read_all(dir / "ckpt.pt");
  bytes[bytes.size() / 2] ^= 0x5a;
  write_all(dir / "ckpt.pt", bytes);
  EXPECT_THROW(bm::load_checkpoint(dir / "ckpt"), brainage::ModelError);
}

TEST_F(CheckpointTest, TruncatedWeightsThrowModelError) {
  const auto bytes = read_all(dir / "ckpt.pt");
  write_all(dir / "ckpt.pt", bytes.substr(0, bytes.size() / 3));
  try {
    bm::load_checkpoint(dir / "ckpt");
    FAIL() << "no error";
  } catch (const brainage::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointTest, TruncatedOrWrongVersionJsonThrowsModelError) {
  const auto text = read_all(dir / "ckpt.json");
  write_all(dir / "ckpt.json", text.substr(0, text.size() / 2));
  EXPECT_THROW(bm::load_checkpoint(dir / "ckpt"), brainage::ModelError);
  auto j = nlohmann::json::parse(text);
  j["format_version"] = 99;
  write_all(dir / "ckpt.json", j.dump());
  try {
    bm::load_checkpoint(dir / "ckpt");
    FAIL() << "no error";
  } catch (const brainage::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("format_version 99"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointTest, IllTypedMetadataFieldsThrowModelErrorNotACrash) {
  // Fuzzer finds: a duplicate "format" key whose last value is a number, a non-object
  // document, and model fields of the wrong JSON type. Each must be a ModelError.
  const auto text = read_all(dir / "ckpt.json");
  for (const std::string bad : {std::string(R"({"format":"brainage-checkpoint","format":1})"), std::string("[1,2]"),
                                std::string(R"({"format":null,"format_version":1})"), std::string("\"x\"")}) {
    write_all(dir / "ckpt.json", bad);
    EXPECT_THROW(bm::read_checkpoint_info(dir / "ckpt.json"), brainage::ModelError) << bad;
  }
  auto j = nlohmann::json::parse(text);
  j["model"]["dim"] = "wide";
  j["grid"] = {1, 2};
  write_all(dir / "ckpt.json", j.dump());
  EXPECT_THROW(bm::load_checkpoint(dir / "ckpt"), brainage::ModelError);
}

TEST_F(CheckpointTest, WeightsThatDoNotFitTheOptionsThrowModelError) {
  // Same file, checksum fixed up, but the JSON claims a wider model: shapes mismatch.
  auto j = nlohmann::json::parse(read_all(dir / "ckpt.json"));
  j["model"]["dim"] = 32;
  j["model"]["heads"] = 2;
  write_all(dir / "ckpt.json", j.dump());
  EXPECT_THROW(bm::load_checkpoint(dir / "ckpt"), brainage::ModelError);
  // Missing checkpoint, and a file that is not a checkpoint at all.
  EXPECT_THROW(bm::load_checkpoint(dir / "absent.json"), brainage::ModelError);
  write_all(dir / "junk.json", "{\"hello\": 1}");
  EXPECT_THROW(bm::load_checkpoint(dir / "junk.json"), brainage::ModelError);
}

TEST_F(CheckpointTest, GarbageWeightsWithMatchingChecksumThrowModelError) {
  write_all(dir / "ckpt.pt", "this is not a torch archive at all");
  auto j = nlohmann::json::parse(read_all(dir / "ckpt.json"));
  j["weights_bytes"] = static_cast<int64_t>(fs::file_size(dir / "ckpt.pt"));
  j["weights_sha256"] = brainage::sha256_file_hex(dir / "ckpt.pt");
  write_all(dir / "ckpt.json", j.dump());
  EXPECT_THROW(bm::load_checkpoint(dir / "ckpt"), brainage::ModelError);
}

// The checkpoint shipped as the default until the eighth session (ermoe-ba-c0f23b4e8d26,
// kept as tests/model/data/: written before input channels, stems, soft labels and global
// inputs existed) loads with the old defaults and predicts exactly what it predicted before
// them on a fixed, formula-made input (values read with the code of commit ba4f5d9;
// tolerance 1e-4 y for BLAS summation order): users' old checkpoints keep working.
TEST(ShippedCheckpoint, LoadsWithOldDefaultsAndPredictsAsBefore) {
  const fs::path path = fs::path(BRAINAGE_SOURCE_DIR) / "tests" / "model" / "data" / "ermoe-ba-c0f23b4e8d26.json";
  BRAINAGE_REQUIRE_PATH(path);
  auto loaded = bm::load_checkpoint(path);
  // A smooth synthetic "brain": a bright ellipsoid with a darker core, [2, 1, 80, 96, 80].
  const auto z = torch::linspace(-1, 1, 80).view({80, 1, 1});
  const auto y = torch::linspace(-1, 1, 96).view({1, 96, 1});
  const auto x = torch::linspace(-1, 1, 80).view({1, 1, 80});
  const auto r2 = z * z + y * y + x * x;
  const auto brain = (r2 < 0.8).to(torch::kFloat32) * (1.0 - 0.5 * (r2 < 0.2).to(torch::kFloat32));
  const auto volumes = torch::stack({brain, brain * (0.7 + 0.3 * torch::cos(3 * x))}).unsqueeze(1);
  torch::NoGradGuard no_grad;
  const auto out = loaded.model->forward(volumes);
  ASSERT_EQ(out.age.sizes(), (std::vector<int64_t>{2}));
  EXPECT_NEAR(out.age[0].item<double>(), 39.399441, 1e-4);
  EXPECT_NEAR(out.age[1].item<double>(), 34.362160, 1e-4);
  EXPECT_EQ(loaded.info.model.channels, std::vector<std::string>{"t1"});
  EXPECT_EQ(loaded.info.model.stem, bm::StemKind::kPatch);
  EXPECT_EQ(loaded.info.model.loss, bm::LossKind::kL1);
  EXPECT_EQ(loaded.info.model.global_input, bm::GlobalInput::kNone);
}

namespace {
/// Every ERMoE-ba v2 option away from its default, on a small grid.
bm::ModelOptions v2_tiny() {
  bm::ModelOptions o = tiny();
  o.grid = {8, 16, 16};
  o.patch_size = 8;  // conv stem: pool 2, then 2 stride-2 layers -> 1 x 2 x 2 tokens
  o.channels = {"csf", "t1", "gm", "wm"};
  o.stem = bm::StemKind::kConv;
  o.stem_width = 8;
  o.loss = bm::LossKind::kKl;
  o.label_sigma = 1.5;
  o.age_bin_start = 14;
  o.age_bins = 80;
  o.global_input = bm::GlobalInput::kLogBrainVolume;
  o.global_mean = 7.2;
  o.global_std = 0.1;
  return o;
}
}  // namespace

TEST(CheckpointV2, SaveLoadRoundTripGivesIdenticalOptionsAndOutputs) {
  torch::manual_seed(23);
  const fs::path dir = brainage::testing::scratch_dir("checkpoint-v2");
  bm::BrainAgeModel model(v2_tiny());
  model->eval();
  bm::save_checkpoint(dir / "v2", model, bm::CheckpointInfo{});
  auto loaded = bm::load_checkpoint(dir / "v2.json");
  EXPECT_EQ(bm::to_json(loaded.info.model), bm::to_json(v2_tiny()));
  const auto volumes = torch::rand({3, 4, 8, 16, 16});
  const auto global = torch::tensor({7.1f, 7.2f, 7.35f}).view({3, 1});
  torch::NoGradGuard no_grad;
  const auto a = model->forward(volumes, false, global), b = loaded.model->forward(volumes, false, global);
  EXPECT_TRUE(torch::equal(a.age, b.age));
  EXPECT_TRUE(torch::equal(a.logits, b.logits));
  ASSERT_EQ(a.logits.sizes(), (std::vector<int64_t>{3, 80}));
  // The global input reaches the head: another brain volume, another age.
  const auto c = loaded.model->forward(volumes, false, global + 0.3);
  EXPECT_GT((c.age - b.age).abs().max().item<double>(), 1e-6);
  EXPECT_THROW(loaded.model->forward(volumes), c10::Error);  // the global input is required
}

TEST(CheckpointV2, BrokenV2OptionsThrowModelError) {
  auto expect_refused = [](const std::function<void(bm::ModelOptions&)>& change) {
    bm::ModelOptions o = v2_tiny();
    change(o);
    EXPECT_THROW(o.validate(), brainage::ModelError);
    EXPECT_THROW(bm::model_options_from_json(bm::to_json(o)), brainage::ModelError);
  };
  expect_refused([](bm::ModelOptions& o) { o.channels = {"t1", "flair"}; });
  expect_refused([](bm::ModelOptions& o) { o.channels = {"gm", "gm"}; });
  expect_refused([](bm::ModelOptions& o) { o.channels.clear(); });
  expect_refused([](bm::ModelOptions& o) { o.stem_pool = 8; });   // 8 / 8 = 1 layer of stride 2: none
  expect_refused([](bm::ModelOptions& o) { o.age_bins = 1; });
  expect_refused([](bm::ModelOptions& o) { o.label_sigma = 0; });
  expect_refused([](bm::ModelOptions& o) { o.global_std = 0; });
  nlohmann::json j = bm::to_json(v2_tiny());
  j["stem"] = "vit";
  EXPECT_THROW(bm::model_options_from_json(j), brainage::ModelError);
  j = bm::to_json(v2_tiny());
  j["loss"] = "mse";
  EXPECT_THROW(bm::model_options_from_json(j), brainage::ModelError);
}

// The shipped default (data/model/brainage-default.json): the ERMoE-ba v2 cross-validated
// seed ensemble with its VBM model (docs/RESULTS.md, data/model/MODEL_CARD.md). It loads
// with every member verified, reads the tissue channels, carries the out-of-fold
// calibration and the weight the out-of-fold predictions chose, fits the 20 MB budget,
// and gives a finite age of every member for a formula-made input.
TEST(ShippedCheckpoint, TheDefaultIsTheCalibratedErmoeBaEnsembleWithItsVbmModel) {
  const fs::path path = fs::path(BRAINAGE_SOURCE_DIR) / "data" / "model" / "brainage-default.json";
  BRAINAGE_REQUIRE_PATH(path);
  auto loaded = bm::load_checkpoint(path, /*accept_vbm=*/true);
  EXPECT_EQ(loaded.info.model_kind, bm::kEnsembleModelKind);
  ASSERT_GE(loaded.members.size(), 2u);
  EXPECT_EQ(loaded.info.model.ffn, bm::FfnKind::kErmoe);
  ASSERT_TRUE(loaded.info.vbm_member.has_value());
  ASSERT_TRUE(loaded.vbm);
  EXPECT_GE(loaded.info.vbm_member->weight, 0.0);
  EXPECT_LE(loaded.info.vbm_member->weight, 1.0);
  EXPECT_EQ(loaded.info.bias_correction_fitted_on, "out-of-fold (K-fold inner CV)");
  EXPECT_EQ(loaded.info.bias_correction.n, loaded.info.metrics.at("oof_n").get<std::size_t>());
  std::uintmax_t bytes = 0;
  for (const auto& entry : fs::directory_iterator(path.parent_path()))
    if (entry.path().filename().string().rfind("brainage-default.", 0) == 0) bytes += fs::file_size(entry.path());
  EXPECT_LE(bytes, 20u * 1024 * 1024);

  // A smooth synthetic brain in every channel the members read, [1, C, 80, 96, 80].
  const auto z = torch::linspace(-1, 1, 80).view({80, 1, 1});
  const auto y = torch::linspace(-1, 1, 96).view({1, 96, 1});
  const auto x = torch::linspace(-1, 1, 80).view({1, 1, 80});
  const auto brain = ((z * z + y * y + x * x) < 0.8).to(torch::kFloat32);
  const auto channels = static_cast<int64_t>(loaded.info.model.channels.size());
  const auto volumes = brain.expand({1, channels, 80, 96, 80}).contiguous() * 0.5;
  torch::NoGradGuard no_grad;
  for (auto& member : loaded.members) {
    const auto age = member->forward(volumes, false, torch::full({1, 1}, 7.3f)).age;
    EXPECT_TRUE(std::isfinite(age.item<double>()));
  }
  EXPECT_TRUE(std::isfinite(loaded.vbm->predict_raw(brain.expand({1, 3, 80, 96, 80}) * 0.004).item<double>()));
}
