// Tests for the deployment routes (coordinator/http_deployments.cpp): submission (a bad plan is
// refused with every problem and its position, and nothing is stored), listing, showing, the
// actions, and ids checked before they reach the store.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/coordinator/http_api_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using HttpDeployments = HttpApiTest;
using HttpNoAgentsDeployments = HttpApiNoAgentsTest;

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

// One deployment per service: a second submission is queued (and says behind which), refused
// with queue=false, or supersedes the one in flight with supersede=true.
TEST_F(HttpDeployments, ASecondSubmissionIsQueuedRefusedOrSupersedes) {
  // Held at its first wave's approval: in flight until someone acts.
  std::string plan = kPlan;
  plan.replace(plan.find("    clusters: [staging-eu]\n"), 0, "    approval: required\n");
  const std::string first = submit(plan);
  auto queued = post("/api/v1/deployments", plan, admin_, "application/yaml");
  ASSERT_TRUE(queued);
  ASSERT_EQ(queued->status, 201) << queued->body;
  EXPECT_EQ(body(queued)["state"], "queued");
  EXPECT_EQ(body(queued)["waits_for"], first);
  const std::string second = body(queued)["id"];
  nlohmann::json detail = body(get("/api/v1/deployments/" + second));
  EXPECT_EQ(detail["state"], "queued");
  EXPECT_EQ(detail["waits_for"], first);
  EXPECT_EQ(body(get("/api/v1/deployments/" + first))["waits_for"], nullptr);

  auto refused = post("/api/v1/deployments?queue=false", plan, admin_, "application/yaml");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 409) << refused->body;
  EXPECT_NE(body(refused)["error"].get<std::string>().find(
                "deployment " + first + " of checkout is in flight (awaiting_approval)"),
            std::string::npos)
      << refused->body;
  EXPECT_EQ(body(get("/api/v1/deployments"))["deployments"].size(), 2u);  // nothing stored
  for (const char* bad : {"?queue=maybe", "?supersede=", "?queue=false&supersede=true"}) {
    auto res = post(std::string("/api/v1/deployments") + bad, plan, admin_, "application/yaml");
    ASSERT_TRUE(res) << bad;
    EXPECT_EQ(res->status, 400) << bad << " " << res->body;
  }

  auto superseding = post("/api/v1/deployments?supersede=true", plan, admin_, "application/yaml");
  ASSERT_TRUE(superseding);
  ASSERT_EQ(superseding->status, 201) << superseding->body;
  const std::string third = body(superseding)["id"];
  EXPECT_EQ(body(get("/api/v1/deployments/" + second))["state"], "cancelled");
  nlohmann::json stopped = body(get("/api/v1/deployments/" + first));
  EXPECT_NE(stopped["state"], "running");
  EXPECT_EQ(stopped["reason"].get<std::string>().rfind("superseded by " + third, 0), 0u) << stopped;
}

// Every wave's clusters are resolved against the registry at submission: a name nobody
// registered or a selector that matches nothing is refused, each with its wave's position and
// a suggestion, with the clusters that do exist; nothing is stored.
TEST_F(HttpDeployments, UnknownClustersAndEmptySelectorsAreRefusedWithSuggestions) {
  const std::string plan =
      "service: checkout\n"
      "version: \"1.0\"\n"
      "steps: {apply: a, rollback: b}\n"
      "waves:\n"
      "  - name: staging\n"  // 5:5
      "    clusters: [staging-eu]\n"
      "  - name: prod\n"  // 7:5
      "    clusters: [prod-eu1]\n"
      "  - name: rest\n"  // 9:5
      "    selector: {environment: prodution}\n";
  auto res = post("/api/v1/deployments", plan, admin_, "application/yaml");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400) << res->body;
  nlohmann::json answer = body(res);
  EXPECT_EQ(answer["error"], "plan refused: 2 waves name clusters that are not registered");
  ASSERT_EQ(answer["problems"].size(), 2u) << res->body;
  EXPECT_EQ(answer["problems"][0],
            (nlohmann::json{{"line", 7},
                            {"column", 5},
                            {"wave", "prod"},
                            {"message",
                             "wave \"prod\": no agent has registered cluster \"prod-eu1\"; did "
                             "you mean \"prod-eu-1\"?"},
                            {"suggestion", "did you mean \"prod-eu-1\"?"}}));
  EXPECT_EQ(answer["problems"][1]["line"], 9);
  EXPECT_EQ(answer["problems"][1]["suggestion"],
            "label \"environment\" has the values production, staging (did you mean "
            "environment: production?)");
  EXPECT_EQ(answer["known_clusters"], (nlohmann::json{"prod-eu-1", "staging-eu"}));
  EXPECT_EQ(answer["known_clusters_total"], 2);
  EXPECT_EQ(body(get("/api/v1/deployments"))["deployments"], nlohmann::json::array());
  EXPECT_EQ(lastAudit("POST /api/v1/deployments")["outcome"], "400");
}

