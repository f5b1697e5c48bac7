// CSV/TSV parsing as spreadsheets write it.
#include "common/csv.h"

#include <gtest/gtest.h>

#include "common/errors.h"

using namespace brainage;

TEST(Csv, BomCrlfQuotesAndBlankLines) {
  const std::string text =
      "\xEF\xBB\xBFsubject_id,path,age,note\r\n"
      "s1,a.nii,30,\"hello, world\"\r\n"
      "\r\n"
      "s2,\"b c.nii\",40.5,\"she said \"\"hi\"\"\"\r\n"
      "s3,c.nii,50,\"two\r\nlines\"\r\n";
  const auto t = parse_delimited(text, ',', "test.csv");
  ASSERT_EQ(t.header, (std::vector<std::string>{"subject_id", "path", "age", "note"}));
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0][3], "hello, world");
  EXPECT_EQ(t.rows[1][1], "b c.nii");
  EXPECT_EQ(t.rows[1][3], "she said \"hi\"");
  EXPECT_EQ(t.rows[2][3], "two\nlines");
  EXPECT_EQ(t.line_numbers, (std::vector<std::size_t>{2, 4, 5}));
}

TEST(Csv, TrimsUnquotedCellsAndKeepsEmptyOnes) {
  const auto t = parse_delimited("a , b,c\n 1 ,,3", ',', "x");
  EXPECT_EQ(t.header, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(t.rows[0], (std::vector<std::string>{"1", "", "3"}));
}

TEST(Csv, TabSeparated) {
  const auto t = parse_delimited("participant_id\tage\nsub-01\t31\n", '\t', "p.tsv");
  EXPECT_EQ(t.rows[0], (std::vector<std::string>{"sub-01", "31"}));
}

TEST(Csv, UnclosedQuoteAndEmptyTableThrowNamingTheFile) {
  try {
    parse_delimited("a,b\n1,\"oops\n", ',', "bad.csv");
    FAIL() << "no exception";
  } catch (const brainage::InvalidInputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.csv"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_delimited("\xEF\xBB\xBF\r\n\n", ',', "empty.csv"), brainage::InvalidInputError);
}

TEST(Csv, FieldsRoundTrip) {
  const std::vector<std::string> fields = {"plain", "a,b", "q\"q", "multi\nline", " padded ", ""};
  const auto t = parse_delimited("h1,h2,h3,h4,h5,h6\n" + csv_record(fields), ',', "rt");
  EXPECT_EQ(t.rows.at(0), fields);
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
}
