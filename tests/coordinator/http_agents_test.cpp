// Tests for the agent routes (coordinator/http_agents.cpp): the list, enrollment tokens,
// revocation and removal, names checked by the common rule, every change audited.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/time_format.hpp"
#include "coordinator/http_api_internal.hpp"
#include "tests/coordinator/http_api_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using HttpAgents = HttpApiTest;
using HttpNoAgents = HttpApiNoAgentsTest;

TEST_F(HttpNoAgents, NoAgentsIsAnEmptyList) {
  EXPECT_EQ(body(get("/api/v1/agents", viewer_)),
            (nlohmann::json{{"agents", nlohmann::json::array()}}));
}

TEST(AgentJson, StateAgainstNowWithTheDeadlines) {
  AgentView v;
  v.info.cluster = "prod-eu-1";
  v.info.labels = {{"environment", "production"}};
  v.info.agent_version = "0.9.0";
  v.info.epoch = 3;
  v.info.last_seen_wall = common::fromUnixMillis(1'800'000'000'000);
  v.state = AgentState::kUnknown;
  v.silent = std::chrono::milliseconds(21400);
  v.unknown_after = std::chrono::milliseconds(3000);
  v.lost_after = std::chrono::milliseconds(30000);
  EXPECT_EQ(http_internal::agentJson(v),
            (nlohmann::json{{"cluster", "prod-eu-1"},
                            {"labels", {{"environment", "production"}}},
                            {"state", "unknown"},
                            {"last_seen", "2027-01-15T08:00:00.000Z"},
                            {"silent_ms", 21400},
                            {"unknown_after_ms", 3000},
                            {"lost_after_ms", 30000},
                            {"agent_version", "0.9.0"}}));
  // Known from the store only: never heard from in this run, never asked to beat.
  v.info.epoch = 0;
  v.unknown_after = std::chrono::milliseconds(0);
  nlohmann::json restored = http_internal::agentJson(v);
  EXPECT_TRUE(restored["last_seen"].is_null());
  EXPECT_TRUE(restored["unknown_after_ms"].is_null());
}

TEST_F(HttpAgents, EnrollmentGivesAOneTimeToken) {
  auto res = post("/api/v1/agents/prod-eu-1/enroll", R"({"ttl_seconds": 600})");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 201) << res->body;
  nlohmann::json answer = body(res);
  EXPECT_EQ(answer["cluster"], "prod-eu-1");
  EXPECT_FALSE(answer["token"].get<std::string>().empty());
  EXPECT_TRUE(answer.contains("expires_at"));
  nlohmann::json record = lastAudit("POST /api/v1/agents/{cluster}/enroll");
  EXPECT_EQ(record["target"], "prod-eu-1");
  EXPECT_EQ(record["outcome"], "ok");
  EXPECT_EQ(record["detail"], "ttl 600s");
  // The secret is in the answer only.
  EXPECT_EQ(record.dump().find(answer["token"].get<std::string>()), std::string::npos);
}

TEST_F(HttpAgents, EnrollmentArgumentsAreChecked) {
  for (const std::string& bad :
       std::vector<std::string>{R"({"ttl_seconds": 0})", R"({"ttl_seconds": 604801})",
                                R"({"ttl_seconds": "1h"})", "[]"}) {
    auto res = post("/api/v1/agents/prod-eu-1/enroll", bad);
    ASSERT_TRUE(res) << bad;
    EXPECT_EQ(res->status, 400) << bad;
  }
  EXPECT_EQ(lastAudit("POST /api/v1/agents/{cluster}/enroll")["outcome"], "400");
}

TEST_F(HttpAgents, ClusterNamesFollowTheCommonRule) {
  for (const std::string& name :
       std::vector<std::string>{"Prod", "a_b", "-a", std::string(64, 'a')}) {
    std::vector<httplib::Result> answers;
    answers.push_back(post("/api/v1/agents/" + name + "/enroll", ""));
    answers.push_back(post("/api/v1/agents/" + name + "/revoke", ""));
    answers.push_back(del("/api/v1/agents/" + name));
    for (const auto& res : answers) {
      ASSERT_TRUE(res) << name;
      EXPECT_EQ(res->status, 400) << name;
      EXPECT_NE(body(res)["error"].get<std::string>().find("is not a cluster name"),
                std::string::npos);
    }
  }
}

TEST_F(HttpAgents, OnlyAnAdminManagesTrust) {
  for (const std::string& token : {viewer_, deployer_}) {
    auto res = post("/api/v1/agents/prod-eu-1/enroll", "", token);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 403);
    auto removed = del("/api/v1/agents/prod-eu-1", token);
    ASSERT_TRUE(removed);
    EXPECT_EQ(removed->status, 403);
  }
}

}  // namespace
}  // namespace flotilla::coordinator::testing
