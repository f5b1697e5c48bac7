// Parsing the routing block of prediction.json and the majority summary over layers.
#include "viz/routing_summary.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/errors.h"

using brainage::InvalidInputError;
using namespace brainage::viz;

namespace {
nlohmann::json routing_json() {
  return {{"num_experts", 3},
          {"top_k", 2},
          {"patch_size", 2},
          {"token_grid", {2, 1, 2}},
          {"layers",
           {{{"layer", 1}, {"expert", {0, 1, 2, 2}}, {"score", {0.1, 0.2, 0.3, 0.4}}},
            {{"layer", 2}, {"expert", {0, 2, 1, 2}}, {"score", {0.5, 0.6, 0.7, 0.8}}},
            {{"layer", 3}, {"expert", {1, 0, 1, 0}}, {"score", {0.9, 0.3, 0.5, 0.2}}}}}};
}
}  // namespace

TEST(RoutingSummary, ParsesEveryField) {
  const auto r = parse_routing(routing_json(), "p.json");
  EXPECT_EQ(r.num_experts, 3);
  EXPECT_EQ(r.top_k, 2);
  EXPECT_EQ(r.patch_size, 2);
  EXPECT_EQ(r.num_tokens(), 4u);
  ASSERT_EQ(r.layers.size(), 3u);
  EXPECT_EQ(r.layers[1].layer, 2);
  EXPECT_EQ(r.layers[1].expert, (std::vector<int>{0, 2, 1, 2}));
  EXPECT_FLOAT_EQ(r.layers[2].score[0], 0.9f);
  EXPECT_EQ(r.token_index(1, 0, 1), 3u);  // t = (pz*PY + py)*PX + px
}

TEST(RoutingSummary, MajorityVoteWithDeepestLayerBreakingTies) {
  const auto s = summarise_layers(parse_routing(routing_json(), "p.json"));
  EXPECT_EQ(s.layer, 0);
  // token 0: 0,0,1 -> 0 (2 votes); token 1: 1,2,0 three-way tie -> deepest layer (3) = 0;
  // token 2: 2,1,1 -> 1; token 3: 2,2,0 -> 2.
  EXPECT_EQ(s.expert, (std::vector<int>{0, 0, 1, 2}));
  EXPECT_NEAR(s.score[0], 0.3, 1e-6);  // mean of layers 1, 2
  EXPECT_NEAR(s.score[1], 0.3, 1e-6);  // layer 3 only
  EXPECT_NEAR(s.score[2], 0.6, 1e-6);  // layers 2, 3
  EXPECT_NEAR(s.score[3], 0.6, 1e-6);  // layers 1, 2
}

TEST(RoutingSummary, RejectsBrokenRecords) {
  auto j = routing_json();
  j["layers"][0]["expert"] = {0, 1, 2};
  EXPECT_THROW(parse_routing(j, "p.json"), InvalidInputError);
  j = routing_json();
  j["layers"][1]["expert"][0] = 3;  // only 3 experts
  EXPECT_THROW(parse_routing(j, "p.json"), InvalidInputError);
  j = routing_json();
  j.erase("token_grid");
  EXPECT_THROW(parse_routing(j, "p.json"), InvalidInputError);
  j = routing_json();
  j["layers"] = nlohmann::json::array();
  EXPECT_THROW(parse_routing(j, "p.json"), InvalidInputError);
  j = routing_json();
  j["num_experts"] = 0;  // dense baseline
  j["layers"] = nlohmann::json::array();
  try {
    parse_routing(j, "p.json");
    FAIL();
  } catch (const InvalidInputError& e) {
    EXPECT_NE(std::string(e.what()).find("dense"), std::string::npos) << e.what();
  }
  try {
    j = routing_json();
    j["layers"][0]["expert"][1] = -1;
    parse_routing(j, "some/prediction.json");
    FAIL();
  } catch (const InvalidInputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("some/prediction.json: ", 0), 0u) << e.what();
  }
}
