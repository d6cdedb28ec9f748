// Tests for coordinator/policy_rules.cpp (what the policy does to a submitted plan) and
// coordinator/policy_file.cpp (the file read at start and again on reload).
#include "coordinator/policy_rules.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/hotfix.hpp"
#include "coordinator/policy_file.hpp"
#include "tests/support/files.hpp"

namespace flotilla::coordinator {
namespace {

using Strings = std::vector<std::string>;

const char* kPolicy = R"(environments:
  development:
    clusters: {environment: development}
  staging:
    clusters: {environment: staging}
    deployers: [deployer, ci]
  production:
    clusters: {environment: production}
    deployers: [release-bot]
    approval: {required: 2}
)";

common::Policy policy() {
  common::PolicyParseResult parsed = common::parsePolicy(kPolicy);
  EXPECT_TRUE(parsed.problems.empty()) << parsed.problems.front().toString();
  return *parsed.policy;
}

AgentsByName fleet() {
  AgentsByName agents;
  auto add = [&](const std::string& name, std::map<std::string, std::string> labels) {
    AgentInfo a;
    a.cluster = name;
    a.labels = std::move(labels);
    agents.emplace(name, a);
  };
  add("dev-1", {{"environment", "development"}});
  add("staging-eu", {{"environment", "staging"}, {"region", "eu"}});
  add("prod-eu-1", {{"environment", "production"}, {"region", "eu"}});
  add("prod-us-1", {{"environment", "production"}, {"region", "us"}});
  add("lab-1", {{"region", "eu"}});
  return agents;
}

common::Wave wave(const std::string& name, Strings clusters, int line) {
  common::Wave w;
  w.name = name;
  w.clusters = std::move(clusters);
  w.line = line;
  w.column = 5;
  return w;
}

common::Plan plan(std::vector<common::Wave> waves) {
  common::Plan p;
  p.service = "web";
  p.version = "1.0.0";
  p.waves = std::move(waves);
  return p;
}

Actor actor(const std::string& name, const std::string& role) { return Actor{name, role, {}, ""}; }

PolicyVerdict apply(const common::Policy& pol, const Actor& who, common::Plan& p) {
  const AgentsByName agents = fleet();
  const PlanClusters resolved = resolvePlanClusters(p, agents);
  EXPECT_TRUE(resolved.problems.empty());
  return applyPolicy(pol, who, resolved, agents, p);
}

TEST(EnvironmentOf, FirstEnvironmentInFileOrderWhoseSelectorMatches) {
  const common::Policy pol = policy();
  ASSERT_NE(environmentOf(pol, {{"environment", "staging"}}), nullptr);
  EXPECT_EQ(environmentOf(pol, {{"environment", "staging"}})->name, "staging");
  EXPECT_EQ(environmentOf(pol, {{"region", "eu"}}), nullptr);
  EXPECT_EQ(environmentOf(pol, {}), nullptr);
}

TEST(ApplyPolicy, ProductionWithoutAGateGetsTheEnvironmentsApproval) {
  const common::Policy pol = policy();
  common::Plan p = plan({wave("staging", {"staging-eu"}, 3), wave("prod", {"prod-eu-1"}, 6)});
  PolicyVerdict v = apply(pol, actor("bot", "admin"), p);
  EXPECT_TRUE(v.problems.empty());
  EXPECT_TRUE(v.denied.ok()) << v.denied.message();
  EXPECT_EQ(p.waves[0].environment, "staging");
  EXPECT_FALSE(p.waves[0].approval_required);
  EXPECT_EQ(p.waves[1].environment, "production");
  EXPECT_TRUE(p.waves[1].approval_required);
  EXPECT_EQ(p.waves[1].approvals_required, 2u);
}

TEST(ApplyPolicy, APlanCanAskForMoreApproversNeverFewer) {
  const common::Policy pol = policy();
  common::Plan fewer = plan({wave("prod", {"prod-eu-1"}, 2)});
  fewer.waves[0].approval_required = true;
  fewer.waves[0].approvals_required = 1;
  apply(pol, actor("bot", "admin"), fewer);
  EXPECT_EQ(fewer.waves[0].approvals_required, 2u);

  common::Plan more = plan({wave("prod", {"prod-eu-1"}, 2)});
  more.waves[0].approval_required = true;
  more.waves[0].approvals_required = 3;
  apply(pol, actor("bot", "admin"), more);
  EXPECT_EQ(more.waves[0].approvals_required, 3u);
}

common::Policy hotfixPolicy(const std::string& hotfix) {
  common::PolicyParseResult parsed = common::parsePolicy(R"(environments:
  staging:
    clusters: {environment: staging}
    checks: [tests]
  production:
    clusters: {environment: production}
    approval: {required: 3}
    checks: [tests, performance, "coverage >= 80"]
    watch: [{name: intense, for: 10s, interval: 1s}, {name: regular, for: 1m, interval: 10s}]
)" + hotfix);
  EXPECT_TRUE(parsed.problems.empty()) << parsed.problems.front().toString();
  return *parsed.policy;
}

std::vector<std::string> checkNames(const common::Wave& w) {
  std::vector<std::string> out;
  for (const auto& c : w.checks) out.push_back(c.text());
  return out;
}

common::Plan hotfixPlan() {
  common::Plan p = plan({wave("staging", {"staging-eu"}, 3), wave("prod", {"prod-eu-1"}, 6)});
  p.hotfix = common::PlanHotfix{"INC-7", common::Hotfix{}};
  return p;
}

TEST(ApplyPolicy, AHotfixSkipsTheChecksItsRulesNameAndTakesTheRules) {
  const common::Policy pol = hotfixPolicy(
      "hotfix: {approvals: 1, skip_checks: [performance], soak: 5m, watch_factor: 3, "
      "allowed_during_freeze: true}\n");
  common::Plan normal = plan({wave("staging", {"staging-eu"}, 3), wave("prod", {"prod-eu-1"}, 6)});
  apply(pol, actor("bot", "admin"), normal);
  EXPECT_EQ(checkNames(normal.waves[1]), (Strings{"tests", "performance", "coverage >= 80"}));
  ASSERT_EQ(normal.watch.size(), 2u);
  EXPECT_EQ(normal.watch[0].duration, std::chrono::seconds(10));

  common::Plan p = hotfixPlan();
  PolicyVerdict v = apply(pol, actor("bot", "admin"), p);
  EXPECT_TRUE(v.problems.empty());
  EXPECT_TRUE(v.hotfix.ok()) << v.hotfix.message();
  EXPECT_EQ(checkNames(p.waves[0]), (Strings{"tests"}));
  EXPECT_EQ(checkNames(p.waves[1]), (Strings{"tests", "coverage >= 80"}));
  // The rules in force are kept with the plan (freeze, promotion and watch read them).
  EXPECT_EQ(p.hotfix->rules.soak, std::chrono::minutes(5));
  EXPECT_EQ(p.hotfix->rules.watch_factor, 3);
  EXPECT_TRUE(p.hotfix->rules.allowed_during_freeze);
  // Watched closer: the first tier runs watch_factor times as long, the others as they are.
  ASSERT_EQ(p.watch.size(), 2u);
  EXPECT_EQ(p.watch[0].duration, std::chrono::seconds(30));
  EXPECT_EQ(p.watch[0].interval, std::chrono::seconds(1));
  EXPECT_EQ(p.watch[1].duration, std::chrono::minutes(1));
}

TEST(ApplyPolicy, AHotfixNeedsTheHotfixApproversNeverMoreThanTheEnvironmentNorNone) {
  {
    common::Plan p = hotfixPlan();
    apply(hotfixPolicy("hotfix: {approvals: 1}\n"), actor("bot", "admin"), p);
    EXPECT_FALSE(p.waves[0].approval_required);  // staging requires none: a hotfix adds none
    EXPECT_TRUE(p.waves[1].approval_required);
    EXPECT_EQ(p.waves[1].approvals_required, 1u);
  }
  {
    // More than the environment asks: the environment's.
    common::Plan p = hotfixPlan();
    apply(hotfixPolicy("hotfix: {approvals: 5}\n"), actor("bot", "admin"), p);
    EXPECT_EQ(p.waves[1].approvals_required, 3u);
  }
  {
    // The plan may ask for more than the hotfix rules.
    common::Plan p = hotfixPlan();
    p.waves[1].approval_required = true;
    p.waves[1].approvals_required = 2;
    apply(hotfixPolicy("hotfix: {approvals: 1}\n"), actor("bot", "admin"), p);
    EXPECT_EQ(p.waves[1].approvals_required, 2u);
  }
}

TEST(ApplyPolicy, AHotfixUnderAPolicyWithoutHotfixRulesIsRefused) {
  common::Plan p = hotfixPlan();
  PolicyVerdict v = apply(hotfixPolicy(""), actor("bot", "admin"), p);
  EXPECT_TRUE(v.hotfix.isFailedPrecondition()) << v.hotfix.toString();
  EXPECT_NE(v.hotfix.message().find("the policy has no hotfix rules"), std::string::npos);
}

TEST(ApplyHotfixRequest, TheSubmissionsReasonOrThePlansAndNeverNone) {
  using R = HotfixRequest;
  common::Plan p = plan({});
  EXPECT_TRUE(applyHotfixRequest(R{}, R{}, p).ok());
  EXPECT_FALSE(p.hotfix.has_value());

  EXPECT_TRUE(applyHotfixRequest(R{true, "INC-7"}, R{}, p).ok());
  ASSERT_TRUE(p.hotfix.has_value());
  EXPECT_EQ(p.hotfix->reason, "INC-7");
  EXPECT_EQ(hotfixText(p), "hotfix: INC-7");

  // The plan's own reason serves a bare hotfix=true; a given reason wins over it.
  common::Plan own = plan({});
  own.hotfix = common::PlanHotfix{"from the plan", common::Hotfix{}};
  EXPECT_TRUE(applyHotfixRequest(R{true, std::nullopt}, R{}, own).ok());
  EXPECT_EQ(own.hotfix->reason, "from the plan");
  EXPECT_TRUE(applyHotfixRequest(R{}, R{true, "from the form"}, own).ok());
  EXPECT_EQ(own.hotfix->reason, "from the form");

  for (const auto& [query, form] :
       std::vector<std::pair<R, R>>{{R{true, std::nullopt}, R{}},  // no reason anywhere
                                    {R{true, ""}, R{}},            // an empty one
                                    {R{false, "why"}, R{}},        // a reason without hotfix
                                    {R{}, R{false, "why"}},        // the same in the form
                                    {R{true, "a"}, R{true, "b"}},  // given twice
                                    {R{true, "two\nlines"}, R{}},  // not one line
                                    {R{true, std::string(501, 'x')}, R{}}})  // too long
  {
    common::Plan q = plan({});
    EXPECT_TRUE(applyHotfixRequest(query, form, q).isInvalidArgument());
    EXPECT_FALSE(q.hotfix.has_value());
  }
}

TEST(ApplyPolicy, ASelectorWavePinsItsEnvironmentsLabels) {
  const common::Policy pol = policy();
  common::Plan p = plan({wave("eu", {}, 2)});
  p.waves[0].selector = {{"region", "eu"}, {"environment", "production"}};
  apply(pol, actor("bot", "admin"), p);
  EXPECT_EQ(p.waves[0].environment, "production");
  EXPECT_EQ(p.waves[0].selector.at("environment"), "production");

  // A selector that does not name the environment gets its labels: a cluster registering
  // later in another environment with region=us is never taken.
  common::Plan us = plan({wave("us", {}, 2)});
  us.waves[0].selector = {{"region", "us"}};
  apply(pol, actor("bot", "admin"), us);
  EXPECT_EQ(us.waves[0].selector.at("environment"), "production");
  EXPECT_EQ(us.waves[0].selector.at("region"), "us");
}

TEST(ApplyPolicy, AClusterInNoEnvironmentIsAProblemAtItsWave) {
  const common::Policy pol = policy();
  common::Plan p = plan({wave("lab", {"lab-1"}, 7)});
  PolicyVerdict v = apply(pol, actor("bot", "admin"), p);
  ASSERT_EQ(v.problems.size(), 1u);
  EXPECT_EQ(v.problems[0].line, 7);
  EXPECT_EQ(v.problems[0].column, 5);
  EXPECT_NE(v.problems[0].message.find("lab-1 belongs to no environment of the policy"),
            std::string::npos)
      << v.problems[0].message;
  EXPECT_NE(v.problems[0].message.find("production {environment: production}"), std::string::npos)
      << v.problems[0].message;
}

TEST(ApplyPolicy, AWaveAcrossTwoEnvironmentsIsAProblem) {
  const common::Policy pol = policy();
  common::Plan p = plan({wave("all", {"staging-eu", "prod-eu-1"}, 4)});
  PolicyVerdict v = apply(pol, actor("bot", "admin"), p);
  ASSERT_EQ(v.problems.size(), 1u);
  EXPECT_EQ(v.problems[0].line, 4);
  EXPECT_NE(v.problems[0].message.find("spans environments (production: prod-eu-1, staging: "
                                       "staging-eu)"),
            std::string::npos)
      << v.problems[0].message;
}

TEST(ApplyPolicy, OnlyTheEnvironmentsDeployersAndAdminsMayDeploy) {
  const common::Policy pol = policy();
  common::Plan p = plan({wave("staging", {"staging-eu"}, 2), wave("prod", {"prod-eu-1"}, 4)});
  PolicyVerdict v = apply(pol, actor("alice", "deployer"), p);
  ASSERT_FALSE(v.denied.ok());
  EXPECT_EQ(v.denied.code(), common::Status::Code::kPermissionDenied);
  EXPECT_NE(v.denied.message().find("environment production (wave \"prod\") accepts deployments "
                                    "from release-bot only; \"alice\" (role deployer)"),
            std::string::npos)
      << v.denied.message();

  // By token name, and by role.
  common::Plan by_name = plan({wave("prod", {"prod-eu-1"}, 2)});
  EXPECT_TRUE(apply(pol, actor("release-bot", "deployer"), by_name).denied.ok());
  common::Plan by_role = plan({wave("staging", {"staging-eu"}, 2)});
  EXPECT_TRUE(apply(pol, actor("alice", "deployer"), by_role).denied.ok());
  common::Plan admin = plan({wave("prod", {"prod-eu-1"}, 2)});
  EXPECT_TRUE(apply(pol, actor("root", "admin"), admin).denied.ok());
  // Development lists nobody: every deployer.
  common::Plan dev = plan({wave("dev", {"dev-1"}, 2)});
  EXPECT_TRUE(apply(pol, actor("alice", "deployer"), dev).denied.ok());
}

class PolicyFileTest : public ::testing::Test {
 protected:
  std::string write(const std::string& text) {
    const std::string path = dir_.path() + "/policy.yaml";
    support::writeFile(path, text);
    return path;
  }
  support::TempDir dir_{"policy-file"};
};

TEST_F(PolicyFileTest, WithoutAPathThereIsNoPolicy) {
  PolicyFile file("");
  EXPECT_TRUE(file.load().ok());
  EXPECT_EQ(file.current(), nullptr);
  EXPECT_FALSE(file.toJson()["enabled"].get<bool>());
  PolicyReload r = file.reload();
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("without a policy"), std::string::npos);
}