TEST_F(HttpNoAgentsDeployments, NothingRegisteredRefusesEveryWave) {
  auto res = post("/api/v1/deployments", kPlan, admin_, "application/yaml");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400) << res->body;
  EXPECT_EQ(body(res)["problems"].size(), 2u);
  EXPECT_EQ(body(res)["known_clusters"], nlohmann::json::array());
}

// A dry run resolves and shows what would happen, and stores nothing.
TEST_F(HttpDeployments, ADryRunShowsTheWavesStepsAndGatesAndStoresNothing) {
  std::string plan = kPlan;
  plan.replace(plan.find("    clusters: [prod-eu-1]\n"), std::string::npos,
               "    selector: {environment: production}\n"
               "    approval: {required: 2, expires: 2h}\n"
               "    max_parallel: 3\n");
  auto res = post("/api/v1/deployments?dry_run=true", plan, admin_, "application/yaml");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  nlohmann::json answer = body(res);
  EXPECT_EQ(answer["dry_run"], true);
  EXPECT_EQ(answer["service"], "checkout");
  EXPECT_EQ(answer["commands"]["apply"], "./apply.sh");
  ASSERT_EQ(answer["waves"].size(), 2u);
  EXPECT_EQ(answer["waves"][0]["clusters"], nlohmann::json{"staging-eu"});
  EXPECT_EQ(answer["waves"][0]["approval"], nullptr);
  EXPECT_EQ(answer["waves"][0]["steps"], (nlohmann::json{{{"step", "apply"}}}));
  EXPECT_EQ(answer["waves"][1]["clusters"], nlohmann::json{"prod-eu-1"});
  EXPECT_EQ(answer["waves"][1]["selector"], (nlohmann::json{{"environment", "production"}}));
  EXPECT_EQ(answer["waves"][1]["approval"], (nlohmann::json{{"required", 2}, {"expires", "2h"}}));
  EXPECT_EQ(answer["waves"][1]["max_parallel"], 3);
  EXPECT_EQ(answer["waves"][1]["bake"], nullptr);
  EXPECT_EQ(body(get("/api/v1/deployments"))["deployments"], nlohmann::json::array());
  // The refusals are those of a real submission.
  std::string bad = kPlan;
  bad.replace(bad.find("[prod-eu-1]"), 11, "[prod-eu-9]");
  auto refused = post("/api/v1/deployments?dry_run=true", bad, admin_, "application/yaml");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400) << refused->body;
  auto odd = post("/api/v1/deployments?dry_run=maybe", kPlan, admin_, "application/yaml");
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->status, 400);
  EXPECT_EQ(body(odd)["error"], "dry_run must be true or false, not \"maybe\"");
  EXPECT_EQ(body(get("/api/v1/deployments"))["deployments"], nlohmann::json::array());
  // false is an ordinary submission.
  auto real = post("/api/v1/deployments?dry_run=false", kPlan, admin_, "application/yaml");
  ASSERT_TRUE(real);
  EXPECT_EQ(real->status, 201) << real->body;
}

// An approver sees where the waiting wave (and those after it) will go before saying yes.
TEST_F(HttpDeployments, TheApprovalScreenListsTheClustersTheWaveWillTouch) {
  std::string plan = kPlan;
  plan.replace(plan.find("    clusters: [staging-eu]\n"), 0, "    approval: required\n");
  plan.replace(plan.find("    clusters: [prod-eu-1]\n"), 26,
               "    selector: {environment: production}\n");
  const std::string id = submit(plan);
  nlohmann::json detail = body(get("/api/v1/deployments/" + id, viewer_));
  ASSERT_EQ(detail["state"], "awaiting_approval");
  EXPECT_EQ(detail["waves"][0]["planned_clusters"], nlohmann::json{"staging-eu"});
  EXPECT_EQ(detail["waves"][1]["planned_clusters"], nlohmann::json{"prod-eu-1"});
}

