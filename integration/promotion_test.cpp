// Build once, promote the same artifact, and triggers (issue 13, item 3), against real
// processes: a script build's `flotilla-artifact:` line (or $FLOTILLA_ARTIFACT_FILE) is
// recorded on the release with the environments it succeeded in; production (promotion: from
// staging, soak) refuses a version that has not succeeded in staging, one rebuilt since with
// another digest, and one whose staging success is younger than the soak, then accepts it once
// the soak has passed; a plan through staging and production holds production until then; a
// policy trigger deploys its template to development with no human, and refuses a bad token,
// an unknown trigger and a bad body.
#include <filesystem>

#include "tests/support/events.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

constexpr char kSoak[] = "6s";
constexpr auto kSoakMs = std::chrono::milliseconds(6000);

const char* kPolicy = R"(environments:
  development:
    clusters: {environment: development}
    deployers: [deployer]
    triggers:
      - {name: develop-merge, plan: plans/ledger-dev.yaml}
      - {name: wrong-place, plan: plans/ledger-staging.yaml}
  staging:
    clusters: {environment: staging}
  production:
    clusters: {environment: production}
    promotion: {from: staging, soak: @SOAK@}
)";

std::string digest(char c) { return "sha256:" + std::string(64, c); }

class PromotionTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    std::filesystem::create_directories(dir() + "/plans");
    writeFile(dir() + "/plans/ledger-dev.yaml", devTemplate());
    writeFile(dir() + "/plans/ledger-staging.yaml", stagingTemplate());
    ASSERT_NO_FATAL_FAILURE(startFleet(withPolicy(replaceAll(kPolicy, "@SOAK@", kSoak))));
    startAgents({FleetAgent{"dev-1", {{"environment", "development"}}}});
  }

  // A build that prints `artifact` (a malformed claim after it is ignored).
  static std::string printingBuild(const std::string& artifact) {
    return logStep("build") + " && echo flotilla-artifact: " + artifact +
           " && echo flotilla-artifact: sha256:NOT-A-DIGEST";
  }

  std::string planText(const std::string& version, const std::string& build,
                       std::vector<PlanWave> waves) {
    ScriptPlan plan{.service = "ledger", .version = version, .build = build, .verify = ""};
    plan.waves = std::move(waves);
    return replaceAll(plan.yaml(), "@DIR@", dir());
  }
  std::string stagingPlan(const std::string& version, const std::string& artifact) {
    return planText(version, printingBuild(artifact), {waveOf("staging", {"staging-eu"})});
  }
  std::string productionPlan(const std::string& version) {
    return planText(version, logStep("build"),
                    {waveSelecting("production", "environment: production")});
  }
  // The development template: its build writes the digest to $FLOTILLA_ARTIFACT_FILE.
  std::string devTemplate() {
    return planText("0.0.0-template",
                    logStep("build") + " && echo " + digest('d') + " > \"$FLOTILLA_ARTIFACT_FILE\"",
                    {waveSelecting("development", "environment: development")});
  }
  std::string stagingTemplate() {
    return planText("0.0.0-template", logStep("build"), {waveOf("staging", {"staging-eu"})});
  }

  json release(const std::string& version) {
    return get("/api/v1/releases/ledger/" + version).parsed();
  }
  HttpResponse submitProduction(const std::string& version) {
    return request("POST", "/api/v1/deployments", deployerToken(), productionPlan(version),
                   {{"Content-Type", "application/yaml"}});
  }
};

