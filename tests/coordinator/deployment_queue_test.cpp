// Tests for one deployment per service at a time (coordinator/deployment_queue.cpp): which
// deployments conflict, what one waits for, the queue, refusal and supersede.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/coordinator/deployment_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using DeploymentQueue = DeploymentTest;

// Two waves by name: staging-eu, then prod-eu-1 and prod-eu-2.
common::Plan named(std::vector<std::string> staging, std::vector<std::string> prod,
                   const std::string& service = "checkout") {
  common::Plan p;
  p.service = service;
  p.version = "2.0.0";
  p.steps.apply = "apply";
  p.steps.rollback = "rollback";
  common::Wave a;
  a.name = "staging";
  a.clusters = std::move(staging);
  common::Wave b;
  b.name = "prod";
  b.clusters = std::move(prod);
  p.waves = {a, b};
  return p;
}

Deployment fresh(const std::string& id, common::Plan plan, const Actor& by) {
  Effects fx;
  return newDeployment(id, std::move(plan), by, common::SystemTime{}, fx);
}

TEST_F(DeploymentQueue, SameServiceOnASharedClusterConflicts) {
  const common::Plan a = named({"staging-eu"}, {"prod-eu-1"});
  EXPECT_EQ(conflictBetween(a, named({"staging-eu"}, {})), "on staging-eu");
  EXPECT_EQ(conflictBetween(a, named({"prod-eu-1", "staging-eu"}, {"x"})),
            "on prod-eu-1, staging-eu");
  // Independent: other clusters, or another service on the same ones.
  EXPECT_EQ(conflictBetween(a, named({"prod-us-1"}, {"prod-eu-2"})), std::nullopt);
  EXPECT_EQ(conflictBetween(a, named({"staging-eu"}, {"prod-eu-1"}, "cart")), std::nullopt);
  // A wave by selector is resolved only when it starts: any cluster of the service counts.
  auto any = conflictBetween(a, threeWaves());
  ASSERT_TRUE(any.has_value());
  EXPECT_NE(any->find("by selector"), std::string::npos);
  EXPECT_EQ(conflictBetween(named({"x"}, {}, "cart"), threeWaves()), std::nullopt);
  EXPECT_EQ(namedClusters(threeWaves()), std::nullopt);
  EXPECT_EQ(namedClusters(a), (std::vector<std::string>{"prod-eu-1", "staging-eu"}));
}

TEST_F(DeploymentQueue, WaitsForTheLatestUnfinishedConflictingOneSubmittedBefore) {
  Deployment first = fresh("checkout-1", threeWaves(), alice_);
  first.state = DeploymentState::kRunning;
  Deployment second = fresh("checkout-2", threeWaves(), alice_);
  second.state = DeploymentState::kQueued;
  Deployment third = fresh("checkout-10", threeWaves(), alice_);  // ordered by number, not text
  Deployment cart = fresh("cart-11", named({"staging-eu"}, {}, "cart"), alice_);
  cart.state = DeploymentState::kRunning;
  const std::vector<const Deployment*> all{&first, &second, &third, &cart};
  EXPECT_EQ(submissionOrder(third), 10u);
  EXPECT_EQ(blockerOf(third, all), &second);
  EXPECT_EQ(blockerOf(second, all), &first);
  EXPECT_EQ(blockerOf(first, all), nullptr);   // later ones never block
  EXPECT_EQ(blockerOf(cart, all), nullptr);    // another service
  second.state = DeploymentState::kCancelled;  // any final state frees the way
  EXPECT_EQ(blockerOf(third, all), &first);
  first.state = DeploymentState::kRolledBack;
  EXPECT_EQ(blockerOf(third, all), nullptr);
}