// Promote and retry: who may, what their bodies may hold, and the refusals' reasons (the
// success paths run against real agents in integration/overrides_test.cpp).
TEST_F(HttpDeployments, PromoteAndRetryRefusals) {
  std::string plan = kPlan;
  plan.replace(plan.find("    clusters: [staging-eu]\n"), 0, "    approval: required\n");
  const std::string id = submit(plan);
  const std::string base = "/api/v1/deployments/" + id;
  ASSERT_EQ(body(get(base))["state"], "awaiting_approval");

  // A viewer may not; a deployer outside the deployment's environments may not.
  for (const char* verb : {"/promote", "/retry"}) {
    auto res = post(base + verb, R"({"cluster": "staging-eu"})", viewer_);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 403) << verb << " " << res->body;
    res = post(base + verb, R"({"cluster": "staging-eu"})", deployer_);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 403) << verb << " " << res->body;
  }

  // Promote never passes an approval gate.
  auto gate = post(base + "/promote", R"({"reason": "in a hurry"})");
  ASSERT_TRUE(gate);
  EXPECT_EQ(gate->status, 409) << gate->body;
  EXPECT_NE(body(gate)["error"].get<std::string>().find("never passes an approval gate"),
            std::string::npos);
  nlohmann::json record = lastAudit("POST /api/v1/deployments/{id}/promote");
  EXPECT_EQ(record["outcome"], "409");
  EXPECT_EQ(record["actor"], "admin");

  // Paused before its first wave: no cluster analyzing or baking.
  ASSERT_EQ(post(base + "/pause", "")->status, 200);
  auto nothing = post(base + "/promote", "");
  ASSERT_TRUE(nothing);
  EXPECT_EQ(nothing->status, 409) << nothing->body;
  EXPECT_EQ(body(nothing)["error"].get<std::string>().rfind("nothing to promote: ", 0), 0u);
  auto other = post(base + "/promote", R"({"wave": "prod"})");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 409) << other->body;
  EXPECT_NE(body(other)["error"].get<std::string>().find("is not the running wave"),
            std::string::npos);
  auto unknown = post(base + "/promote", R"({"wave": "prod-eu1"})");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 409) << unknown->body;
  EXPECT_NE(body(unknown)["error"].get<std::string>().find("has no wave named prod-eu1"),
            std::string::npos);

  // The plan does not hold failed steps: nothing can be retried.
  auto not_held = post(base + "/retry", R"({"cluster": "staging-eu"})");
  ASSERT_TRUE(not_held);
  EXPECT_EQ(not_held->status, 409) << not_held->body;
  EXPECT_NE(body(not_held)["error"].get<std::string>().find("on_step_failure: hold"),
            std::string::npos);

  // Hostile bodies: 400, audited, nothing done.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"/promote", "[1]"},
      {"/promote", "not json"},
      {"/promote", "\"text\""},
      {"/promote", R"({"wave": 5})"},
      {"/promote", R"({"wave": "staging", "force": "yes"})"},
      {"/promote", R"({"reason": ")" + std::string(501, 'x') + "\"}"},
      {"/retry", ""},
      {"/retry", R"({"reason": "no cluster"})"},
      {"/retry", R"({"cluster": "Staging EU"})"},
      {"/retry", R"({"cluster": ["staging-eu"]})"},
      {"/retry", R"({"cluster": "staging-eu", "reason": ")" + std::string(10000, 'x') + "\"}"},
  };
  for (const auto& [verb, text] : bad) {
    auto res = post(base + verb, text);
    ASSERT_TRUE(res) << verb << " " << text.substr(0, 40);
    EXPECT_EQ(res->status, 400) << verb << " " << text.substr(0, 40) << ": " << res->body;
  }
  EXPECT_EQ(
      body(post(base + "/promote", R"({"reason": ")" + std::string(501, 'x') + "\"}"))["error"],
      "\"reason\" is 501 bytes; at most 500");
  // Refusals are audited (written after their answer: polled for).
  bool audited = false;
  for (int i = 0; i < 100 && !audited; ++i) {
    const nlohmann::json audit = body(get("/api/v1/audit"));
    for (const auto& r : audit["records"]) {
      audited |= r["action"] == "POST /api/v1/deployments/{id}/retry" && r["outcome"] == "400" &&
                 r["detail"] == "\"reason\" is 10000 bytes; at most 500";
    }
    if (!audited) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(audited) << body(get("/api/v1/audit")).dump(1);
  EXPECT_EQ(body(get(base))["state"], "paused");
}

TEST_F(HttpDeployments, RetryNamesAClusterOfTheDeployment) {
  std::string plan = kPlan;
  plan.replace(plan.find("    clusters: [staging-eu]\n"), 0, "    approval: required\n");
  plan += "on_step_failure: hold\n";
  const std::string id = submit(plan);
  EXPECT_EQ(body(get("/api/v1/deployments/" + id))["plan"]["on_step_failure"], "hold");
  auto unknown = post("/api/v1/deployments/" + id + "/retry", R"({"cluster": "nowhere"})");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404) << unknown->body;
  EXPECT_EQ(body(unknown)["error"], "deployment " + id + " has no cluster named nowhere");
  auto missing = post("/api/v1/deployments/checkout-99/retry", R"({"cluster": "staging-eu"})");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

}  // namespace
}  // namespace flotilla::coordinator::testing
