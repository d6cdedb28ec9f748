// The policy (--policy FILE) against real processes: environments by agent labels, approvals a
// plan cannot skip or weaken, deployers per environment, mistakes refused with line:column at
// start, and reloads (HTTP and SIGHUP) that keep the policy in force when the file is broken.
#include <signal.h>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

const char* kPolicy = R"(# The organisation's rules.
environments:
  staging:
    clusters: {environment: staging}
  production:
    clusters: {environment: production}
    deployers: [deployer, admin]
    approval: {required: 1}
)";

const std::vector<std::string> kProduction = {"prod-eu-1", "prod-eu-2", "prod-us-1"};

class EnvironmentsTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    policy_path_ = dir() + "/policy.yaml";
    writeFile(policy_path_, kPolicy);
    CoordinatorOptions options;
    options.extra_args = {"--policy", policy_path_};
    ASSERT_NO_FATAL_FAILURE(startFleet(options));
    alice_ = createToken("alice", "deployer");
    bob_ = createToken("bob", "approver");
    ASSERT_FALSE(alice_.empty() || bob_.empty());
  }

  // Staging by name, then production by selector with `production_extra` lines.
  std::string planText(const std::string& version, std::vector<std::string> production_extra) {
    const ScriptPlan plan{.service = "ledger",
                          .version = version,
                          .apply = logStep("apply"),
                          .verify = "",
                          .waves = {waveOf("staging", {"staging-eu"}),
                                    waveSelecting("production", "environment: production",
                                                  std::move(production_extra))}};
    return replaceAll(plan.yaml(), "@DIR@", dir());
  }

  HttpResponse submitAs(const std::string& token, const std::string& plan) {
    return request("POST", "/api/v1/deployments", token, plan,
                   {{"Content-Type", "application/yaml"}});
  }

  static std::string idOf(const HttpResponse& r) {
    json body = r.parsed();
    return body.is_object() && body.contains("id") ? body["id"].get<std::string>() : "";
  }

  HttpResponse approve(const std::string& token, const std::string& id) {
    return request("POST", "/api/v1/deployments/" + id + "/approve", token,
                   json{{"wave", "production"}}.dump());
  }

  bool productionUntouched(const std::string& id) {
    for (const auto& cluster : kProduction) {
      if (hasStepLog(id, cluster)) return false;
    }
    return stateOf(id) == "awaiting_approval";
  }

  // Production waits for an approval: staging done, nothing ran in production; a deployer's
  // approval is refused; bob's lets it finish.
  void expectProductionWaitsForApproval(const std::string& id) {
    ASSERT_TRUE(waitForState(id, "awaiting_approval"));
    json detail = deployment(id);
    EXPECT_EQ(detail["waves"][0]["environment"], "staging");
    EXPECT_EQ(detail["waves"][0]["approvals_required"], 0);
    EXPECT_EQ(detail["waves"][1]["environment"], "production");
    EXPECT_EQ(detail["waves"][1]["approvals_required"], 1);
    EXPECT_EQ(stepLog(id, "staging-eu"), (std::vector<std::string>{"build", "apply"}));
    EXPECT_TRUE(holdsFor(
        "production waits for an approver", [&] { return productionUntouched(id); }, 1000ms));
    HttpResponse by_deployer = approve(alice_, id);
    EXPECT_EQ(by_deployer.status, 403) << by_deployer.body;
    EXPECT_TRUE(productionUntouched(id));
    HttpResponse by_approver = approve(bob_, id);
    ASSERT_EQ(by_approver.status, 200) << by_approver.body;
    ASSERT_TRUE(waitForState(id, "succeeded"));
    for (const auto& cluster : kProduction) {
      EXPECT_EQ(stepLog(id, cluster), (std::vector<std::string>{"build", "apply"})) << cluster;
    }
  }

  json policyShown() { return get("/api/v1/policy").parsed(); }

  std::string policy_path_;
  std::string alice_, bob_;
};

TEST_F(EnvironmentsTest, APlanWithoutAnApprovalGateWaitsForOneInProduction) {
  HttpResponse r = submitAs(alice_, planText("2.0.0", {}));
  ASSERT_EQ(r.status, 201) << r.body;
  expectProductionWaitsForApproval(idOf(r));
}

