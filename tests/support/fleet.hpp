// Test support, the fleet fixture: a real coordinator, agents and CLI processes for one test, on
// its own temp dir and free loopback ports. Everything it started is stopped by PID in TearDown
// (and again in the destructor, should TearDown not run), whatever the test's outcome.
//
// dir()/                     the test's temp dir (kept when the test fails)
//   data/                    the coordinator's data dir (data/keys/coordinator.pub)
//   agent-state/<cluster>/   each agent's state dir
//   work/                    the agents' workdir
//   scratch/                 output of the commands the test ran
//   coordinator-<n>.log      the n-th coordinator start's log
//   agent-<cluster>.log      the cluster's agent's log (every start appends)
//   cli.log                  a transcript of every CLI run
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/events.hpp"
#include "tests/support/files.hpp"
#include "tests/support/http.hpp"
#include "tests/support/process.hpp"

namespace flotilla::support {

using namespace std::chrono_literals;

// Generous: the CI machine has 2 cores and runs two of these tests at once.
inline constexpr std::chrono::milliseconds kWaitDeadline = 30s;

using Labels = std::map<std::string, std::string>;

// One agent of a fleet: its cluster and labels.
struct FleetAgent {
  std::string cluster;
  Labels labels;
};

// The usual four agents (startFleet):
//   staging-eu [environment=staging]
//   prod-eu-1, prod-eu-2 [environment=production, region=eu]
//   prod-us-1 [environment=production, region=us]
extern const std::vector<FleetAgent> kUsualAgents;
// The names of the usual four, in that order.
extern const std::vector<std::string> kUsualClusters;
// One of the usual four, by cluster name.
const FleetAgent& usualAgent(const std::string& cluster);

struct CoordinatorOptions {
  std::string agent_lost_after = "10s";
  std::string heartbeat = "250ms";
  // Added to the coordinator's environment (e.g. FLOTILLA_FAILPOINTS).
  std::map<std::string, std::string> env;
  // Where it listens for agents: loopback, or the test's own veth address for agents in a
  // network namespace.
  std::string agents_host = "127.0.0.1";
  std::vector<std::string> extra_args;  // appended to its command line
  // --insecure on the coordinator and every agent (NULL mechanism, no enrollment): only for
  // tests that put a relay between them, which CurveZMQ exists to make impossible.
  bool insecure_agents = false;
  // HTTPS: the coordinator's --tls-cert/--tls-key, and the CA file every client of the fixture
  // (its requests, the CLI through FLOTILLA_CA_CERT) trusts. Empty: plain HTTP.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
};

// How to start one agent, beyond its cluster and labels.
struct AgentLaunch {
  std::map<std::string, std::string> env;  // added to its environment (e.g. FLOTILLA_FAILPOINTS)
  std::string coordinator;                 // address to connect to; "" = agentAddress()
  std::vector<std::string> prefix;         // run through this, e.g. {"ip", "netns", "exec", NS}
  // The agent channel's secure path, as an operator sets it up: the coordinator's key pinned
  // (`show-key`), and, until the agent is enrolled, a fresh one-time token from
  // `POST /api/v1/agents/CLUSTER/enroll`. Tests of the refusals set these themselves.
  std::string coordinator_key;  // "" = the test coordinator's own
  bool enroll = true;           // get and pass a token while the state dir is not enrolled
  std::string enroll_token;     // a given token instead of a fresh one
  // --stop-timeout: how long SIGTERM lets running steps finish. Tests stop agents at once
  // (teardown with steps still running); integration/agent_drain_test sets its own.
  std::string stop_timeout = "0s";
};

class FleetTest : public ::testing::Test {
 protected:
  FleetTest();
  ~FleetTest() override;
  void SetUp() override;
  void TearDown() override;

  const std::string& dir() const { return dir_; }
  std::string serverUrl() const;
  std::string agentAddress() const;

  // Coordinator on this test's data dir and ports; waits for /healthz.
  void startCoordinator(CoordinatorOptions options = {});
  // SIGTERM and wait for it to exit.
  void stopCoordinator();
  // SIGKILL (a crash).
  void killCoordinator();
  // Starts it again on the same data dir and ports (and options); waits for /healthz.
  void restartCoordinator();
  // The same with new options (e.g. the failpoint that crashed it turned off).
  void restartCoordinator(CoordinatorOptions options);
  // False once the coordinator exited (a crash point fired); it is reaped then.
  bool coordinatorRunning();
  // The running coordinator's pid (-1 when none), to send it a signal.
  pid_t coordinatorPid() const;
  // The current (or last) coordinator's log file.
  std::string coordinatorLog() const;