TEST_F(PromotionTest, ProductionTakesOnlyWhatSucceededInStagingWithItsArtifactAfterTheSoak) {
  // Staging builds 1.0.0: the artifact line is recorded, the malformed one after it ignored.
  const std::string staged = submitPlan("staging.yaml", stagingPlan("1.0.0", digest('a')));
  ASSERT_TRUE(waitForState(staged, "succeeded"));
  json rel = release("1.0.0");
  ASSERT_TRUE(rel["artifact"].is_object()) << rel.dump();
  EXPECT_EQ(rel["artifact"]["digest"], digest('a'));
  EXPECT_EQ(rel["artifact"]["deployment"], staged);
  ASSERT_EQ(rel["succeeded"].size(), 1u) << rel.dump();
  EXPECT_EQ(rel["succeeded"][0]["environment"], "staging");
  EXPECT_EQ(rel["succeeded"][0]["artifact"], digest('a'));
  EXPECT_GE(findEvent(events(staged), "release.artifact", "staging", "staging-eu"), 0);
  EXPECT_NE(readFile(agentLog("staging-eu")).find("malformed artifact line"), std::string::npos);
  CommandResult shown = cli({"release", "show", "ledger", "1.0.0"});
  EXPECT_NE(shown.out.find("Artifact: " + digest('a')), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("Succeeded in staging"), std::string::npos) << shown.out;

  // Younger than the soak: refused with how long is left.
  HttpResponse young = submitProduction("1.0.0");
  EXPECT_EQ(young.status, 409) << young.body;
  ASSERT_TRUE(young.parsed()["promotion"].is_array()) << young.body;
  EXPECT_NE(
      young.parsed()["promotion"][0]["missing"].get<std::string>().find("succeeded in staging "),
      std::string::npos)
      << young.body;
  EXPECT_NE(young.body.find(std::string("soak is ") + kSoak), std::string::npos) << young.body;
  EXPECT_NE(young.body.find("left)"), std::string::npos) << young.body;

  // Never in staging: refused, through the CLI too.
  const std::string never = writePlan("never.yaml", productionPlan("2.0.0"));
  CommandResult refused = cli({"submit", never});
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_NE(refused.err.find("ledger 2.0.0 has not succeeded in staging"), std::string::npos)
      << refused.err;

  // Rebuilt elsewhere (development, with another digest): the release's artifact changed.
  const std::string staged3 = submitPlan("staging3.yaml", stagingPlan("3.0.0", digest('b')));
  ASSERT_TRUE(waitForState(staged3, "succeeded"));
  const std::string rebuilt =
      submitPlan("dev3.yaml", planText("3.0.0", printingBuild(digest('c')),
                                       {waveSelecting("development", "environment: development")}));
  ASSERT_TRUE(waitForState(rebuilt, "succeeded"));
  EXPECT_GE(findEvent(events(rebuilt), "release.artifact_changed"), 0);
  EXPECT_EQ(release("3.0.0")["artifact"]["digest"], digest('c'));
  HttpResponse differs = submitProduction("3.0.0");
  EXPECT_EQ(differs.status, 409) << differs.body;
  EXPECT_NE(differs.body.find("artifact differs: staging ran sha256:bbbbbbbbbbbb"),
            std::string::npos)
      << differs.body;
  EXPECT_NE(differs.body.find("the release is sha256:cccccccccccc"), std::string::npos)
      << differs.body;
  EXPECT_TRUE(get("/api/v1/deployments").parsed()["deployments"].size() == 3u);

  // Once the soak has passed, 1.0.0 goes to production.
  std::this_thread::sleep_for(kSoakMs);
  const std::string prod = submit(writePlan("prod.yaml", productionPlan("1.0.0")));
  ASSERT_FALSE(prod.empty());
  ASSERT_TRUE(waitForState(prod, "succeeded"));
  for (const auto& cluster : {"prod-eu-1", "prod-eu-2", "prod-us-1"}) {
    EXPECT_EQ(stepLog(prod, cluster), (std::vector<std::string>{"build", "apply"})) << cluster;
  }
  // Production's success is recorded with the artifact it deployed (its build reported none).
  json after = release("1.0.0");
  bool recorded = false;
  for (const auto& s : after["succeeded"]) {
    recorded = recorded || (s["environment"] == "production" && s["artifact"] == digest('a'));
  }
  EXPECT_TRUE(recorded) << after.dump();

  // Durable: the release survives a coordinator restart.
  restartCoordinator();
  EXPECT_EQ(release("3.0.0")["artifact"]["digest"], digest('c'));
  EXPECT_EQ(release("1.0.0")["succeeded"].size(), 2u);
}

