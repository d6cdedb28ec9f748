// Test support, the fleet fixture: real coordinator, agents and CLI processes for one test.
#include "tests/support/fleet.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "tests/support/net.hpp"
#include "tests/support/wait.hpp"

#ifndef FLOTILLA_COORDINATOR_BIN
#error "FLOTILLA_COORDINATOR_BIN must be defined by CMake"
#endif
#ifndef FLOTILLA_AGENT_BIN
#error "FLOTILLA_AGENT_BIN must be defined by CMake"
#endif
#ifndef FLOTILLA_CLI_BIN
#error "FLOTILLA_CLI_BIN must be defined by CMake"
#endif

namespace flotilla::support {

namespace fs = std::filesystem;

namespace {

constexpr auto kPollEvery = 50ms;
constexpr size_t kLogTailLines = 40;

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

}  // namespace

const std::vector<FleetAgent> kUsualAgents = {
    {"staging-eu", {{"environment", "staging"}}},
    {"prod-eu-1", {{"environment", "production"}, {"region", "eu"}}},
    {"prod-eu-2", {{"environment", "production"}, {"region", "eu"}}},
    {"prod-us-1", {{"environment", "production"}, {"region", "us"}}},
};

const std::vector<std::string> kUsualClusters = {"staging-eu", "prod-eu-1", "prod-eu-2",
                                                 "prod-us-1"};

const FleetAgent& usualAgent(const std::string& cluster) {
  for (const auto& agent : kUsualAgents) {
    if (agent.cluster == cluster) return agent;
  }
  ADD_FAILURE() << cluster << " is not one of the usual agents";
  return kUsualAgents.front();
}

FleetTest::FleetTest() = default;

FleetTest::~FleetTest() {
  stopEverything();
  sweepOrphans();
}

void FleetTest::SetUp() {
  // Steps run by an agent that we SIGKILL are orphaned; as a subreaper this process inherits
  // them, so TearDown can find and stop them.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  temp_dir_ = std::make_unique<TempDir>("it");
  ASSERT_FALSE(temp_dir_->path().empty());
  dir_ = temp_dir_->path();
  fs::create_directories(dir_ + "/work");
  fs::create_directories(dir_ + "/scratch");
}

void FleetTest::TearDown() {
  stopEverything();
  sweepOrphans();
  if (temp_dir_ == nullptr || dir_.empty()) return;
  if (HasFailure() || std::getenv("FLOTILLA_KEEP_TEST_DIR") != nullptr) {
    std::cerr << "[fleet] test files and logs kept in " << dir_ << "\n";
    temp_dir_->keep();
  }
  temp_dir_.reset();
}

std::string FleetTest::serverUrl() const {
  return (coordinator_options_.tls_cert.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") +
         std::to_string(http_port_);
}

bool FleetTest::coordinatorHealthy() { return request("GET", "/healthz", "").status == 200; }

std::string FleetTest::agentAddress() const {
  return "tcp://" + coordinator_options_.agents_host + ":" + std::to_string(agent_port_);
}

// ---- Coordinator ------------------------------------------------------------------------------

void FleetTest::launchCoordinator() {
  ++coordinator_starts_;
  std::vector<std::string> argv = {FLOTILLA_COORDINATOR_BIN,
                                   "--data-dir",
                                   dir_ + "/data",
                                   "--listen-agents",
                                   agentAddress(),
                                   "--listen-http",
                                   "127.0.0.1:" + std::to_string(http_port_),
                                   "--agent-lost-after",
                                   coordinator_options_.agent_lost_after,
                                   "--heartbeat",
                                   coordinator_options_.heartbeat};
  if (coordinator_options_.insecure_agents) argv.push_back("--insecure");
  if (!coordinator_options_.tls_cert.empty()) {
    argv.insert(argv.end(), {"--tls-cert", coordinator_options_.tls_cert, "--tls-key",
                             coordinator_options_.tls_key});
  }
  argv.insert(argv.end(), coordinator_options_.extra_args.begin(),
              coordinator_options_.extra_args.end());
  coordinator_ = Process::spawn("coordinator#" + std::to_string(coordinator_starts_), argv,
                                coordinator_options_.env, coordinatorLog());
}

void FleetTest::startCoordinator(CoordinatorOptions options) {
  ASSERT_EQ(coordinator_, nullptr) << "a coordinator is already running";
  coordinator_options_ = std::move(options);
  if (admin_token_.empty()) {
    // As an operator would: the first admin token, made on the fresh data dir.
    CommandResult made =
        runCommand({FLOTILLA_COORDINATOR_BIN, "bootstrap-admin", "--data-dir", dir_ + "/data"},
                   dir_ + "/scratch", 30s);
    ASSERT_EQ(made.exit_code, 0) << "bootstrap-admin failed:\n" << made.out << made.err;
    admin_token_ = trim(made.out);
    ASSERT_FALSE(admin_token_.empty()) << "bootstrap-admin printed no token";
  }
  // Another test may take a port between freePort() and the bind: try fresh ports then.
  for (int attempt = 0; attempt < 3; ++attempt) {
    agent_port_ = freePort();
    http_port_ = freePort();
    ASSERT_TRUE(agent_port_ != 0 && http_port_ != 0 && agent_port_ != http_port_);
    launchCoordinator();
    ASSERT_NE(coordinator_, nullptr);
    bool healthy = false;
    pollUntil([&] { return !coordinator_->running() || (healthy = coordinatorHealthy()); },
              kWaitDeadline, kPollEvery);
    if (healthy) return;
    if (coordinator_->running()) break;  // up but not answering: a real failure
    std::cerr << "[fleet] coordinator exited at start (port taken?); retrying\n"
              << tailOf(coordinator_->logPath(), 5);
    retired_.push_back(std::move(coordinator_));
  }
  dumpLogs();
  FAIL() << "the coordinator did not come up on " << serverUrl();
}

void FleetTest::stopCoordinator() {
  ASSERT_NE(coordinator_, nullptr);
  int status = coordinator_->stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "coordinator did not exit cleanly on SIGTERM (wait status " << status << ")";
  retired_.push_back(std::move(coordinator_));
}

void FleetTest::killCoordinator() {
  ASSERT_NE(coordinator_, nullptr);
  coordinator_->kill();
  retired_.push_back(std::move(coordinator_));
}

void FleetTest::restartCoordinator() {
  if (coordinator_ != nullptr) stopCoordinator();
  launchCoordinator();
  ASSERT_NE(coordinator_, nullptr);
  bool up = waitUntil("the restarted coordinator to answer /healthz",
                      [&] { return !coordinator_->running() || coordinatorHealthy(); });
  ASSERT_TRUE(up);
  ASSERT_TRUE(coordinator_->running()) << "the restarted coordinator exited:\n"
                                       << tailOf(coordinator_->logPath(), 20);
}

void FleetTest::restartCoordinator(CoordinatorOptions options) {
  coordinator_options_ = std::move(options);
  restartCoordinator();
}

bool FleetTest::coordinatorRunning() { return coordinator_ != nullptr && coordinator_->running(); }

pid_t FleetTest::coordinatorPid() const { return coordinator_ ? coordinator_->pid() : -1; }

std::string FleetTest::coordinatorLog() const {
  return dir_ + "/coordinator-" + std::to_string(coordinator_starts_) + ".log";
}

// ---- Agents -----------------------------------------------------------------------------------

void FleetTest::startAgent(const std::string& cluster, const Labels& labels) {
  startAgent(cluster, labels, AgentLaunch{});
}

void FleetTest::startAgent(const std::string& cluster, const Labels& labels,
                           const AgentLaunch& launch) {
  ASSERT_NE(agent_port_, 0) << "start the coordinator first";
  agent_labels_[cluster] = labels;
  auto old = agents_.find(cluster);
  if (old != agents_.end()) {
    retired_.push_back(std::move(old->second));
    agents_.erase(old);
  }
  std::vector<std::string> argv = launch.prefix;
  argv.insert(argv.end(), {FLOTILLA_AGENT_BIN, "--cluster", cluster, "--coordinator",
                           launch.coordinator.empty() ? agentAddress() : launch.coordinator,
                           "--state-dir", agentStateDir(cluster), "--workdir", dir_ + "/work",
                           "--heartbeat", "250ms", "--stop-timeout", launch.stop_timeout});
  if (coordinator_options_.insecure_agents) {
    argv.push_back("--insecure");
  } else {
    argv.push_back("--coordinator-key");
    argv.push_back(launch.coordinator_key.empty() ? "@" + coordinatorKeyFile()
                                                  : launch.coordinator_key);
    std::string token = launch.enroll_token;
    if (token.empty() && launch.enroll && !agentEnrolled(cluster)) {
      token = enrollmentToken(cluster);
      ASSERT_FALSE(token.empty()) << "no enrollment token for " << cluster;
    }
    if (!token.empty()) {
      argv.push_back("--enroll-token");
      argv.push_back(token);
    }
  }
  for (const auto& [k, v] : labels) {
    argv.push_back("--label");
    argv.push_back(k + "=" + v);
  }
  auto process = Process::spawn("agent " + cluster, argv, launch.env, agentLog(cluster));
  ASSERT_NE(process, nullptr);
  agents_[cluster] = std::move(process);
}

void FleetTest::startAgents(const std::vector<FleetAgent>& agents, const AgentLaunch& launch) {
  std::vector<std::string> clusters;
  for (const auto& agent : agents) {
    ASSERT_NO_FATAL_FAILURE(startAgent(agent.cluster, agent.labels, launch));
    clusters.push_back(agent.cluster);
  }
  ASSERT_NO_FATAL_FAILURE(waitForAgents(clusters));
}

void FleetTest::restartAgent(const std::string& cluster, const AgentLaunch& launch) {
  auto labels = agent_labels_.find(cluster);
  ASSERT_NE(labels, agent_labels_.end()) << "agent " << cluster << " was never started";
  auto old = agents_.find(cluster);
  if (old != agents_.end()) old->second->kill();  // a no-op when it already died
  startAgent(cluster, Labels(labels->second), launch);
}

void FleetTest::killAgent(const std::string& cluster) {
  auto it = agents_.find(cluster);
  ASSERT_NE(it, agents_.end()) << "no agent " << cluster;
  it->second->kill();
  retired_.push_back(std::move(it->second));
  agents_.erase(it);
}

bool FleetTest::agentRunning(const std::string& cluster) {
  auto it = agents_.find(cluster);
  return it != agents_.end() && it->second->running();
}

pid_t FleetTest::agentPid(const std::string& cluster) {
  auto it = agents_.find(cluster);
  return it == agents_.end() ? -1 : it->second->pid();
}

std::string FleetTest::agentLog(const std::string& cluster) const {
  return dir_ + "/agent-" + cluster + ".log";
}

std::string FleetTest::agentStateDir(const std::string& cluster) const {
  return dir_ + "/agent-state/" + cluster;
}

void FleetTest::waitForAgents(const std::vector<std::string>& clusters) {
  bool connected = waitUntil("agents " + joined(clusters) + " to be connected", [&] {
    json body = get("/api/v1/agents").parsed();
    if (!body.is_object() || !body.contains("agents")) return false;
    for (const auto& want : clusters) {
      bool found = false;
      for (const auto& a : body["agents"]) {
        found |= a.value("cluster", "") == want && a.value("state", "") == "connected";
      }
      if (!found) return false;
    }
    return true;
  });
  ASSERT_TRUE(connected);
}

CoordinatorOptions FleetTest::withPolicy(const std::string& text) {
  writeFile(dir_ + "/policy.yaml", text);
  CoordinatorOptions options;
  options.extra_args = {"--policy", dir_ + "/policy.yaml"};
  return options;
}

void FleetTest::startFleet(CoordinatorOptions options) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator(std::move(options)));
  ASSERT_NO_FATAL_FAILURE(startAgents(kUsualAgents));
}

