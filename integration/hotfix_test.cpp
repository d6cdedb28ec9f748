// Hotfixes (issue 13 item 7) against real processes: `flotilla submit --hotfix --reason` under a
// policy whose production requires two approvers and the checks tests and performance, with
// hotfix rules {approvals: 1, skip_checks: [performance], allowed_during_freeze: true}. The
// hotfix reaches production with only tests reported and one approval, is marked in status,
// events, the log and the audit; one without a reason is refused; during a freeze it passes
// where a normal submission does not (and does not when the policy says no, or has no hotfix
// rules); and it supersedes the deployment of its service in flight.
#include <algorithm>
#include <string>
#include <vector>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

std::string policyText(const std::string& hotfix) {
  return R"(environments:
  staging:
    clusters: {environment: staging}
  production:
    clusters: {environment: production}
    approval: {required: 2}
    checks: [tests, performance]
)" + hotfix;
}

const char kHotfixRules[] =
    "hotfix: {approvals: 1, skip_checks: [performance], allowed_during_freeze: true}\n";
const char kReason[] = "INC-7: checkout returns 500 on empty carts";

const std::vector<std::string> kProduction = {"prod-eu-1", "prod-eu-2", "prod-us-1"};

class HotfixTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    policy_path_ = dir() + "/policy.yaml";
    writeFile(policy_path_, policyText(kHotfixRules));
    CoordinatorOptions options;
    options.extra_args = {"--policy", policy_path_};
    ASSERT_NO_FATAL_FAILURE(startFleet(options));
    bob_ = createToken("bob", "approver");
    ASSERT_FALSE(bob_.empty());
  }

  std::string planText(const std::string& version, const std::string& apply = "",
                       const std::string& top = "") {
    ScriptPlan plan{.service = "checkout",
                    .version = version,
                    .verify = "",
                    .policy = top,
                    .waves = {waveOf("staging", {"staging-eu"}),
                              waveSelecting("production", "environment: production")}};
    if (!apply.empty()) plan.apply = apply;
    return replaceAll(plan.yaml(), "@DIR@", dir());
  }

  CommandResult reportTests(const std::string& version) {
    return cli({"checks", "report", "checkout", version, "tests", "--passed"});
  }

  CommandResult submitHotfix(const std::string& name, const std::string& text) {
    return cli({"submit", writePlan(name, text), "--hotfix", "--reason", kReason});
  }

  static std::string idOf(const CommandResult& r) { return r.out.substr(0, r.out.find('\n')); }

  HttpResponse approve(const std::string& id) {
    return request("POST", "/api/v1/deployments/" + id + "/approve", bob_,
                   json{{"wave", "production"}}.dump());
  }

  // Waits for production's approval, gives bob's, and waits for the end.
  void approveProductionAndFinish(const std::string& id) {
    ASSERT_TRUE(waitForState(id, "awaiting_approval"));
    const json detail = deployment(id);
    EXPECT_EQ(detail["waves"][1]["approvals_required"], 1) << detail.dump();
    HttpResponse approved = approve(id);
    ASSERT_EQ(approved.status, 200) << approved.body;
    ASSERT_TRUE(waitForState(id, "succeeded"));
    for (const auto& cluster : kProduction) {
      EXPECT_EQ(stepLog(id, cluster), (std::vector<std::string>{"build", "apply"})) << cluster;
    }
  }

  void reloadPolicy(const std::string& text) {
    writeFile(policy_path_, text);
    HttpResponse reloaded = post("/api/v1/policy/reload", "");
    ASSERT_EQ(reloaded.status, 200) << reloaded.body;
  }

  size_t deploymentCount() { return get("/api/v1/deployments").parsed()["deployments"].size(); }

  std::string policy_path_;
  std::string bob_;
};