TEST_F(PolicyFileTest, AMistakeAtStartListsEveryProblemWithLineAndColumn) {
  const std::string path = write(
      "environments:\n"
      "  production:\n"
      "    clusters: {}\n"
      "    approval: {required: 0}\n");
  PolicyFile file(path);
  common::Status s = file.load();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("2 mistakes"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(path + ":3:"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(path + ":4:"), std::string::npos) << s.message();
  EXPECT_EQ(file.current(), nullptr);
}

TEST_F(PolicyFileTest, AnUnreadableFileIsRefused) {
  PolicyFile file(dir_.path() + "/missing.yaml");
  common::Status s = file.load();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot read the policy file"), std::string::npos) << s.message();
}

TEST_F(PolicyFileTest, AReloadWithAMistakeKeepsThePolicyInForceAndSaysWhy) {
  const std::string path = write(kPolicy);
  PolicyFile file(path);
  ASSERT_TRUE(file.load().ok());
  const std::string first = file.current()->sha256;
  EXPECT_EQ(file.toJson()["sha256"], first);

  write("environments:\n  production:\n    clusterz: {environment: production}\n");
  PolicyReload bad = file.reload();
  EXPECT_FALSE(bad.ok);
  ASSERT_FALSE(bad.problems.empty());
  EXPECT_EQ(bad.problems[0].line, 3);
  EXPECT_NE(bad.message.find("stays"), std::string::npos) << bad.message;
  EXPECT_EQ(bad.sha256, first);
  EXPECT_EQ(file.current()->sha256, first);
  const nlohmann::json shown = file.toJson();
  EXPECT_EQ(shown["sha256"], first);
  EXPECT_FALSE(shown["last_reload"]["ok"].get<bool>());
  EXPECT_FALSE(shown["last_reload"]["problems"].empty());

  write(std::string(kPolicy) + "    checks: [tests]\n");
  PolicyReload good = file.reload();
  EXPECT_TRUE(good.ok) << good.message;
  EXPECT_NE(good.sha256, first);
  EXPECT_EQ(file.current()->sha256, good.sha256);
  EXPECT_EQ(file.current()->environments.at("production").checks.size(), 1u);
}

TEST_F(PolicyFileTest, AFileLargerThanTheLimitIsRefusedUnparsed) {
  const std::string path = write(std::string(kMaxPolicyFileBytes + 10, '#'));
  PolicyFile file(path);
  common::Status s = file.load();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("larger than"), std::string::npos) << s.message();
}