std::string FleetTest::coordinatorKeyFile() const { return dir_ + "/data/keys/coordinator.pub"; }

std::string FleetTest::coordinatorKey() { return trim(readFile(coordinatorKeyFile())); }

std::string FleetTest::enrollmentToken(const std::string& cluster, int ttl_seconds) {
  HttpResponse r =
      post("/api/v1/agents/" + cluster + "/enroll", json{{"ttl_seconds", ttl_seconds}}.dump());
  json body = r.parsed();
  EXPECT_EQ(r.status, 201) << r.body << r.error;
  if (!body.is_object() || !body.contains("token")) return "";
  return body["token"].get<std::string>();
}

bool FleetTest::agentEnrolled(const std::string& cluster) const {
  json state = json::parse(readFile(agentStateDir(cluster) + "/agent.json"), nullptr, false);
  return state.is_object() && state.contains("enrolled") && state["enrolled"].is_boolean() &&
         state["enrolled"].get<bool>();
}

// ---- CLI and API ------------------------------------------------------------------------------

CommandResult FleetTest::runCli(const std::string& server, const std::vector<std::string>& args,
                                std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {FLOTILLA_CLI_BIN, "--server", server};
  argv.insert(argv.end(), args.begin(), args.end());
  // Deployments are submitted by CI's deployer token and everything else is done as admin, so
  // that the admin may approve them (nobody approves their own submission).
  const bool submitting = !args.empty() && args[0] == "submit";
  std::map<std::string, std::string> env = {
      {"FLOTILLA_TOKEN", submitting ? deployerToken() : admin_token_}};
  if (!coordinator_options_.tls_ca.empty()) env["FLOTILLA_CA_CERT"] = coordinator_options_.tls_ca;
  CommandResult result = runCommand(argv, dir_ + "/scratch", timeout, env);
  // A transcript of every CLI run, printed with the logs when something fails.
  std::ofstream transcript(dir_ + "/cli.log", std::ios::app);
  transcript << "$ flotilla " << joined(args) << "\n"
             << result.out << result.err << "[exit " << result.exit_code << "]\n";
  return result;
}

