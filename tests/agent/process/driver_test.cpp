// Tests for agent/process/driver.cpp: the driver itself (recover and re-adoption after an agent
// restart, start() and run() as the agent's entries, a bad spec or state failing the step), with
// real replicas behind a real HAProxy (tests/agent/process/driver_fixture.hpp). The steps' own
// tests are in deploy_steps_test.cpp, watch_steps_test.cpp and rolling_steps_test.cpp.
#include "agent/driver.hpp"

#include <capnp/message.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/stage_record.hpp"
#include "common/http_client.hpp"
#include "coordinator/process_spec.hpp"
#include "tests/agent/process/driver_fixture.hpp"
#include "tests/support/net.hpp"

namespace flotilla::agent::testing {
namespace {

using namespace std::chrono_literals;
using common::httpGet;

// Polls `run` until it ends (or `limit` passes), collecting what it said into `lines`.
std::optional<StepEnd> waitForEnd(StepRun& run, std::vector<std::string>& lines,
                                  std::chrono::milliseconds limit) {
  const auto deadline = StepRun::Clock::now() + limit;
  std::vector<AlertReport> alerts;
  std::vector<FiguresReport> figures;
  while (true) {
    std::optional<StepEnd> end = run.poll(StepRun::Clock::now());
    run.collect(lines, alerts, figures);
    if (end || StepRun::Clock::now() >= deadline) return end;
    std::this_thread::sleep_for(10ms);
  }
}

// Service records under the state dir: what a step that ran would have written.
std::vector<std::string> serviceRecords(const std::string& state_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(state_dir) / "services", ec)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

TEST_F(ProcessDriverTest, RecoverReadoptsLiveReplicasAndForgetsDeadOnes) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  auto r = run(Step::DEPLOY, spec("2.0.0", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  const std::vector<pid_t> stable = recordedPids("stable");
  const std::vector<pid_t> candidate = recordedPids("candidate");
  ASSERT_EQ(candidate.size(), 2u);

  // While "the agent is down": one candidate replica dies, and HAProxy loses a stable slot
  // (as after an HAProxy restart).
  ASSERT_EQ(kill(candidate[0], SIGKILL), 0);
  ASSERT_TRUE(waitUntilDead(candidate[0]));
  const json before = record();
  const std::string lost_slot = before["stable"]["replicas"][0]["slot"];
  const int lost_port = before["stable"]["replicas"][0]["port"];
  ASSERT_TRUE(admin_->releaseServer(kBackend, lost_slot).ok());
  driver_.reset();

  ProcessDriver restarted(state_dir_, "test");
  ASSERT_TRUE(restarted.recover(sink()).ok());
  EXPECT_TRUE(logged("re-adopted")) << "the recovery is reported";
  EXPECT_TRUE(logged("pid " + std::to_string(candidate[0]))) << "the dead replica is reported";
  EXPECT_EQ(recordedPids("stable"), stable) << "live replicas are adopted, not restarted";
  EXPECT_EQ(recordedPids("candidate"), std::vector<pid_t>{candidate[1]});
  auto servers = admin_->showServers(kBackend);
  ASSERT_TRUE(servers.ok()) << servers.status().toString();
  bool reattached = false;
  for (const ServerInfo& s : *servers) {
    if (s.port == lost_port && s.state() == ServerState::kReady) reattached = true;
  }
  EXPECT_TRUE(reattached) << "the stable replica on " << lost_port << " is back in HAProxy";
  EXPECT_EQ(sample(10), (std::map<std::string, int>{{"checkout 1.0.0", 10}}));

  // The restarted driver finishes the rollout with what it adopted.
  r = run(Step::SHIFT, withWeight(spec("2.0.0", "1.0.0"), 100), &restarted);
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::FINALIZE, spec("2.0.0", "1.0.0"), &restarted);
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_EQ(sample(10), (std::map<std::string, int>{{"checkout 2.0.0", 10}}));
}

TEST_F(ProcessDriverTest, AnUnreadableRecordFailsOnlyItsOwnService) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  {
    std::ofstream bad(state_dir_ + "/services/other.json");
    bad << "{not json";
  }
  ProcessDriver restarted(state_dir_, "test");
  EXPECT_TRUE(restarted.recover(sink()).ok()) << "one bad file must not stop the agent";
  EXPECT_TRUE(logged("cannot read the record of other"));
  EXPECT_TRUE(logged("checkout: re-adopted 2 of 1.0.0 (stable)"));
  TestSpec other = spec("1.0.0");
  other.plan.service = "other";
  auto r = run(Step::DEPLOY, other, &restarted);
  EXPECT_EQ(r.outcome, Outcome::FAILED);
  EXPECT_NE(r.message.find("cannot read the record of other"), std::string::npos) << r.message;
}

// What the spec itself must hold is agent/process/spec_test.cpp's; here, what the driver's
// state refuses, and a bad spec through run() (the agent's path) failing the step.
TEST_F(ProcessDriverTest, StepsTheStateOrTheSpecDoNotAllowAreRefused) {
  TestSpec bad = spec("1; rm -rf /");
  bad.plan.service = "Bad Name";
  auto r = run(Step::DEPLOY, bad);
  EXPECT_EQ(r.outcome, Outcome::FAILED);
  EXPECT_NE(r.message.find("service must be"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("version must be"), std::string::npos) << r.message;
  EXPECT_TRUE(startedPids().empty());
  r = run(Step::SHIFT, withWeight(spec("1.0.0"), 10));
  EXPECT_EQ(r.outcome, Outcome::FAILED);
  EXPECT_NE(r.message.find("deploy it first"), std::string::npos) << r.message;
  r = run(Step::ROLLBACK, spec("1.0.0"));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll back"), std::string::npos) << r.message;
}

TEST_F(ProcessDriverTest, AgentRestartMidRollReadoptsBothVersionsAndTheRollFinishes) {
  constexpr int kReplicas = 4;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas));
  const TestSpec roll = rollSpec("2.0.0", "1.0.0", kReplicas, 1, 1);
  TrafficLoop traffic(haproxy_->port());
  Sampler serving(haproxyServing());