TEST_F(PromotionTest, APlanThroughStagingHoldsProductionUntilTheSoakPasses) {
  const std::string id =
      submitPlan("both.yaml", planText("4.0.0", printingBuild(digest('e')),
                                       {waveOf("staging", {"staging-eu"}),
                                        waveSelecting("production", "environment: production")}));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "blocked_by_checks"));
  const std::string reason = deployment(id)["reason"];
  EXPECT_NE(reason.find("wave production (production) waits for promotion: succeeded in staging"),
            std::string::npos)
      << reason;
  EXPECT_FALSE(hasStepLog(id, "prod-eu-1"));
  // The engine looks again every second: the soak's end lets it go on with nobody's help.
  ASSERT_TRUE(waitForState(id, "succeeded", kSoakMs + std::chrono::seconds(60)));
  EXPECT_TRUE(hasStepLog(id, "prod-eu-1"));
  const json ev = events(id);
  EXPECT_GE(findEvent(ev, "wave.blocked_by_promotion", "production"), 0);
  EXPECT_GE(findEvent(ev, "wave.promotion_met", "production"), 0);
}

TEST_F(PromotionTest, ATriggerDeploysToDevelopmentWithNoHuman) {
  const std::string bot = createToken("merge-bot", "deployer");
  CommandResult policy = cli({"policy"});
  EXPECT_NE(policy.out.find("develop-merge -> development"), std::string::npos) << policy.out;

  HttpResponse started =
      request("POST", "/api/v1/triggers/develop-merge", bot, json{{"version", "5.0.0"}}.dump());
  ASSERT_EQ(started.status, 201) << started.body;
  const std::string id = started.parsed()["id"];
  ASSERT_TRUE(waitForState(id, "succeeded"));
  EXPECT_EQ(stepLog(id, "dev-1"), (std::vector<std::string>{"build", "apply"}));
  EXPECT_EQ(versionOf("dev-1"), "5.0.0");
  const json detail = deployment(id);
  EXPECT_EQ(detail["submitted_by"], "merge-bot");
  const json ev = events(id);
  const int triggered = findEvent(ev, "deployment.triggered");
  ASSERT_GE(triggered, 0);
  EXPECT_NE(ev[triggered]["message"].get<std::string>().find("develop-merge"), std::string::npos);
  // The template's build wrote its digest to $FLOTILLA_ARTIFACT_FILE.
  EXPECT_EQ(release("5.0.0")["artifact"]["digest"], digest('d'));
  const json audit = get("/api/v1/audit").parsed();
  EXPECT_NE(audit.dump().find("POST /api/v1/triggers/{name}"), std::string::npos);

  // The CLI, as CI would call it.
  CommandResult again = cli({"trigger", "develop-merge", "5.0.1"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  ASSERT_TRUE(waitForState(trim(again.out), "succeeded"));

  // Refusals: a bad token, an unknown trigger, a bad body, a template outside its environment.
  EXPECT_EQ(request("POST", "/api/v1/triggers/develop-merge", "not-a-token",
                    json{{"version", "5.0.2"}}.dump())
                .status,
            401);
  EXPECT_EQ(request("POST", "/api/v1/triggers/develop-merge", "", json{{"version", "5.0.2"}}.dump())
                .status,
            401);
  EXPECT_EQ(
      request("POST", "/api/v1/triggers/no-such", bot, json{{"version", "5.0.2"}}.dump()).status,
      404);
  for (const std::string& bad :
       {std::string("{}"), json{{"version", "../x"}}.dump(), json{{"version", 5}}.dump(),
        json{{"version", "5.0.2"}, {"extra", "x"}}.dump()}) {
    EXPECT_EQ(request("POST", "/api/v1/triggers/develop-merge", bot, bad).status, 400) << bad;
  }
  HttpResponse outside =
      request("POST", "/api/v1/triggers/wrong-place", bot, json{{"version", "5.0.2"}}.dump());
  EXPECT_EQ(outside.status, 409) << outside.body;
  EXPECT_NE(outside.body.find("deploys to development only"), std::string::npos) << outside.body;
  const std::string viewer = createToken("watcher", "viewer");
  EXPECT_EQ(
      request("POST", "/api/v1/triggers/develop-merge", viewer, json{{"version", "5.0.2"}}.dump())
          .status,
      403);
  CommandResult unknown = cli({"trigger", "no-such", "5.0.2"});
  EXPECT_EQ(unknown.exit_code, 1);
  // Only the two started deployments exist.
  EXPECT_EQ(get("/api/v1/deployments").parsed()["deployments"].size(), 2u);
}

}  // namespace
}  // namespace flotilla::integration
