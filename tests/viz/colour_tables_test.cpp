// The three viewer colour tables parse, list every expert with the palette's colour, and
// the palette is distinct and bounded.
#include "viz/colour_tables.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/errors.h"
#include "tests/test_data.h"
#include "viz/palette.h"

using namespace brainage::viz;

namespace {
struct Entry {
  int r, g, b;
  std::string name;
};

std::map<int, Entry> parse_fsleyes(const std::string& text) {
  std::map<int, Entry> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    int k;
    double r, g, b;
    EXPECT_TRUE(static_cast<bool>(ls >> k >> r >> g >> b)) << line;
    std::string name;
    std::getline(ls >> std::ws, name);
    out[k] = {static_cast<int>(std::lround(r * 255)), static_cast<int>(std::lround(g * 255)),
              static_cast<int>(std::lround(b * 255)), name};
  }
  return out;
}

std::map<int, Entry> parse_itksnap(const std::string& text) {
  std::map<int, Entry> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    int k, r, g, b, vis, msh;
    double a;
    EXPECT_TRUE(static_cast<bool>(ls >> k >> r >> g >> b >> a >> vis >> msh)) << line;
    std::string rest;
    std::getline(ls >> std::ws, rest);
    EXPECT_GE(rest.size(), 2u);
    EXPECT_EQ(rest.front(), '"');
    EXPECT_EQ(rest.back(), '"');
    out[k] = {r, g, b, rest.substr(1, rest.size() - 2)};
  }
  return out;
}

std::map<int, Entry> parse_slicer(const std::string& text) {
  std::map<int, Entry> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    int k, r, g, b, a;
    std::string name;
    EXPECT_TRUE(static_cast<bool>(ls >> k >> name >> r >> g >> b >> a)) << line;
    std::string extra;
    EXPECT_FALSE(static_cast<bool>(ls >> extra)) << "names must not contain spaces: " << line;
    out[k] = {r, g, b, name};
  }
  return out;
}

void expect_every_expert(const std::map<int, Entry>& t, int experts, const std::string& sep) {
  for (int e = 0; e < experts; ++e) {
    ASSERT_TRUE(t.count(e + 1)) << "label " << e + 1 << " missing";
    const auto& x = t.at(e + 1);
    const Rgb c = expert_colour(e);
    EXPECT_EQ(x.r, c.r);
    EXPECT_EQ(x.g, c.g);
    EXPECT_EQ(x.b, c.b);
    EXPECT_EQ(x.name, "Expert" + sep + std::to_string(e + 1));
  }
  EXPECT_FALSE(t.count(experts + 1));
}
}  // namespace

TEST(Palette, SixteenDistinctColours) {
  std::set<std::tuple<int, int, int>> seen;
  for (int e = 0; e < kPaletteSize; ++e) {
    const Rgb c = expert_colour(e);
    seen.insert({c.r, c.g, c.b});
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kPaletteSize));
  EXPECT_THROW(expert_colour(kPaletteSize), brainage::InvalidInputError);
  EXPECT_THROW(check_palette_fits(17, "x"), brainage::InvalidInputError);
  EXPECT_NO_THROW(check_palette_fits(16, "x"));
}

TEST(ColourTables, EachFormatListsEveryExpertWithThePaletteColour) {
  for (int experts : {1, 8, 16}) {
    expect_every_expert(parse_fsleyes(fsleyes_lut(experts)), experts, " ");
    const auto snap = parse_itksnap(itksnap_label_description(experts));
    expect_every_expert(snap, experts, " ");
    ASSERT_TRUE(snap.count(0));
    EXPECT_EQ(snap.at(0).name, "Clear Label");
    const auto slicer = parse_slicer(slicer_colour_table(experts));
    expect_every_expert(slicer, experts, "_");
    ASSERT_TRUE(slicer.count(0));
  }
}

TEST(ColourTables, WrittenFilesMatchTheStrings) {
  const auto dir = brainage::testing::scratch_dir("colour-tables");
  const auto paths = write_colour_tables(dir, 5);
  ASSERT_EQ(paths.size(), 3u);
  const std::string expected[3] = {fsleyes_lut(5), itksnap_label_description(5), slicer_colour_table(5)};
  for (int i = 0; i < 3; ++i) {
    std::ifstream in(paths[static_cast<std::size_t>(i)]);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str(), expected[i]) << paths[static_cast<std::size_t>(i)];
  }
}
