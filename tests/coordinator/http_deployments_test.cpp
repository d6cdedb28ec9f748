// Tests for the deployment routes (coordinator/http_deployments.cpp): submission (a bad plan is
// refused with every problem and its position, and nothing is stored), listing, showing, the
// actions, and ids checked before they reach the store.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/http_api_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using HttpDeployments = HttpApiTest;

// Each cluster says where it is in its strategy and which versions it moves between; the
// script plan here has no traffic steps, so no strategy step or weight.
TEST_F(HttpDeployments, ClustersCarryTheirStrategyStepWeightAndVersions) {
  const std::string id = submit();
  nlohmann::json detail = body(get("/api/v1/deployments/" + id, viewer_));
  const nlohmann::json& cluster = detail["waves"][0]["clusters"][0];
  EXPECT_TRUE(cluster["strategy_step"].is_null()) << cluster.dump();
  EXPECT_EQ(cluster["strategy_steps"], 0);
  EXPECT_TRUE(cluster["weight"].is_null());
  EXPECT_EQ(cluster["to_version"], detail["version"]);
  EXPECT_TRUE(cluster["from_version"].is_string());
}

TEST_F(HttpDeployments, ABadPlanIsRefusedWithEveryProblemAndNothingIsStored) {
  const std::string plan =
      "service: Checkout\n"  // 1:10
      "version: \"1.0\"\n"
      "steps: {apply: a, rollback: b, verfy: c}\n"  // 3:32
      "waves: [{name: s, clusters: [a]}]\n";
  auto res = post("/api/v1/deployments", plan, admin_, "application/yaml");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  nlohmann::json answer = body(res);
  EXPECT_EQ(answer["error"], "plan refused: 2 problems");
  ASSERT_EQ(answer["problems"].size(), 2u) << res->body;
  EXPECT_EQ(answer["problems"][0]["line"], 1);
  EXPECT_EQ(answer["problems"][0]["column"], 10);
  EXPECT_EQ(answer["problems"][1]["line"], 3);
  EXPECT_EQ(answer["problems"][1]["message"],
            "unknown field \"verfy\" in steps; did you mean \"verify\"?");
  EXPECT_EQ(body(get("/api/v1/deployments"))["deployments"], nlohmann::json::array());
  nlohmann::json record = lastAudit("POST /api/v1/deployments");
  ASSERT_TRUE(record.is_object());
  EXPECT_EQ(record["outcome"], "400");
  EXPECT_EQ(record["detail"], "plan refused: 2 problems");
}

// A version the plan parser accepts must work in every driver: one outside the common rule is
// refused at submission, with the rule named, rather than at the deployment's first step.
TEST_F(HttpDeployments, AVersionOutsideTheRuleIsRefusedAtSubmission) {
  std::string plan = kPlan;
  plan.replace(plan.find("\"1.4.2\""), 7, "\"1.0/../x\"");
  auto res = post("/api/v1/deployments", plan, admin_, "application/yaml");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  nlohmann::json answer = body(res);
  ASSERT_EQ(answer["problems"].size(), 1u) << res->body;
  EXPECT_EQ(answer["problems"][0],
            (nlohmann::json{{"line", 2},
                            {"column", 10},
                            {"message",
                             "version \"1.0/../x\" is not a valid version: use 1 to 128 characters "
                             "from [A-Za-z0-9._+-], not starting with '.' or '-'"}}));
  plan = kPlan;
  plan.replace(plan.find("\"1.4.2\""), 7, "\"2026.12.04_rc-1+build.7\"");
  EXPECT_EQ(submit(plan), "checkout-1");
}