  // The agent "dies" mid-roll: its step is cancelled half-way through round 2.
  const CancelledRoll cancelled = cancelMidRoll(roll);
  ASSERT_TRUE(cancelled.round_one) << "the roll never finished its first round";
  ASSERT_EQ(cancelled.report.outcome, Outcome::ABORTED) << cancelled.report.message;
  const std::vector<pid_t> old_left = recordedPids("stable");
  const std::vector<pid_t> new_running = recordedPids("candidate");
  ASSERT_FALSE(old_left.empty());
  ASSERT_FALSE(new_running.empty());
  driver_.reset();

  ProcessDriver restarted(state_dir_, "test");
  ASSERT_TRUE(restarted.recover(sink()).ok());
  EXPECT_TRUE(logged("rolling update to 2.0.0 was under way"));
  EXPECT_EQ(recordedPids("stable"), old_left) << "adopted, not restarted";
  EXPECT_EQ(recordedPids("candidate"), new_running) << "adopted, not restarted";

  auto r = run(Step::ROLL, roll, &restarted);
  serving.stop();
  traffic.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_GE(serving.min(), kReplicas - 1) << serving.describe();
  EXPECT_LE(serving.max(), kReplicas + 1) << serving.describe();
  EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
  EXPECT_EQ(recordedVersion("stable"), "2.0.0");
  EXPECT_EQ(recordedVersion("candidate"), "");
  const std::vector<pid_t> final_pids = recordedPids("stable");
  EXPECT_EQ(final_pids.size(), 4u);
  for (pid_t pid : new_running) {
    EXPECT_NE(std::find(final_pids.begin(), final_pids.end(), pid), final_pids.end())
        << "2.0.0 replica " << pid << " was kept";
  }
  for (pid_t pid : old_left) EXPECT_TRUE(processGone(pid)) << "1.0.0 replica " << pid;
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 2.0.0", 20}}));
}

// start() is the agent's entry: the command's spec is read and checked against the command
// before anything runs. A spec for another deployment (a mixed-up or replayed command) and a
// command without one fail the step; no replica starts, no record is written.
TEST_F(ProcessDriverTest, StartFailsACommandWhoseSpecIsForAnotherDeploymentOrMissing) {
  const TestSpec s = spec("1.0.0");  // for deployment "d-1"
  // Starts a deploy for `deployment` (with this test's spec or none); its end, and no replica
  // started on the way.
  auto endOf = [&](const std::string& deployment, bool with_spec) -> std::optional<StepEnd> {
    capnp::MallocMessageBuilder message;
    auto cmd = message.initRoot<schema::StageCommand>();
    cmd.setStep(Step::DEPLOY);
    if (with_spec) coordinator::buildProcessSpec(cmd.initProcess(), s.plan, s.step);
    const StepCommand command{StageKey{deployment, "test/deploy", 1}, cmd.asReader(), {}};
    auto run = driver_->start(command, [] {});
    EXPECT_TRUE(run.ok()) << run.status().toString();
    if (!run.ok()) return std::nullopt;
    std::vector<std::string> lines;
    std::optional<StepEnd> end = waitForEnd(**run, lines, 30s);
    EXPECT_TRUE(end.has_value()) << "the step did not end";
    for (const std::string& line : lines) {
      EXPECT_EQ(line.find("started "), std::string::npos) << line;
    }
    return end;
  };
  const std::optional<StepEnd> other = endOf("d-2", true);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->outcome, Outcome::FAILED) << other->message;
  EXPECT_NE(other->message.find("bad spec: it is for deployment"), std::string::npos)
      << other->message;
  EXPECT_NE(other->message.find("d-1"), std::string::npos) << other->message;

  const std::optional<StepEnd> none = endOf("d-1", false);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->outcome, Outcome::FAILED) << none->message;
  EXPECT_NE(none->message.find("bad spec: the command has no process"), std::string::npos)
      << none->message;
  EXPECT_TRUE(serviceRecords(state_dir_).empty()) << "a service record was written";
  EXPECT_EQ(recordedVersion("candidate"), "");
  auto servers = admin_->freeServers(kBackend);
  ASSERT_TRUE(servers.ok()) << servers.status().toString();
  EXPECT_EQ(servers->size(), static_cast<size_t>(kSlots)) << "HAProxy was not touched";
}

TEST(HttpProbeTest, RefusedConnectionIsUnavailable) {
  const int port = support::freePort();
  auto reply = httpGet("http://127.0.0.1:" + std::to_string(port) + "/", 500ms);
  EXPECT_TRUE(reply.status().isUnavailable()) << reply.status().toString();
}

}  // namespace
}  // namespace flotilla::agent::testing
