// Tests for agent/process/deploy_steps.cpp: deploy, shift, finalize and the rollback of a canary
// or blue-green rollout, with real replicas behind a real HAProxy
// (tests/agent/process/driver_fixture.hpp).
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/http_client.hpp"
#include "tests/agent/process/driver_fixture.hpp"

namespace flotilla::agent::testing {
namespace {

using namespace std::chrono_literals;
using common::httpGet;

TEST_F(ProcessDriverTest, FirstDeployShiftAndFinalizeServeTheVersion) {
  auto r = run(Step::DEPLOY, spec("1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_EQ(recordedVersion("candidate"), "1.0.0");
  EXPECT_EQ(recordedPids("candidate").size(), 2u);
  // Each replica gets the command's variables under its own version and port (they were
  // dropped, and FLOTILLA_DEPLOYMENT was always empty).
  for (pid_t pid : recordedPids("candidate")) {
    const std::map<std::string, std::string> env = environmentOf(pid);
    EXPECT_EQ(env.count("FLOTILLA_WAVE") ? env.at("FLOTILLA_WAVE") : "", "all") << pid;
    EXPECT_EQ(env.count("FLOTILLA_DEPLOYMENT") ? env.at("FLOTILLA_DEPLOYMENT") : "", "d-1");
    EXPECT_EQ(env.count("FLOTILLA_VERSION") ? env.at("FLOTILLA_VERSION") : "", "1.0.0");
    EXPECT_EQ(env.count("FLOTILLA_PORT"), 1u);
  }
  EXPECT_TRUE(logged("weight 0")) << "a new replica enters the backend without traffic";
  EXPECT_EQ(sample(3), (std::map<std::string, int>{{"HTTP 503", 3}}))
      << "weight 0 everywhere: no server takes the request";

  r = run(Step::SHIFT, withWeight(spec("1.0.0"), 100));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 1.0.0", 20}}));

  r = run(Step::FINALIZE, spec("1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_EQ(recordedVersion("stable"), "1.0.0");
  EXPECT_EQ(recordedVersion("candidate"), "");
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 1.0.0", 20}}));

  // Repeated steps (a retried command) change nothing.
  r = run(Step::FINALIZE, spec("1.0.0"));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::SHIFT, withWeight(spec("1.0.0"), 100));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_EQ(recordedPids("stable").size(), 2u);
  EXPECT_EQ(sample(10), (std::map<std::string, int>{{"checkout 1.0.0", 10}}));
}

// A version the plan accepts (common/rules.hpp: 128 characters, '+' and '_' included) runs:
// the driver once took only 64 characters, so such a plan failed at its first step.
TEST_F(ProcessDriverTest, AnOddButLegalVersionDeploys) {
  const std::string version = "2026.12.04_rc-1+build.7." + std::string(104, 'x');
  ASSERT_EQ(version.size(), 128u);
  auto r = run(Step::DEPLOY, spec(version));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  for (pid_t pid : recordedPids("candidate")) {
    const std::map<std::string, std::string> env = environmentOf(pid);
    EXPECT_EQ(env.count("FLOTILLA_VERSION") ? env.at("FLOTILLA_VERSION") : "", version);
  }
}

TEST_F(ProcessDriverTest, GoodCanaryRollsOutWithoutOneFailedRequest) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  const std::vector<pid_t> old_pids = recordedPids("stable");
  TrafficLoop traffic(haproxy_->port());

  auto r = run(Step::DEPLOY, spec("2.0.0", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::SHIFT, withWeight(spec("2.0.0", "1.0.0"), 10));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_TRUE(logged("weights: 2.0.0 10%, 1.0.0 90%"));
  r = run(Step::ANALYZE, withDuration(spec("2.0.0", "1.0.0"), 1500));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("analysis passed"), std::string::npos) << r.message;
  r = run(Step::SHIFT, withWeight(spec("2.0.0", "1.0.0"), 100));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::FINALIZE, spec("2.0.0", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  traffic.stop();

  EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
  EXPECT_GT(traffic.count("checkout 1.0.0"), 0) << traffic.describe();
  EXPECT_GT(traffic.count("checkout 2.0.0"), 0) << traffic.describe();
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 2.0.0", 20}}));
  EXPECT_EQ(recordedVersion("stable"), "2.0.0");
  EXPECT_EQ(record()["previous_version"], "1.0.0");
  for (pid_t pid : old_pids) EXPECT_TRUE(processGone(pid)) << "1.0.0 replica " << pid;
}

TEST_F(ProcessDriverTest, DeployOfAVersionWhoseHealthFailsFailsAndStopsItsReplicas) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  TestSpec s = spec("2.0.0-sick", "1.0.0");
  s.start_timeout = 1500ms;
  auto r = run(Step::DEPLOY, s);
  EXPECT_EQ(r.outcome, Outcome::FAILED) << r.message;
  // A replica that answers "unhealthy" is judged by failure_threshold, not the start allowance.
  EXPECT_NE(r.message.find("never became healthy"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("4 times in a row"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("HTTP 503"), std::string::npos) << r.message;
  EXPECT_EQ(recordedVersion("candidate"), "");
  const std::set<pid_t> sick = startedPids("2.0.0-sick");
  EXPECT_EQ(sick.size(), 2u);
  for (pid_t pid : sick) EXPECT_TRUE(processGone(pid)) << "sick replica " << pid;
  EXPECT_EQ(sample(10), (std::map<std::string, int>{{"checkout 1.0.0", 10}}));
}

TEST_F(ProcessDriverTest, RollbackAfterFinalizeStartsThePreviousVersionAgain) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  auto r = run(Step::DEPLOY, spec("2.0.0", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::SHIFT, withWeight(spec("2.0.0", "1.0.0"), 100));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::FINALIZE, spec("2.0.0", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  const std::vector<pid_t> v2 = recordedPids("stable");

  TrafficLoop traffic(haproxy_->port());
  r = run(Step::ROLLBACK, spec("2.0.0", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  traffic.stop();
  EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
  EXPECT_EQ(recordedVersion("stable"), "1.0.0");
  EXPECT_EQ(recordedVersion("candidate"), "");
  for (pid_t pid : v2) EXPECT_TRUE(processGone(pid)) << "2.0.0 replica " << pid;
  EXPECT_EQ(sample(10), (std::map<std::string, int>{{"checkout 1.0.0", 10}}));

  r = run(Step::ROLLBACK, spec("2.0.0", "1.0.0"));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll back"), std::string::npos) << r.message;
}

TEST_F(ProcessDriverTest, RepeatedDeployReusesTheRunningCandidateSet) {
  auto r = run(Step::DEPLOY, spec("1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  const std::vector<pid_t> first = recordedPids("candidate");
  r = run(Step::DEPLOY, spec("1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_EQ(recordedPids("candidate"), first);
  EXPECT_EQ(startedPids().size(), 2u) << "nothing was started twice";
}

TEST_F(ProcessDriverTest, WithoutTrafficConfigReplicasRunAndShiftOnlyRecords) {
  TestSpec s = spec("1.0.0");
  s.plan.haproxy.reset();
  auto r = run(Step::DEPLOY, s);
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::SHIFT, withWeight(s, 100));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("recorded only"), std::string::npos) << r.message;
  r = run(Step::FINALIZE, s);
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  const json rec = record();
  ASSERT_EQ(rec["stable"]["replicas"].size(), 2u);
  for (const json& replica : rec["stable"]["replicas"]) {
    EXPECT_TRUE(replica["slot"].is_null());
    const int port = replica["port"];
    auto reply = httpGet("http://127.0.0.1:" + std::to_string(port) + "/", 2000ms);
    ASSERT_TRUE(reply.ok()) << reply.status().toString();
    EXPECT_EQ(trim(reply->body), "checkout 1.0.0");
  }
  auto servers = admin_->freeServers(kBackend);
  ASSERT_TRUE(servers.ok());
  EXPECT_EQ(servers->size(), static_cast<size_t>(kSlots)) << "HAProxy was not touched";
}

}  // namespace
}  // namespace flotilla::agent::testing
