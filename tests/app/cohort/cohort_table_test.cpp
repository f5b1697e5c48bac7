// Reading cohorts: CSV rules (columns, relative paths, row errors) and BIDS layouts.
#include "app/cohort/cohort_table.h"

#include <gtest/gtest.h>

#include "common/errors.h"
#include "tests/app/cohort/cohort_fixture.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using namespace brainage::cohort;
using namespace brainage::testing;

TEST(CohortCsv, ResolvesRelativePathsAndCarriesExtraColumns) {
  const auto dir = scratch_dir("cohort-table-csv");
  fs::create_directories(dir / "scans");
  write_text(dir / "cohort.csv",
             "\xEF\xBB\xBFsubject_id,path,age,sex,site,scanner_model,notes\r\n"
             "A,scans/a.nii.gz,30.5,F,S1,Prisma,\"first, scan\"\r\n"
             "B,/abs/b.nii,,M,S2,Trio,\r\n");
  const Cohort c = read_cohort_csv(dir / "cohort.csv");
  ASSERT_EQ(c.subjects.size(), 2u);
  EXPECT_TRUE(c.has_sex);
  EXPECT_TRUE(c.has_site);
  EXPECT_EQ(c.extra_columns, (std::vector<std::string>{"scanner_model", "notes"}));
  EXPECT_EQ(c.subjects[0].scan, fs::absolute(dir) / "scans" / "a.nii.gz");
  EXPECT_EQ(c.subjects[1].scan, fs::path("/abs/b.nii"));
  EXPECT_DOUBLE_EQ(*c.subjects[0].age, 30.5);
  EXPECT_FALSE(c.subjects[1].age.has_value()) << "an empty age is allowed (predicted, not scored)";
  EXPECT_TRUE(c.subjects[1].row_error.empty());
  EXPECT_EQ(c.subjects[0].extra, (std::vector<std::string>{"Prisma", "first, scan"}));
  EXPECT_EQ(c.subjects[1].row, 2u);
}

TEST(CohortCsv, BadRowsAreRecordedNotFatal) {
  const auto dir = scratch_dir("cohort-table-bad");
  write_text(dir / "c.csv",
             "subject_id,t1,age\n"
             "A,a.nii,30\n"
             "B,b.nii,thirty\n"
             "C,c.nii,-4\n"
             "A,a2.nii,31\n"
             ",d.nii,40\n"
             "E,,40\n"
             "F,f.nii,nan\n"
             "G,g.nii,40,extra\n");
  const Cohort c = read_cohort_csv(dir / "c.csv");
  ASSERT_EQ(c.subjects.size(), 8u);
  EXPECT_TRUE(c.subjects[0].row_error.empty());
  EXPECT_NE(c.subjects[1].row_error.find("not a number"), std::string::npos) << c.subjects[1].row_error;
  EXPECT_NE(c.subjects[2].row_error.find("negative"), std::string::npos);
  EXPECT_NE(c.subjects[3].row_error.find("duplicate subject_id 'A'"), std::string::npos) << c.subjects[3].row_error;
  EXPECT_NE(c.subjects[4].row_error.find("empty subject_id"), std::string::npos);
  EXPECT_NE(c.subjects[5].row_error.find("empty path"), std::string::npos);
  EXPECT_NE(c.subjects[6].row_error.find("not finite"), std::string::npos) << c.subjects[6].row_error;
  EXPECT_NE(c.subjects[7].row_error.find("4 fields"), std::string::npos) << c.subjects[7].row_error;
  EXPECT_EQ(c.row_error_count(), 7u);
}

TEST(CohortCsv, MissingColumnsOrFileAreFatal) {
  const auto dir = scratch_dir("cohort-table-fatal");
  write_text(dir / "noage.csv", "subject_id,path\nA,a.nii\n");
  write_text(dir / "header_only.csv", "subject_id,path,age\n");
  EXPECT_THROW(read_cohort_csv(dir / "noage.csv"), brainage::InvalidInputError);
  EXPECT_THROW(read_cohort_csv(dir / "header_only.csv"), brainage::InvalidInputError);
  EXPECT_THROW(read_cohort_csv(dir / "absent.csv"), brainage::InvalidInputError);
}

TEST(CohortBids, SubjectsSessionsAndParticipantsTsv) {
  const auto dir = scratch_dir("cohort-bids");
  for (const auto* p : {"sub-01/anat", "sub-02/ses-1/anat", "sub-02/ses-2/anat", "sub-03/anat", "derivatives/x/anat"})
    fs::create_directories(dir / p);
  write_scan_with_mean(dir / "sub-01/anat/sub-01_T1w.nii.gz", 30);
  write_scan_with_mean(dir / "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz", 40);
  write_scan_with_mean(dir / "sub-02/ses-2/anat/sub-02_ses-2_T1w.nii", 42);
  write_scan_with_mean(dir / "sub-02/ses-2/anat/sub-02_ses-2_T2w.nii", 42);  // not a T1w
  write_scan_with_mean(dir / "sub-03/anat/sub-03_T1w.nii.gz", 50);
  write_text(dir / "participants.tsv", "participant_id\tage\tsex\tsite\nsub-01\t31\tF\tA\nsub-02\t41.5\tM\tB\n");
  write_text(dir / "sub-02/sub-02_sessions.tsv", "session_id\tage\nses-1\t41.5\nses-2\t43\n");
  const Cohort c = read_bids_cohort(dir);
  ASSERT_EQ(c.subjects.size(), 4u);
  EXPECT_EQ(c.format, "bids");
  EXPECT_EQ(c.subjects[0].id, "sub-01");
  EXPECT_DOUBLE_EQ(*c.subjects[0].age, 31);
  EXPECT_EQ(c.subjects[0].sex, "F");
  EXPECT_EQ(c.subjects[1].id, "sub-02_ses-1");
  EXPECT_DOUBLE_EQ(*c.subjects[1].age, 41.5);
  EXPECT_EQ(c.subjects[2].id, "sub-02_ses-2");
  EXPECT_DOUBLE_EQ(*c.subjects[2].age, 43) << "the sessions file's age wins";
  EXPECT_EQ(c.subjects[2].extra, (std::vector<std::string>{"ses-2"}));
  EXPECT_EQ(c.subjects[3].id, "sub-03");
  EXPECT_FALSE(c.subjects[3].age.has_value()) << "not in participants.tsv: predicted, not scored";
  EXPECT_EQ(load_cohort(dir).subjects.size(), 4u);
  EXPECT_THROW(read_bids_cohort(dir / "derivatives"), brainage::InvalidInputError);
}