  void startAgent(const std::string& cluster, const Labels& labels);
  void startAgent(const std::string& cluster, const Labels& labels, const AgentLaunch& launch);
  // Starts each agent, then waits until all of them are connected.
  void startAgents(const std::vector<FleetAgent>& agents, const AgentLaunch& launch = {});
  // Starts the cluster's agent again with the labels it had, on the same state dir.
  void restartAgent(const std::string& cluster, const AgentLaunch& launch = {});
  void killAgent(const std::string& cluster);
  // False once the cluster's agent exited (a crash point fired); it is reaped then.
  bool agentRunning(const std::string& cluster);
  pid_t agentPid(const std::string& cluster);
  // The log file of the cluster's current (or last) agent.
  std::string agentLog(const std::string& cluster) const;
  // Waits until /api/v1/agents shows every named cluster "connected".
  void waitForAgents(const std::vector<std::string>& clusters);
  // The coordinator and the usual four agents (kUsualAgents), connected.
  void startFleet(CoordinatorOptions options = {});
  // Writes `text` to dir()/policy.yaml; options that start the coordinator with it (--policy).
  CoordinatorOptions withPolicy(const std::string& text);

  // `flotilla --server SERVER args...`.
  CommandResult runCli(const std::string& server, const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout = 60s);
  // `flotilla --server URL args...` against this test's coordinator.
  CommandResult cli(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 60s);
  // Writes a plan (every "@DIR@" replaced by dir()) to dir()/name and returns its path.
  std::string writePlan(const std::string& name, const std::string& text);
  // Submits with the CLI; returns the id ("" and a test failure when refused).
  std::string submit(const std::string& plan_path);
  // writePlan, then submit.
  std::string submitPlan(const std::string& name, const std::string& text);

  // The first admin API token, made by `flotilla-coordinator bootstrap-admin` before the
  // coordinator's first start. get(), post(), del() and cli() send it.
  const std::string& adminToken() const { return admin_token_; }
  // A deployer token for every environment ("ci"), made on first use: what the fixture submits
  // deployments with (submit(), cli({"submit", ...}), post("/api/v1/deployments")).
  const std::string& deployerToken();
  HttpResponse get(const std::string& path);
  HttpResponse post(const std::string& path, const std::string& body,
                    const std::string& content_type = "application/json");
  HttpResponse del(const std::string& path);
  // `method` on this test's coordinator with `token` ("" = no Authorization header) and extra
  // headers; POST and DELETE send `body` as application/json unless headers say otherwise.
  HttpResponse request(const std::string& method, const std::string& path, const std::string& token,
                       const std::string& body = "",
                       const std::map<std::string, std::string>& headers = {});
  // Creates an API token through the API (as admin) and returns its secret.
  std::string createToken(const std::string& name, const std::string& role,
                          const std::vector<std::string>& envs = {});
  json deployment(const std::string& id);
  std::string stateOf(const std::string& id);
  // The entry of `cluster` in deployment `id`'s waves (null when not found), and its state.
  json clusterOf(const std::string& id, const std::string& cluster);
  std::string clusterState(const std::string& id, const std::string& cluster);
  json events(const std::string& id);

  // Polls `done` until it holds; on timeout records a failure naming `what`, prints the
  // processes' log tails, and returns false.
  bool waitUntil(const std::string& what, const std::function<bool()>& done,
                 std::chrono::milliseconds deadline = kWaitDeadline);
  // Waits for deployment `id` to reach `state`; gives up early when it ends in another state.
  bool waitForState(const std::string& id, const std::string& state,
                    std::chrono::milliseconds deadline = kWaitDeadline);
  // Polls `holds` for `period`; records a failure naming `what` as soon as it does not hold.
  bool holdsFor(const std::string& what, const std::function<bool()>& holds,
                std::chrono::milliseconds period);

  // What a plan's steps wrote (plans.hpp's logStep): dir()/<deployment>.<cluster>.log, one step
  // name a line.
  std::vector<std::string> stepLog(const std::string& deployment, const std::string& cluster);
  bool hasStepLog(const std::string& deployment, const std::string& cluster);
  // dir()/<cluster>.version (plans.hpp's kRecordVersion), trimmed ("" when missing).
  std::string versionOf(const std::string& cluster);

  void dumpLogs();

  // The coordinator's CURVE public key (`flotilla-coordinator show-key`), and where it is kept.
  std::string coordinatorKey();
  std::string coordinatorKeyFile() const;
  // A one-time enrollment token for `cluster` from the API (as admin).
  std::string enrollmentToken(const std::string& cluster, int ttl_seconds = 3600);
  // Whether the agent's state dir records a successful enrollment.
  bool agentEnrolled(const std::string& cluster) const;
  std::string agentStateDir(const std::string& cluster) const;

 private:
  void launchCoordinator();
  bool coordinatorHealthy();
  void stopEverything();
  void sweepOrphans();

  std::unique_ptr<TempDir> temp_dir_;
  std::string dir_;
  std::string admin_token_;
  std::string deployer_token_;
  int agent_port_ = 0;
  int http_port_ = 0;
  CoordinatorOptions coordinator_options_;
  int coordinator_starts_ = 0;
  std::unique_ptr<Process> coordinator_;
  std::vector<std::unique_ptr<Process>> retired_;  // earlier coordinators and killed agents
  std::map<std::string, std::unique_ptr<Process>> agents_;
  std::map<std::string, Labels> agent_labels_;
};

}  // namespace flotilla::support