CommandResult FleetTest::cli(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout) {
  return runCli(serverUrl(), args, timeout);
}

std::string FleetTest::writePlan(const std::string& name, const std::string& text) {
  const std::string path = dir_ + "/" + name;
  writeFile(path, replaceAll(text, "@DIR@", dir_));
  return path;
}

std::string FleetTest::submit(const std::string& plan_path) {
  CommandResult r = cli({"submit", plan_path});
  EXPECT_EQ(r.exit_code, 0) << "submit " << plan_path << " failed:\n" << r.out << r.err;
  if (r.exit_code != 0) return "";
  return trim(r.out);
}

std::string FleetTest::submitPlan(const std::string& name, const std::string& text) {
  return submit(writePlan(name, text));
}

HttpResponse FleetTest::get(const std::string& path) { return request("GET", path, admin_token_); }

HttpResponse FleetTest::post(const std::string& path, const std::string& body,
                             const std::string& content_type) {
  const bool submitting =
      path == "/api/v1/deployments" || path.rfind("/api/v1/deployments?", 0) == 0;
  return request("POST", path, submitting ? deployerToken() : admin_token_, body,
                 {{"Content-Type", content_type}});
}

const std::string& FleetTest::deployerToken() {
  // Without a coordinator (a CLI run against another server) there is nobody to ask.
  if (deployer_token_.empty() && coordinator_ != nullptr) {
    deployer_token_ = createToken("ci", "deployer");
  }
  return deployer_token_;
}

