// prediction::training_subject_ids, training_subjects_in and training_overlap_warning
// (app/prediction/training_overlap.h): which cohort subjects a checkpoint was trained on,
// the warning `evaluate` prints, and the shipped default's record of its subjects.
#include "app/prediction/training_overlap.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "model/checkpoint.h"
#include "tests/test_data.h"

namespace bp = brainage::prediction;

TEST(TrainingOverlap, ReadsTheSubjectIdsOfEnsemblesAndVbmModelsAndIgnoresOthers) {
  EXPECT_EQ(bp::training_subject_ids(nlohmann::json::parse(R"({"data": {"subject_ids": ["a", "b"]}})")),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(bp::training_subject_ids(nlohmann::json::parse(R"({"subject_ids": ["c"]})")),
            (std::vector<std::string>{"c"}));
  for (const char* text : {R"({})", R"({"data": {}})", R"({"data": {"subject_ids": "a"}})", R"([])", R"(3)"})
    EXPECT_TRUE(bp::training_subject_ids(nlohmann::json::parse(text)).empty()) << text;
}

TEST(TrainingOverlap, NamesTheCohortSubjectsTheModelWasTrainedOn) {
  const std::vector<std::string> trained{"IXI012-HH-1211", "IXI014-HH-1236", "IXI015-HH-1258"};
  const std::vector<std::string> cohort{"new-1", "IXI015-HH-1258", "new-2", "IXI012-HH-1211"};
  const auto shared = bp::training_subjects_in(cohort, trained);
  EXPECT_EQ(shared, (std::vector<std::string>{"IXI015-HH-1258", "IXI012-HH-1211"}));  // cohort order
  const auto warning = bp::training_overlap_warning(shared, cohort.size());
  ASSERT_TRUE(warning.has_value());
  EXPECT_EQ(*warning, "2 of 4 cohort subjects were training subjects of the model (IXI015-HH-1258, IXI012-HH-1211): "
                      "their ages are in-sample, leave them out to measure accuracy");
  EXPECT_FALSE(bp::training_overlap_warning(bp::training_subjects_in({"new-1"}, trained), 1).has_value());
  std::vector<std::string> many;
  for (int i = 0; i < 8; ++i) many.push_back("s" + std::to_string(i));
  EXPECT_NE(bp::training_overlap_warning(many, 8)->find("(s0, s1, s2, s3, s4, ...)"), std::string::npos);
}

TEST(TrainingOverlap, TheShippedDefaultListsItsTrainingSubjects) {
  // What evaluate reads: IXI users must learn that ../shared's IXI-HH scans are in-sample.
  const auto path = std::filesystem::path(BRAINAGE_SOURCE_DIR) / "data" / "model" / "brainage-default.json";
  BRAINAGE_REQUIRE_PATH(path);
  const auto info = brainage::model::read_checkpoint_info(path);
  const auto ids = bp::training_subject_ids(info.training);
  EXPECT_EQ(ids.size(), info.training.at("data").at("subjects").get<std::size_t>());
  EXPECT_NE(std::find(ids.begin(), ids.end(), "IXI012-HH-1211"), ids.end());
  EXPECT_EQ(std::find(ids.begin(), ids.end(), "IXI508-HH-2268"), ids.end());  // failed QC, never trained on
}
