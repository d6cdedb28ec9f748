// For the tests of the deployment state machine (tests/coordinator/deployment*_test.cpp): a
// registry of four agents (staging-eu; prod-eu-1, prod-eu-2, prod-us-1 in production, the
// last also in region us), a three-wave script plan over them, and helpers that start a
// deployment, answer its steps and read the effects of the last call (fx_).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/plan.hpp"
#include "common/status.hpp"
#include "common/time_format.hpp"
#include "coordinator/deployment.hpp"
#include "coordinator/registry.hpp"

namespace flotilla::coordinator::testing {

// The fleet every test starts with, and the labels each agent registers with.
extern const std::map<std::string, std::map<std::string, std::string>> kAgents;

class DeploymentTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // Every agent's connection expires and only those of `back` register again.
  void onlyBack(const std::vector<std::string>& back);
  // `cluster`'s agent registers again and the deployment hears of it (fx_ holds the effects).
  void returns(Deployment& d, const std::string& cluster);
  void addAgent(const std::string& name, std::map<std::string, std::string> labels);

  // staging (staging-eu), prod-eu (prod-eu-1, prod-eu-2), prod-us (by selector region=us);
  // build, apply, verify, rollback.
  static common::Plan threeWaves();
  // One production wave of every production cluster (by selector), apply then verify.
  static common::Plan productionWave();

  Context ctx() { return Context{registry_, common::SystemTime{}, versions_}; }
  // A context `ms` after the Unix epoch (the fixture's own starts at the epoch).
  Context ctxAt(int64_t ms) { return Context{registry_, common::fromUnixMillis(ms), versions_}; }

  // A new deployment of `plan` submitted by alice, advanced once (fx_ holds the effects).
  Deployment start(common::Plan plan);
  // Answers the step `cluster` has in flight (fx_ holds the effects).
  common::Status answer(Deployment& d, const std::string& cluster,
                        Outcome outcome = Outcome::SUCCEEDED);
  // The result `cluster`'s agent would send for its step in flight.
  static StageResult resultFor(const Deployment& d, const std::string& cluster, Outcome outcome);
  // Runs every step of every in-flight cluster to success until nothing is in flight.
  void succeedAll(Deployment& d);
  // Staging done, the two-approver production wave waiting.
  Deployment awaitingTwoApprovals(std::chrono::milliseconds expires = std::chrono::hours(24));

  // The stage ids fx_ sends, in order.
  std::vector<std::string> dispatched() const;
  bool hasEvent(const std::string& type) const;
  // The first event of fx_ of type `type`; null when none.
  const Event* findEvent(const std::string& type) const;

  Registry registry_;
  std::map<std::string, std::string> versions_;
  Effects fx_;
  const Actor alice_{"alice", "deployer", {}, "127.0.0.1:1000"};
  const Actor bob_{"bob", "approver", {}, "127.0.0.1:1001"};
  const Actor carol_{"carol", "approver", {}, "127.0.0.1:1002"};
};

}  // namespace flotilla::coordinator::testing
