// Integration harness: real coordinator, agent and CLI processes in a per-test temp dir.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace flotilla::integration {

using namespace std::chrono_literals;
using nlohmann::json;

// Generous: the CI machine has 2 cores and runs two of these tests at once.
inline constexpr std::chrono::milliseconds kWaitDeadline = 30s;

// ---- Files ----------------------------------------------------------------------------------

std::string readFile(const std::string& path);  // "" when missing
void writeFile(const std::string& path, const std::string& text);
bool fileExists(const std::string& path);
// Non-empty lines of a file; empty when the file is missing.
std::vector<std::string> readLines(const std::string& path);
std::string tailOf(const std::string& path, size_t lines);
// Replaces every `from` in `text` with `to`.
std::string replaceAll(std::string text, const std::string& from, const std::string& to);

// Whether any process of process group `pgid` still runs (zombies do not count).
bool groupAlive(pid_t pgid);

// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close).
int freePort();

// ---- Processes ------------------------------------------------------------------------------

// A child process whose stdout and stderr go to a log file. Stopped and reaped on destruction.
class Process {
 public:
  // argv[0] is the executable path; `env` is added to (and overrides) this process's environment.
  static std::unique_ptr<Process> spawn(std::string name, std::vector<std::string> argv,
                                        const std::map<std::string, std::string>& env,
                                        const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  const std::string& name() const { return name_; }
  const std::string& logPath() const { return log_path_; }
  pid_t pid() const { return pid_; }
  // False once the process exited (it is reaped then).
  bool running();
  // SIGTERM, up to `grace` for it to exit, then SIGKILL; reaps. Returns the wait status, or -1
  // when it was already reaped.
  int stop(std::chrono::milliseconds grace = 10s);
  // SIGKILL and reap.
  void kill();
  // Exit code once exited (128+signal for a signal), or -1 while running.
  int exitCode() const { return exit_code_; }

 private:
  Process(std::string name, pid_t pid, std::string log_path);
  void reaped(int status);

  std::string name_;
  pid_t pid_;
  std::string log_path_;
  bool reaped_ = false;
  int exit_code_ = -1;
};

struct CommandResult {
  int exit_code = -1;  // 128+signal when killed (also on timeout)
  std::string out;
  std::string err;
};

// Runs argv to completion (killed after `timeout`), capturing exit code, stdout and stderr.
// `env` is added to (and overrides) this process's environment.
CommandResult runCommand(const std::vector<std::string>& argv, const std::string& scratch_dir,
                         std::chrono::milliseconds timeout,
                         const std::map<std::string, std::string>& env = {});

// ---- HTTP -----------------------------------------------------------------------------------

struct HttpResponse {
  long status = 0;  // 0: no answer (error says why)
  std::string body;
  std::string error;
  json parsed() const;  // null when the body is not JSON
};

HttpResponse httpGet(const std::string& url);
HttpResponse httpPost(const std::string& url, const std::string& body,
                      const std::string& content_type = "application/json");
// Any method, with these headers (e.g. {"Authorization", "Bearer ..."}, {"Host", ...}); `body`
// null: none is sent.
HttpResponse httpRequest(const std::string& method, const std::string& url,
                         const std::map<std::string, std::string>& headers,
                         const std::string* body = nullptr, const std::string& ca_file = "");

// ---- Events ---------------------------------------------------------------------------------

// Position (index) of the first event matching every given non-empty field, or -1.
int findEvent(const json& events, const std::string& type, const std::string& wave = "",
              const std::string& cluster = "", const std::string& step = "");
// Every event of `type` (optionally for one cluster), in order.
std::vector<json> eventsOf(const json& events, const std::string& type,
                           const std::string& cluster = "");

// ---- The fixture ----------------------------------------------------------------------------

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
  // HTTPS: the coordinator's --tls-cert/--tls-key, and the CA file every client of the harness
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
};

// Each test gets a temp dir, free ports and its own processes; everything it started is stopped
// in TearDown (and again in the destructor, should TearDown not run).
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
  // The current (or last) coordinator's log file.
  std::string coordinatorLog() const;

  void startAgent(const std::string& cluster, const std::map<std::string, std::string>& labels);
  void startAgent(const std::string& cluster, const std::map<std::string, std::string>& labels,
                  const AgentLaunch& launch);
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
  // The coordinator and the usual four agents, connected:
  //   staging-eu [environment=staging]
  //   prod-eu-1, prod-eu-2 [environment=production, region=eu]
  //   prod-us-1 [environment=production, region=us]
  void startFleet(CoordinatorOptions options = {});

  // `flotilla --server SERVER args...`.
  CommandResult runCli(const std::string& server, const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout = 60s);
  // `flotilla --server URL args...` against this test's coordinator.
  CommandResult cli(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 60s);
  // Writes a plan (every "@DIR@" replaced by dir()) to dir()/name and returns its path.
  std::string writePlan(const std::string& name, const std::string& text);
  // Submits with the CLI; returns the id ("" and a test failure when refused).
  std::string submit(const std::string& plan_path);

  // The first admin API token, made by `flotilla-coordinator bootstrap-admin` before the
  // coordinator's first start. get(), post(), del() and cli() send it.
  const std::string& adminToken() const { return admin_token_; }
  // A deployer token for every environment ("ci"), made on first use: what the harness submits
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

  // What a plan's steps wrote: dir()/<deployment>.<cluster>.log, one step name a line.
  std::vector<std::string> stepLog(const std::string& deployment, const std::string& cluster);
  bool hasStepLog(const std::string& deployment, const std::string& cluster);
  // dir()/<cluster>.version, trimmed ("" when missing).
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
  std::map<std::string, std::map<std::string, std::string>> agent_labels_;
  int commands_ = 0;
};

}  // namespace flotilla::integration