TEST_F(HotfixTest, AHotfixSkipsTheRulesChecksNeedsOneApproverAndIsMarkedEverywhere) {
  ASSERT_EQ(reportTests("2.0.1").exit_code, 0);
  // A normal submission of the same release waits for performance in production.
  const std::string normal = submitPlan("normal.yaml", planText("2.0.1"));
  ASSERT_FALSE(normal.empty());
  ASSERT_TRUE(waitForState(normal, "blocked_by_checks"));
  EXPECT_NE(deployment(normal)["reason"].get<std::string>().find("performance (not reported)"),
            std::string::npos);
  EXPECT_EQ(deployment(normal)["hotfix"], nullptr);

  // The hotfix supersedes it, skips performance, and needs one approver instead of two.
  CommandResult submitted = submitHotfix("hotfix.yaml", planText("2.0.1"));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err;
  const std::string id = idOf(submitted);
  ASSERT_TRUE(waitForState(normal, "rolled_back"));
  ASSERT_NO_FATAL_FAILURE(approveProductionAndFinish(id));
  const json detail = deployment(id);
  EXPECT_EQ(detail["hotfix"], kReason);
  EXPECT_EQ(detail["plan"]["hotfix"]["skip_checks"], json::array({"performance"}));

  // Status (text and JSON), events, the log (JSON, text, Markdown), the list and the audit.
  CommandResult status = cli({"status", id});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find(std::string("Hotfix      ") + kReason), std::string::npos)
      << status.out;
  CommandResult list = cli({"status"});
  EXPECT_NE(list.out.find("2.0.1 [hotfix]"), std::string::npos) << list.out;
  const json listed = get("/api/v1/deployments").parsed()["deployments"];
  const auto entry =
      std::find_if(listed.begin(), listed.end(), [&](const json& d) { return d["id"] == id; });
  ASSERT_NE(entry, listed.end());
  EXPECT_EQ((*entry)["hotfix"], kReason);
  const json ev = events(id);
  const int submitted_at = findEvent(ev, "deployment.submitted", "");
  ASSERT_GE(submitted_at, 0);
  EXPECT_NE(ev[submitted_at]["message"].get<std::string>().find(std::string("hotfix: ") + kReason),
            std::string::npos)
      << ev[submitted_at].dump();
  CommandResult log = cli({"log", "--json", "--service", "checkout"});
  ASSERT_EQ(log.exit_code, 0) << log.err;
  const json entries = json::parse(log.out)["entries"];
  ASSERT_EQ(entries.size(), 2u) << log.out;
  EXPECT_EQ(entries[0]["id"], id);
  EXPECT_EQ(entries[0]["hotfix"], kReason);
  EXPECT_EQ(entries[1]["hotfix"], nullptr);
  EXPECT_NE(cli({"log"}).out.find(std::string("hotfix:        ") + kReason), std::string::npos);
  EXPECT_NE(cli({"log", "--markdown"}).out.find("**Hotfix:**"), std::string::npos);
  // The audit list reads what the store has flushed: the record may lag the reply a moment.
  EXPECT_TRUE(waitUntil("the submission's audit record says hotfix", [&] {
    const json audit = get("/api/v1/audit").parsed();
    for (const auto& record : audit["records"]) {
      if (record["action"] == "POST /api/v1/deployments" && record["target"] == id &&
          record["detail"].get<std::string>().find(std::string("hotfix: ") + kReason) !=
              std::string::npos) {
        return true;
      }
    }
    return false;
  }));
}

TEST_F(HotfixTest, AHotfixWithoutAReasonIsRefused) {
  ASSERT_EQ(reportTests("2.0.2").exit_code, 0);
  const std::string path = writePlan("hotfix.yaml", planText("2.0.2"));
  CommandResult cli_refused = cli({"submit", path, "--hotfix"});
  EXPECT_EQ(cli_refused.exit_code, 1) << cli_refused.out << cli_refused.err;
  EXPECT_NE(cli_refused.err.find("a hotfix needs a reason"), std::string::npos) << cli_refused.err;
  const std::string plan = planText("2.0.2");
  const std::map<std::string, std::string> yaml = {{"Content-Type", "application/yaml"}};
  for (const std::string query :
       {"?hotfix=true", "?hotfix=true&hotfix_reason=", "?hotfix_reason=why",
        "?hotfix=maybe&hotfix_reason=why", "?hotfix=true&hotfix_reason=%0Aforged%20line"}) {
    HttpResponse r = request("POST", "/api/v1/deployments" + query, deployerToken(), plan, yaml);
    EXPECT_EQ(r.status, 400) << query << " " << r.body;
  }
  // The form's fields, the same rules.
  HttpResponse form = request("POST", "/api/v1/deployments", deployerToken(),
                              json{{"plan", plan}, {"hotfix", true}}.dump(),
                              {{"Content-Type", "application/vnd.flotilla.submission+json"}});
  EXPECT_EQ(form.status, 400) << form.body;
  // In the plan: `hotfix: {}` is refused with its position.
  CommandResult in_plan =
      cli({"submit", writePlan("empty.yaml", planText("2.0.2", "", "hotfix: {}\n"))});
  EXPECT_EQ(in_plan.exit_code, 1);
  EXPECT_NE(in_plan.err.find("missing required field \"reason\""), std::string::npos)
      << in_plan.err;
  EXPECT_EQ(deploymentCount(), 0u);

  // With the reason in the plan, it is a hotfix.
  const std::string id =
      submitPlan("reasoned.yaml",
                 planText("2.0.2", "", std::string("hotfix: {reason: \"") + kReason + "\"}\n"));
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(deployment(id)["hotfix"], kReason);
  ASSERT_NO_FATAL_FAILURE(approveProductionAndFinish(id));
}