TEST_F(HttpDeployments, SubmittedDeploymentsAreListedShownAndActedOn) {
  const std::string id = submit();
  ASSERT_EQ(id, "checkout-1");
  EXPECT_EQ(lastAudit("POST /api/v1/deployments")["target"], id);

  nlohmann::json list = body(get("/api/v1/deployments", viewer_))["deployments"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["id"], id);
  EXPECT_EQ(list[0]["service"], "checkout");
  EXPECT_EQ(list[0]["version"], "1.4.2");
  EXPECT_EQ(list[0]["waves_total"], 2);

  nlohmann::json detail = body(get("/api/v1/deployments/" + id, viewer_));
  EXPECT_EQ(detail["submitted_by"], "admin");
  ASSERT_EQ(detail["waves"].size(), 2u);
  EXPECT_EQ(detail["waves"][1]["name"], "prod");
  EXPECT_EQ(detail["waves"][1]["approval_required"], true);
  EXPECT_EQ(detail["waves"][1]["approvals_required"], 1);
  EXPECT_EQ(detail["plan"]["version"], "1.4.2");

  // No agent serves these clusters: the first wave fails and the fleet is rolled back, and a
  // finished deployment cannot be paused. The refusal is audited like any change.
  EXPECT_EQ(detail["state"], "rolled_back");
  auto paused = post("/api/v1/deployments/" + id + "/pause", R"({"reason": "lunch"})");
  ASSERT_TRUE(paused);
  EXPECT_EQ(paused->status, 409) << paused->body;
  nlohmann::json record = lastAudit("POST /api/v1/deployments/{id}/pause");
  EXPECT_EQ(record["target"], id);
  EXPECT_EQ(record["outcome"], "409");
  EXPECT_EQ(record["detail"],
            "deployment " + id + " is rolled_back; only a running deployment can be paused");
}

// A first wave that waits for approval holds the deployment before any cluster is chosen.
TEST_F(HttpDeployments, ActionsAnswerWithTheDeployment) {
  std::string plan = kPlan;
  plan.replace(plan.find("    clusters: [staging-eu]\n"), 0, "    approval: required\n");
  const std::string id = submit(plan);
  EXPECT_EQ(body(get("/api/v1/deployments/" + id))["state"], "awaiting_approval");
  // Whoever submitted a deployment cannot approve it.
  auto approved = post("/api/v1/deployments/" + id + "/approve", R"({"wave": "staging"})");
  ASSERT_TRUE(approved);
  EXPECT_EQ(approved->status, 403) << approved->body;
  auto cancelled = post("/api/v1/deployments/" + id + "/cancel", R"({"reason": "not today"})");
  ASSERT_TRUE(cancelled);
  ASSERT_EQ(cancelled->status, 200) << cancelled->body;
  EXPECT_EQ(body(cancelled)["id"], id);
  EXPECT_EQ(body(cancelled)["state"], "cancelled");
  nlohmann::json record = lastAudit("POST /api/v1/deployments/{id}/cancel");
  EXPECT_EQ(record["outcome"], "ok");
  EXPECT_EQ(record["detail"], "not today");
}

TEST_F(HttpDeployments, ActionBodiesAreChecked) {
  const std::string id = submit();
  for (const std::string& bad : std::vector<std::string>{"[1]", "not json", R"({"wave": 5})"}) {
    auto res = post("/api/v1/deployments/" + id + "/approve", bad);
    ASSERT_TRUE(res) << bad;
    EXPECT_EQ(res->status, 400) << bad;
  }
  EXPECT_EQ(body(post("/api/v1/deployments/" + id + "/approve", R"({"wave": 5})"))["error"],
            "\"wave\" must be a string");
}

TEST_F(HttpDeployments, IdsAreCheckedBeforeTheStore) {
  for (const std::string& id :
       std::vector<std::string>{"Checkout-1", "-1", "a_b", std::string(81, 'a')}) {
    auto res = get("/api/v1/deployments/" + id);
    ASSERT_TRUE(res) << id;
    EXPECT_EQ(res->status, 400) << id;
    EXPECT_NE(body(res)["error"].get<std::string>().find("is not a deployment id"),
              std::string::npos);
    auto act = post("/api/v1/deployments/" + id + "/cancel", "");
    ASSERT_TRUE(act) << id;
    EXPECT_EQ(act->status, 400) << id;
  }
  auto missing = get("/api/v1/deployments/checkout-99");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto act = post("/api/v1/deployments/checkout-99/cancel", "");
  ASSERT_TRUE(act);
  EXPECT_EQ(act->status, 404);
}

// A deployer limited to an environment cannot submit to clusters it cannot place in it.
TEST_F(HttpDeployments, EnvironmentRulesApplyToSubmissions) {
  auto res = post("/api/v1/deployments", kPlan, deployer_, "application/yaml");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403) << res->body;
  EXPECT_EQ(body(get("/api/v1/deployments"))["deployments"], nlohmann::json::array());
  EXPECT_EQ(lastAudit("POST /api/v1/deployments")["outcome"], "403");
}

}  // namespace
}  // namespace flotilla::coordinator::testing