// Trigger templates are read with the policy: a template's mistakes stop the start with the
// template's own file:line:column, a reload with a broken template keeps the policy in force,
// and a good one is there by name with its environment.
TEST_F(PolicyFileTest, TriggerTemplatesAreReadWithThePolicyAndTheirMistakesNamed) {
  const char* policy =
      "environments:\n"
      "  development:\n"
      "    clusters: {environment: development}\n"
      "    triggers: [{name: develop-merge, plan: plans/dev.yaml}]\n";
  const char* good =
      "service: ledger\nversion: \"0.0.0\"\nsteps:\n  apply: \"true\"\n  rollback: \"true\"\n"
      "waves:\n  - name: development\n    selector: {environment: development}\n";
  std::filesystem::create_directories(dir_.path() + "/plans");
  support::writeFile(dir_.path() + "/plans/dev.yaml",
                     "service: ledger\nversion: \"0.0.0\"\nsteps:\n  aply: \"true\"\nwaves: []\n");
  const std::string path = write(policy);
  PolicyFile broken(path);
  common::Status s = broken.load();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("trigger templates have"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(dir_.path() + "/plans/dev.yaml:4:"), std::string::npos) << s.message();
  EXPECT_EQ(broken.current(), nullptr);

  support::writeFile(dir_.path() + "/plans/dev.yaml", good);
  PolicyFile file(path);
  const common::Status loaded = file.load();
  ASSERT_TRUE(loaded.ok()) << loaded.toString();
  std::optional<TriggerTemplate> trigger = file.trigger("develop-merge");
  ASSERT_TRUE(trigger.has_value());
  EXPECT_EQ(trigger->environment, "development");
  EXPECT_EQ(trigger->path, "plans/dev.yaml");
  EXPECT_EQ(trigger->plan.service, "ledger");
  EXPECT_FALSE(file.trigger("nope").has_value());

  // A template gone missing: the reload is refused and the old one stays.
  std::filesystem::remove(dir_.path() + "/plans/dev.yaml");
  PolicyReload bad = file.reload();
  EXPECT_FALSE(bad.ok);
  ASSERT_EQ(bad.template_problems.size(), 1u);
  EXPECT_NE(bad.template_problems[0].find("plans/dev.yaml: trigger develop-merge's plan template"),
            std::string::npos)
      << bad.template_problems[0];
  EXPECT_NE(bad.message.find("stays"), std::string::npos) << bad.message;
  EXPECT_TRUE(file.trigger("develop-merge").has_value());
  EXPECT_EQ(file.toJson()["last_reload"]["template_problems"].size(), 1u);
}

// The policy's promotion rule goes onto the waves of its environment.
TEST(PolicyRules, PromotionIsCopiedOntoTheWave) {
  common::PolicyParseResult parsed = common::parsePolicy(
      "environments:\n  staging:\n    clusters: {environment: staging}\n"
      "  production:\n    clusters: {environment: production}\n"
      "    promotion: {from: staging, soak: 30m}\n");
  ASSERT_TRUE(parsed.policy.has_value());
  common::Plan p = plan({wave("staging", {"staging-eu"}, 3), wave("prod", {"prod-eu-1"}, 6)});
  PolicyVerdict verdict = apply(*parsed.policy, actor("ci", "deployer"), p);
  ASSERT_TRUE(verdict.problems.empty());
  EXPECT_EQ(p.waves[0].promote_from, "");
  EXPECT_EQ(p.waves[1].promote_from, "staging");
  EXPECT_EQ(p.waves[1].promote_soak, std::chrono::minutes(30));
  // It survives the stored form.
  auto stored = common::planFromJson(common::planToJson(p));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->waves[1].promote_from, "staging");
  EXPECT_EQ(stored->waves[1].promote_soak, std::chrono::minutes(30));
}

}  // namespace
}  // namespace flotilla::coordinator