HttpResponse FleetTest::del(const std::string& path) {
  return request("DELETE", path, admin_token_);
}

HttpResponse FleetTest::request(const std::string& method, const std::string& path,
                                const std::string& token, const std::string& body,
                                const std::map<std::string, std::string>& headers) {
  std::map<std::string, std::string> all;
  if (!token.empty()) all["Authorization"] = "Bearer " + token;
  const bool with_body = method == "POST" || method == "DELETE" || method == "PUT";
  if (with_body) all["Content-Type"] = "application/json";
  for (const auto& [name, value] : headers) all[name] = value;
  return httpRequest(method, serverUrl() + path, all, with_body ? &body : nullptr,
                     coordinator_options_.tls_ca);
}

std::string FleetTest::createToken(const std::string& name, const std::string& role,
                                   const std::vector<std::string>& envs) {
  HttpResponse made =
      post("/api/v1/tokens", json{{"name", name}, {"role", role}, {"envs", envs}}.dump());
  EXPECT_EQ(made.status, 201) << "creating token " << name << ": " << made.body;
  json body = made.parsed();
  return body.is_object() && body.contains("token") && body["token"].is_string()
             ? body["token"].get<std::string>()
             : "";
}

json FleetTest::deployment(const std::string& id) {
  return get("/api/v1/deployments/" + id).parsed();
}

std::string FleetTest::stateOf(const std::string& id) {
  json d = deployment(id);
  return d.is_object() && d.contains("state") && d["state"].is_string()
             ? d["state"].get<std::string>()
             : "";
}

json FleetTest::clusterOf(const std::string& id, const std::string& cluster) {
  json d = deployment(id);
  if (!d.is_object() || !d.contains("waves")) return nullptr;
  for (const auto& w : d["waves"]) {
    for (const auto& c : w["clusters"]) {
      if (c.value("name", "") == cluster) return c;
    }
  }
  return nullptr;
}

