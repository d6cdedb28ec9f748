// The deployment state machine's test fixture (see the header).
#include "tests/coordinator/deployment_fixture.hpp"

#include <algorithm>
#include <utility>

namespace flotilla::coordinator::testing {

const std::map<std::string, std::map<std::string, std::string>> kAgents = {
    {"staging-eu", {{"environment", "staging"}}},
    {"prod-eu-1", {{"environment", "production"}}},
    {"prod-eu-2", {{"environment", "production"}}},
    {"prod-us-1", {{"environment", "production"}, {"region", "us"}}},
};

void DeploymentTest::SetUp() {
  for (const auto& [name, labels] : kAgents) addAgent(name, labels);
}

void DeploymentTest::onlyBack(const std::vector<std::string>& back) {
  registry_.expire(common::SteadyTime{} + std::chrono::hours(1), std::chrono::seconds(1));
  for (const auto& name : back) addAgent(name, kAgents.at(name));
}

void DeploymentTest::returns(Deployment& d, const std::string& cluster) {
  addAgent(cluster, kAgents.at(cluster));
  fx_ = Effects{};
  agentReturned(d, cluster, ctx(), fx_);
}

void DeploymentTest::addAgent(const std::string& name, std::map<std::string, std::string> labels) {
  registry_.registerAgent(name, std::move(labels), "test", 1, common::SteadyTime{},
                          common::SystemTime{});
}

common::Plan DeploymentTest::threeWaves() {
  common::Plan p;
  p.service = "checkout";
  p.version = "2.0.0";
  p.steps.build = "build";
  p.steps.apply = "apply";
  p.steps.verify = "verify";
  p.steps.rollback = "rollback";
  common::Wave staging;
  staging.name = "staging";
  staging.clusters = {"staging-eu"};
  common::Wave eu;
  eu.name = "prod-eu";
  eu.clusters = {"prod-eu-1", "prod-eu-2"};
  common::Wave us;
  us.name = "prod-us";
  us.selector = {{"region", "us"}};
  p.waves = {staging, eu, us};
  return p;
}

common::Plan DeploymentTest::productionWave() {
  common::Plan p;
  p.service = "checkout";
  p.version = "2.0.0";
  p.steps.apply = "apply";
  p.steps.verify = "verify";
  p.steps.rollback = "rollback";
  common::Wave prod;
  prod.name = "prod";
  prod.selector = {{"environment", "production"}};
  p.waves = {prod};
  return p;
}

Deployment DeploymentTest::start(common::Plan plan) {
  Effects fx;
  Deployment d = newDeployment("checkout-1", std::move(plan), alice_, common::SystemTime{}, fx);
  EXPECT_EQ(d.state, DeploymentState::kPending);
  fx_ = Effects{};
  advance(d, ctx(), fx_);
  return d;
}

common::Status DeploymentTest::answer(Deployment& d, const std::string& cluster, Outcome outcome) {
  ClusterProgress* c = d.findCluster(cluster);
  EXPECT_NE(c, nullptr) << cluster;
  if (c == nullptr) return common::Status::NotFound(cluster);
  StageResult r{cluster, c->stageId(), c->attempt, outcome, outcome == Outcome::SUCCEEDED ? 0 : 1,
                "msg"};
  fx_ = Effects{};
  return applyResult(d, r, ctx(), fx_);
}

StageResult DeploymentTest::resultFor(const Deployment& d, const std::string& cluster,
                                      Outcome outcome) {
  const ClusterProgress* c = d.findCluster(cluster);
  EXPECT_NE(c, nullptr) << cluster;
  if (c == nullptr) return StageResult{};
  return StageResult{
      cluster, c->stageId(), c->attempt, outcome, outcome == Outcome::SUCCEEDED ? 0 : 1, "msg"};
}

void DeploymentTest::succeedAll(Deployment& d) {
  for (int guard = 0; guard < 100; ++guard) {
    std::string next;
    for (auto& w : d.waves) {
      for (auto& c : w.clusters) {
        if (c.in_flight && next.empty()) next = c.name;
      }
    }
    if (next.empty()) return;
    ASSERT_TRUE(answer(d, next).ok());
  }
}

Deployment DeploymentTest::awaitingTwoApprovals(std::chrono::milliseconds expires) {
  common::Plan p = threeWaves();
  p.waves[1].approval_required = true;
  p.waves[1].approvals_required = 2;
  p.waves[1].approval_expires = expires;
  Deployment d = start(p);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kAwaitingApproval);
  return d;
}

std::vector<std::string> DeploymentTest::dispatched() const {
  std::vector<std::string> out;
  for (const auto& x : fx_.dispatches) out.push_back(x.stage_id);
  return out;
}

bool DeploymentTest::hasEvent(const std::string& type) const {
  return std::any_of(fx_.events.begin(), fx_.events.end(),
                     [&](const Event& e) { return e.type == type; });
}

const Event* DeploymentTest::findEvent(const std::string& type) const {
  for (const auto& e : fx_.events) {
    if (e.type == type) return &e;
  }
  return nullptr;
}

}  // namespace flotilla::coordinator::testing