TEST_F(DeploymentQueue, QueuedWaitsThenStartsWhenLeftThrough) {
  Deployment ahead = start(threeWaves());
  Deployment d = fresh("checkout-2", threeWaves(), alice_);
  fx_ = Effects{};
  waitFor(d, ahead, fx_);
  EXPECT_EQ(d.state, DeploymentState::kQueued);
  EXPECT_EQ(d.waits_for, "checkout-1");
  ASSERT_NE(findEvent("deployment.queued"), nullptr);
  EXPECT_EQ(findEvent("deployment.queued")->message.rfind("queued behind checkout-1 (running)", 0),
            0u);
  // Nothing moves a queued deployment but leaveQueue.
  fx_ = Effects{};
  advance(d, ctx(), fx_);
  EXPECT_FALSE(fx_.changed);
  waitFor(d, ahead, fx_);
  EXPECT_FALSE(fx_.changed);  // same one ahead: nothing to say
  // The stored form keeps it queued and what it waits for.
  auto back = deploymentFromJson(deploymentToJson(d));
  ASSERT_TRUE(back.ok()) << back.status().toString();
  EXPECT_EQ(back->state, DeploymentState::kQueued);
  EXPECT_EQ(back->waits_for, "checkout-1");
  EXPECT_STREQ(deploymentStateName(DeploymentState::kQueued), "queued");
  EXPECT_FALSE(isFinal(DeploymentState::kQueued));

  leaveQueue(d, ctx(), fx_);
  EXPECT_EQ(d.state, DeploymentState::kRunning);
  EXPECT_TRUE(d.waits_for.empty());
  EXPECT_TRUE(hasEvent("deployment.dequeued"));
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/build"});
}

TEST_F(DeploymentQueue, RefusalNamesTheDeploymentInFlight) {
  Deployment ahead = start(threeWaves());
  common::Status s = refuseQueued(threeWaves(), ahead);
  EXPECT_TRUE(s.isFailedPrecondition());
  EXPECT_NE(s.message().find("deployment checkout-1 of checkout is in flight (running)"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("nothing was stored"), std::string::npos);
}

TEST_F(DeploymentQueue, SupersedeRollsTheRunningOneBack) {
  versions_ = {{"staging-eu", "1.0.0"}};
  Deployment d = start(threeWaves());
  ASSERT_TRUE(answer(d, "staging-eu").ok());  // build
  ASSERT_EQ(dispatched(), std::vector<std::string>{"staging-eu/apply"});
  fx_ = Effects{};
  supersede(d, "checkout-2", bob_, ctx(), fx_);
  EXPECT_EQ(d.state, DeploymentState::kRollingBack);
  EXPECT_EQ(d.rollback_cause, "superseded by checkout-2 (by bob)");
  EXPECT_TRUE(hasEvent("deployment.superseded"));
  ASSERT_EQ(fx_.aborts.size(), 1u);  // the apply in flight is stopped
  // The aborted apply may have changed the cluster: it is rolled back.
  ASSERT_TRUE(answer(d, "staging-eu", Outcome::ABORTED).ok());
  EXPECT_EQ(dispatched(), std::vector<std::string>{"staging-eu/rollback"});
  ASSERT_TRUE(answer(d, "staging-eu").ok());
  EXPECT_EQ(d.state, DeploymentState::kRolledBack);
  EXPECT_EQ(d.reason, "superseded by checkout-2 (by bob)");
  // Superseding a finished one changes nothing.
  fx_ = Effects{};
  supersede(d, "checkout-3", bob_, ctx(), fx_);
  EXPECT_FALSE(fx_.changed);
}

TEST_F(DeploymentQueue, SupersedeCancelsAQueuedOneAndCancelEndsAQueuedOne) {
  Deployment ahead = start(threeWaves());
  Deployment queued = fresh("checkout-2", threeWaves(), alice_);
  waitFor(queued, ahead, fx_);
  fx_ = Effects{};
  supersede(queued, "checkout-3", bob_, ctx(), fx_);
  EXPECT_EQ(queued.state, DeploymentState::kCancelled);
  EXPECT_NE(queued.reason.find("nothing ran"), std::string::npos);
  EXPECT_TRUE(fx_.dispatches.empty());

  Deployment other = fresh("checkout-4", threeWaves(), alice_);
  waitFor(other, ahead, fx_);
  fx_ = Effects{};
  ASSERT_TRUE(cancel(other, alice_, "", ctx(), fx_).ok());
  EXPECT_EQ(other.state, DeploymentState::kCancelled);
  EXPECT_EQ(other.reason, "cancelled by alice while queued behind checkout-1; nothing ran");
  EXPECT_TRUE(fx_.dispatches.empty());
  // Neither pause nor rollback applies to what never ran.
  Deployment third = fresh("checkout-5", threeWaves(), alice_);
  waitFor(third, ahead, fx_);
  EXPECT_TRUE(requestRollback(third, alice_, "", ctx(), fx_).isFailedPrecondition());
  EXPECT_TRUE(pause(third, alice_, "", ctx(), fx_).isFailedPrecondition());
}

}  // namespace
}  // namespace flotilla::coordinator::testing