std::string FleetTest::clusterState(const std::string& id, const std::string& cluster) {
  json c = clusterOf(id, cluster);
  return c.is_object() ? c.value("state", "") : "";
}

json FleetTest::events(const std::string& id) {
  json body = get("/api/v1/deployments/" + id + "/events").parsed();
  if (!body.is_object() || !body.contains("events")) {
    ADD_FAILURE() << "no events for " << id;
    return json::array();
  }
  return body["events"];
}

// ---- Waiting ----------------------------------------------------------------------------------

bool FleetTest::waitUntil(const std::string& what, const std::function<bool()>& done,
                          std::chrono::milliseconds deadline) {
  if (pollUntil(done, deadline, kPollEvery)) return true;
  ADD_FAILURE() << "timed out after " << deadline.count() << " ms waiting for " << what;
  dumpLogs();
  return false;
}

bool FleetTest::waitForState(const std::string& id, const std::string& state,
                             std::chrono::milliseconds deadline) {
  std::string last;
  bool ended_elsewhere = false;
  bool reached = waitUntil(
      id + " to be " + state,
      [&] {
        last = stateOf(id);
        ended_elsewhere = isFinalState(last) && last != state;
        return last == state || ended_elsewhere;
      },
      deadline);
  if (!reached && !ended_elsewhere) {
    ADD_FAILURE() << id << " was last seen " << (last.empty() ? "(no answer)" : last);
  }
  if (ended_elsewhere) {
    ADD_FAILURE() << id << " ended " << last << " instead of " << state << ":\n"
                  << deployment(id).dump(2);
    dumpLogs();
    return false;
  }
  return reached;
}

bool FleetTest::holdsFor(const std::string& what, const std::function<bool()>& holds,
                         std::chrono::milliseconds period) {
  const auto end = std::chrono::steady_clock::now() + period;
  while (std::chrono::steady_clock::now() < end) {
    if (!holds()) {
      ADD_FAILURE() << "stopped holding: " << what;
      dumpLogs();
      return false;
    }
    std::this_thread::sleep_for(kPollEvery);
  }
  return true;
}

// ---- What the steps left ----------------------------------------------------------------------

std::vector<std::string> FleetTest::stepLog(const std::string& deployment,
                                            const std::string& cluster) {
  return readLines(dir_ + "/" + deployment + "." + cluster + ".log");
}

bool FleetTest::hasStepLog(const std::string& deployment, const std::string& cluster) {
  return fileExists(dir_ + "/" + deployment + "." + cluster + ".log");
}

std::string FleetTest::versionOf(const std::string& cluster) {
  return trim(readFile(dir_ + "/" + cluster + ".version"));
}

// ---- Clean-up ---------------------------------------------------------------------------------

void FleetTest::dumpLogs() {
  std::cerr << "[fleet] test dir " << dir_ << "\n";
  auto show = [](const Process* p) {
    if (p == nullptr) return;
    std::cerr << "---- " << p->name() << " (" << p->logPath() << "), last " << kLogTailLines
              << " lines ----\n"
              << tailOf(p->logPath(), kLogTailLines);
  };
  for (const auto& p : retired_) show(p.get());
  show(coordinator_.get());
  for (const auto& [name, p] : agents_) show(p.get());
  std::cerr << "---- CLI transcript, last " << kLogTailLines << " lines ----\n"
            << tailOf(dir_ + "/cli.log", kLogTailLines) << "---- end of logs ----\n";
}

void FleetTest::stopEverything() {
  // SIGTERM to all first, so that they stop in parallel; stop() then waits for each.
  for (auto& [name, p] : agents_) {
    if (p && p->running()) ::kill(p->pid(), SIGTERM);
  }
  if (coordinator_ && coordinator_->running()) ::kill(coordinator_->pid(), SIGTERM);
  for (auto& [name, p] : agents_) {
    if (p) p->stop();
  }
  if (coordinator_) coordinator_->stop();
  for (auto& p : retired_) p->stop();
}

void FleetTest::sweepOrphans() {
  // Whatever is still our child now is a step orphaned by a killed agent (we are its subreaper):
  // kill it with its process group (steps run in their own group) until none is left.
  const pid_t self = ::getpid();
  for (int round = 0; round < 20; ++round) {
    std::vector<pid_t> children;
    for (const auto& p : allProcesses()) {
      if (p.ppid == self) children.push_back(p.pid);
    }
    if (children.empty()) return;
    for (pid_t pid : children) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
  }
}

}  // namespace flotilla::support
