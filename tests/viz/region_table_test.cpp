// Normalised mutual information and the share table, on hand-made contingencies.
#include "viz/region_table.h"

#include <gtest/gtest.h>

#include <sstream>

using namespace brainage::viz;

TEST(RegionTable, NmiIsOneForAPerfectMatchAndZeroForIndependence) {
  EXPECT_NEAR(normalised_mutual_information({{10, 0, 0}, {0, 5, 0}, {0, 0, 7}}), 1.0, 1e-12);
  EXPECT_NEAR(normalised_mutual_information({{10, 20, 30}, {1, 2, 3}}), 0.0, 1e-12);  // product of marginals
  const double mid = normalised_mutual_information({{8, 2}, {2, 8}});
  EXPECT_GT(mid, 0.1);
  EXPECT_LT(mid, 0.9);
  EXPECT_EQ(normalised_mutual_information({{5, 5}, {0, 0}}), 0.0);  // one expert only
}

TEST(RegionTable, CsvRowsSumToOneAndEmptyExpertsHaveNoShares) {
  CategoryMap cats;
  cats.names = {"outside", "A", "B"};
  LayerTable t{"summary", {{1, 2, 1}, {0, 0, 0}, {3, 0, 1}}, {4, 0, 2}};
  const std::string csv = share_csv({t}, cats);
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "layer,expert,brain_tokens,token_share,brain_voxels,A,B,outside");
  int rows = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ls(line);
    std::string c;
    while (std::getline(ls, c, ',')) cells.push_back(c);
    while (cells.size() < 8) cells.push_back("");
    ++rows;
    if (cells[4] == "0") {
      EXPECT_EQ(cells[5], "");  // no voxels: no shares
      continue;
    }
    double sum = 0;
    for (int k = 5; k < 8; ++k) sum += std::stod(cells[static_cast<std::size_t>(k)]);
    EXPECT_NEAR(sum, 1.0, 1e-5) << line;
  }
  EXPECT_EQ(rows, 3);
  EXPECT_NE(csv.find("summary,Expert 1,4,0.666667,4,0.5,0.25,0.25"), std::string::npos) << csv;
}