TEST_F(EnvironmentsTest, APlanSayingApprovalNoneForProductionStillWaits) {
  HttpResponse r = submitAs(alice_, planText("2.0.1", {"approval: none"}));
  ASSERT_EQ(r.status, 201) << r.body;
  expectProductionWaitsForApproval(idOf(r));

  // The dry run shows the approval the policy adds.
  CommandResult dry = cli({"submit", "--dry-run", "--json",
                           writePlan("dry.yaml", planText("2.0.2", {"approval: none"}))});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  json shown = json::parse(dry.out);
  EXPECT_EQ(shown["waves"][1]["environment"], "production") << dry.out;
  EXPECT_EQ(shown["waves"][1]["approval"]["required"], 1) << dry.out;
}

TEST_F(EnvironmentsTest, OnlyTheEnvironmentsDeployersMaySubmitAndEveryClusterNeedsAnEnvironment) {
  // Production takes deployers and admins; staging anyone who may deploy. A policy whose
  // production lists only release-bot refuses alice there, and staging-eu in no environment.
  writeFile(policy_path_,
            "environments:\n"
            "  production:\n"
            "    clusters: {environment: production}\n"
            "    deployers: [release-bot]\n");
  HttpResponse reloaded = post("/api/v1/policy/reload", "");
  ASSERT_EQ(reloaded.status, 200) << reloaded.body;

  HttpResponse denied = submitAs(alice_, planText("3.0.0", {}));
  EXPECT_EQ(denied.status, 400) << denied.body;  // staging-eu first: in no environment
  json body = denied.parsed();
  ASSERT_TRUE(body["problems"].is_array()) << denied.body;
  ASSERT_EQ(body["problems"].size(), 1u) << denied.body;
  EXPECT_GT(body["problems"][0]["line"].get<int>(), 0);
  EXPECT_NE(body["problems"][0]["message"].get<std::string>().find(
                "staging-eu belongs to no environment of the policy"),
            std::string::npos)
      << denied.body;

  const ScriptPlan production_only{.service = "ledger",
                                   .version = "3.0.1",
                                   .apply = logStep("apply"),
                                   .verify = "",
                                   .waves = {waveSelecting("production", "region: eu")}};
  const std::string text = replaceAll(production_only.yaml(), "@DIR@", dir());
  HttpResponse not_listed = submitAs(alice_, text);
  EXPECT_EQ(not_listed.status, 403) << not_listed.body;
  EXPECT_NE(not_listed.body.find("accepts deployments from release-bot only"), std::string::npos)
      << not_listed.body;
  const std::string bot = createToken("release-bot", "deployer");
  HttpResponse listed = submitAs(bot, text);
  ASSERT_EQ(listed.status, 201) << listed.body;
  // The selector `region: eu` pinned to production's labels; no approval required here.
  const std::string id = idOf(listed);
  ASSERT_TRUE(waitForState(id, "succeeded"));
  EXPECT_EQ(deployment(id)["waves"][0]["environment"], "production");
  EXPECT_FALSE(hasStepLog(id, "staging-eu"));
}