TEST_F(HotfixTest, DuringAFreezeOnlyAHotfixThePolicyAllowsPasses) {
  ASSERT_EQ(reportTests("2.0.3").exit_code, 0);
  CommandResult frozen = cli({"freeze", "--reason", "INC-9: payments down", "--env", "production"});
  ASSERT_EQ(frozen.exit_code, 0) << frozen.out << frozen.err;

  CommandResult normal = cli({"submit", writePlan("normal.yaml", planText("2.0.3"))});
  EXPECT_EQ(normal.exit_code, 1) << normal.out;
  EXPECT_NE(normal.err.find("deployments are frozen: freeze-1"), std::string::npos) << normal.err;
  EXPECT_EQ(deploymentCount(), 0u);

  // The hotfix is accepted and runs to the end while the freeze stays.
  CommandResult hotfix = submitHotfix("hotfix.yaml", planText("2.0.3"));
  ASSERT_EQ(hotfix.exit_code, 0) << hotfix.out << hotfix.err;
  const std::string id = idOf(hotfix);
  ASSERT_NO_FATAL_FAILURE(approveProductionAndFinish(id));
  EXPECT_EQ(get("/api/v1/freeze").parsed()["frozen"], true);

  // A policy that does not allow hotfixes during a freeze: refused, saying so.
  ASSERT_NO_FATAL_FAILURE(reloadPolicy(
      policyText("hotfix: {approvals: 1, skip_checks: [performance], allowed_during_freeze: "
                 "false}\n")));
  CommandResult refused = submitHotfix("hotfix2.yaml", planText("2.0.4"));
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_NE(refused.err.find("the policy does not allow hotfixes during a freeze"),
            std::string::npos)
      << refused.err;

  // A policy without hotfix rules refuses hotfixes (409), frozen or not.
  ASSERT_NO_FATAL_FAILURE(reloadPolicy(policyText("")));
  HttpResponse no_rules =
      request("POST", "/api/v1/deployments?hotfix=true&hotfix_reason=" + std::string("INC-9%20fix"),
              deployerToken(), planText("2.0.4"), {{"Content-Type", "application/yaml"}});
  EXPECT_EQ(no_rules.status, 409) << no_rules.body;
  EXPECT_NE(no_rules.body.find("the policy has no hotfix rules"), std::string::npos)
      << no_rules.body;
  EXPECT_EQ(deploymentCount(), 1u);
}

TEST_F(HotfixTest, AHotfixSupersedesTheRunningDeploymentOfItsService) {
  ASSERT_EQ(reportTests("2.0.5").exit_code, 0);
  ASSERT_EQ(reportTests("2.0.6").exit_code, 0);
  // The running one: its apply on staging waits for a gate that never opens.
  const std::string gated =
      logStep("apply") + " && while [ ! -e @DIR@/never ]; do sleep 0.1; done && " + kRecordVersion;
  const std::string running = submitPlan("running.yaml", planText("2.0.5", gated));
  ASSERT_FALSE(running.empty());
  ASSERT_TRUE(waitUntil("its apply in flight",
                        [&] { return clusterState(running, "staging-eu") == "applying"; }));

  CommandResult hotfix = submitHotfix("hotfix.yaml", planText("2.0.6"));
  ASSERT_EQ(hotfix.exit_code, 0) << hotfix.out << hotfix.err;
  const std::string id = idOf(hotfix);
  ASSERT_TRUE(waitForState(running, "rolled_back"));
  EXPECT_EQ(deployment(running)["reason"].get<std::string>().rfind("superseded by " + id, 0), 0u)
      << deployment(running)["reason"];
  EXPECT_EQ(stepLog(running, "staging-eu").back(), "rollback");
  ASSERT_NO_FATAL_FAILURE(approveProductionAndFinish(id));
  EXPECT_EQ(versionOf("staging-eu"), "2.0.6");
}

}  // namespace
}  // namespace flotilla::integration
