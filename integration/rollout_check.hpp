// The crash tests' rollout and its checker: a 3-wave, 4-cluster script rollout whose every step
// appends "<deployment> <cluster> <step>" to a per-cluster counter file, and the invariants that
// must hold however often a process was killed on the way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/fleet.hpp"

namespace flotilla::integration {

struct RolloutShape {
  // verify fails on prod-eu-2 (wave 2): the rollout rolls back.
  bool verify_fails_in_wave_2 = false;
  // apply on this cluster marks dir()/<cluster>.apply-started and then sleeps for a long time, so
  // a test can kill its agent mid-step ...
  std::string hold_apply_on;
  // ... after apply wrote the new version (true: the apply took) or before (false: it did not).
  bool hold_after_version_written = false;
  // The hold ends when dir()/<cluster>.release appears (at most 60 s), not after 60 s.
  bool hold_until_released = false;
};

// verify fails on prod-eu-2: the rollout rolls back from wave 2.
inline RolloutShape failingRollout() {
  RolloutShape s;
  s.verify_fails_in_wave_2 = true;
  return s;
}

// apply holds on `cluster`, after or before it wrote the new version.
inline RolloutShape applyHoldsOn(const std::string& cluster, bool after_version_written) {
  RolloutShape s;
  s.hold_apply_on = cluster;
  s.hold_after_version_written = after_version_written;
  return s;
}

class RolloutTest : public support::FleetTest {
 protected:
  // Writes the plan: waves staging [staging-eu], europe [prod-eu-1, prod-eu-2],
  // america [prod-us-1], version 7.0.<n> for the n-th rollout of the test. apply writes the
  // version to dir()/<cluster>.version; verify checks it (so a verify after an apply that never
  // ran fails); rollback writes "previous".
  std::string writeRollout(const RolloutShape& shape = {});

  // The steps the counter file of `cluster` shows for deployment `id`, in order.
  std::vector<std::string> counter(const std::string& cluster, const std::string& id);

  // Ids listed by GET /api/v1/deployments (empty and a failure when it does not answer).
  std::vector<std::string> listedIds();

  // Waits until `id` is in a final state; returns it ("" on timeout, with a failure).
  std::string waitForFinal(const std::string& id,
                           std::chrono::milliseconds deadline = std::chrono::seconds(60));

  // Every invariant, once `id` ended (waits for that): it ended `expected` ("" = succeeded,
  // rolled_back, or failed when a rollback itself was interrupted); it is listed; no step ran
  // twice anywhere; forward steps ran in order; every cluster that may run the new version was
  // rolled back exactly once (and is back on "previous"), or, when it succeeded, every cluster
  // ran build, apply, verify once and runs the new version; clusters never reached ran nothing;
  // the history has one start, one end, and no stage that succeeded twice. Returns the final
  // state.
  std::string checkRollout(const std::string& id, const std::string& expected);

  // Waits for the coordinator to exit at failpoint `name`; checks its log says so.
  bool waitForCoordinatorCrash(const std::string& name);
  // Waits for the cluster's agent to exit at failpoint `name`; checks its log says so.
  bool waitForAgentCrash(const std::string& cluster, const std::string& name);

  // Prints (test output) how many kills this test survived, for the record.
  void reportKills(int kills, const std::string& how);

  // The seed for the random kills: FLOTILLA_CRASH_SEED when set, else `fallback`; printed.
  uint32_t crashSeed(uint32_t fallback);

 private:
  int rollouts_ = 0;
};

}  // namespace flotilla::integration