TEST_F(EnvironmentsTest, AReloadWithABrokenFileKeepsThePolicyInForceAndSaysWhy) {
  json before = policyShown();
  ASSERT_TRUE(before["enabled"].get<bool>()) << before.dump();
  const std::string sha = before["sha256"].get<std::string>();
  EXPECT_EQ(sha.size(), 64u);
  EXPECT_EQ(before["policy"]["environments"][1]["name"], "production") << before.dump();

  // A deployer may read the policy, not reload it.
  EXPECT_EQ(request("GET", "/api/v1/policy", alice_, "").status, 200);
  EXPECT_EQ(request("POST", "/api/v1/policy/reload", alice_, "").status, 403);

  writeFile(policy_path_,
            "environments:\n"
            "  production:\n"
            "    clusters: {environment: production}\n"
            "    approval: {required: 0}\n"
            "    soak: 30m\n");
  HttpResponse bad = post("/api/v1/policy/reload", "");
  EXPECT_EQ(bad.status, 422) << bad.body;
  json refusal = bad.parsed();
  EXPECT_FALSE(refusal["reloaded"].get<bool>());
  EXPECT_EQ(refusal["sha256"], sha);
  ASSERT_EQ(refusal["problems"].size(), 2u) << bad.body;
  EXPECT_EQ(refusal["problems"][0]["line"], 4);
  EXPECT_EQ(refusal["problems"][1]["line"], 5);
  EXPECT_NE(refusal["error"].get<std::string>().find("stays"), std::string::npos) << bad.body;
  EXPECT_EQ(policyShown()["sha256"], sha);
  EXPECT_FALSE(policyShown()["last_reload"]["ok"].get<bool>());

  // The CLI: the policy in force as a table; a reload refused with each line:column.
  CommandResult shown = cli({"policy"});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("sha256 " + sha), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("environment=production"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("1 approver(s)"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("Last reload"), std::string::npos) << shown.out;
  CommandResult refused = cli({"policy", "reload"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_NE(refused.err.find("policy:4:"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("policy:5:"), std::string::npos) << refused.err;

  // The policy in force still rules: production still waits for an approval.
  HttpResponse r = submitAs(alice_, planText("4.0.0", {"approval: none"}));
  ASSERT_EQ(r.status, 201) << r.body;
  ASSERT_TRUE(waitForState(idOf(r), "awaiting_approval"));
  ASSERT_EQ(request("POST", "/api/v1/deployments/" + idOf(r) + "/cancel", alice_, "{}").status,
            200);

  // SIGHUP: the broken file is refused the same way (in the log), then a good one is taken.
  ASSERT_GT(coordinatorPid(), 0);
  ASSERT_EQ(::kill(coordinatorPid(), SIGHUP), 0);
  ASSERT_TRUE(waitUntil("the SIGHUP reload is refused", [&] {
    return contains(readFile(coordinatorLog()), "SIGHUP: the policy file");
  }));
  EXPECT_TRUE(contains(readFile(coordinatorLog()), "policy.yaml:4:"));
  EXPECT_EQ(policyShown()["sha256"], sha);
  writeFile(policy_path_, std::string(kPolicy) + "    checks: [tests]\n");
  ASSERT_EQ(::kill(coordinatorPid(), SIGHUP), 0);
  ASSERT_TRUE(
      waitUntil("the SIGHUP reload is taken", [&] { return policyShown()["sha256"] != sha; }));
  EXPECT_TRUE(policyShown()["last_reload"]["ok"].get<bool>());

  // Both reloads are in the audit trail. The policy in force changes before the signal's
  // audit record is written (the coordinator appends it right after the swap): wait for it.
  json audit;
  int http_reloads = 0, signal_reloads = 0;
  waitUntil("both SIGHUP reloads to be audited", [&] {
    audit = get("/api/v1/audit").parsed();
    http_reloads = signal_reloads = 0;
    for (const auto& record : audit["records"]) {
      if (record["action"] == "POST /api/v1/policy/reload") ++http_reloads;
      if (record["action"] == "SIGHUP policy.reload") ++signal_reloads;
    }
    return signal_reloads >= 2;
  });
  EXPECT_GE(http_reloads, 1) << audit.dump();
  EXPECT_EQ(signal_reloads, 2) << audit.dump();
}

TEST_F(EnvironmentsTest, APolicyWithMistakesStopsTheStartWithEachLineAndColumn) {
  stopCoordinator();
  const std::string broken = dir() + "/broken.yaml";
  writeFile(broken,
            "environments:\n"
            "  staging:\n"
            "    clusters: {}\n"
            "  production:\n"
            "    clusters: {environment: production}\n"
            "    promotion: {from: qa, soak: 30m}\n");
  CommandResult start =
      runCommand({FLOTILLA_COORDINATOR_BIN, "--data-dir", dir() + "/data", "--listen-agents",
                  "tcp://127.0.0.1:0", "--listen-http", "127.0.0.1:0", "--policy", broken},
                 dir(), 30s);
  EXPECT_NE(start.exit_code, 0);
  EXPECT_NE(start.err.find("broken.yaml:3:"), std::string::npos) << start.err;
  EXPECT_NE(start.err.find("broken.yaml:6:"), std::string::npos) << start.err;
}

}  // namespace
}  // namespace flotilla::integration
