// Integration harness: process spawning and reaping, HTTP, the per-test fleet fixture.
#include "integration/harness.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#ifndef FLOTILLA_COORDINATOR_BIN
#error "FLOTILLA_COORDINATOR_BIN must be defined by CMake"
#endif
#ifndef FLOTILLA_AGENT_BIN
#error "FLOTILLA_AGENT_BIN must be defined by CMake"
#endif
#ifndef FLOTILLA_CLI_BIN
#error "FLOTILLA_CLI_BIN must be defined by CMake"
#endif

extern char** environ;

namespace flotilla::integration {

namespace fs = std::filesystem;

namespace {

constexpr auto kPollEvery = 50ms;
constexpr size_t kLogTailLines = 40;

std::string trim(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

int exitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// fork + exec with stdin from /dev/null and stdout/stderr to the given fds. The child dies with
// this process (PR_SET_PDEATHSIG), so a test killed by ctest's timeout leaves nothing behind.
pid_t forkExec(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
               int out_fd, int err_fd) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::syscall(SYS_close_range, 3U, ~0U, 0U);
    ::execve(argp[0], argp.data(), envp.data());
    ::_exit(127);
  }
  if (null_fd >= 0) ::close(null_fd);
  return pid;
}

int openLog(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    ADD_FAILURE() << "cannot open " << path << ": " << std::strerror(errno);
  }
  return fd;
}

size_t writeToString(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

bool isFinal(const std::string& state) {
  return state == "succeeded" || state == "rolled_back" || state == "failed" ||
         state == "cancelled";
}

}  // namespace

// ---- Files ----------------------------------------------------------------------------------

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

bool fileExists(const std::string& path) {
  std::error_code error;
  return fs::exists(path, error);
}

std::vector<std::string> readLines(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(readFile(path));
  for (std::string line; std::getline(in, line);) {
    if (!trim(line).empty()) lines.push_back(trim(line));
  }
  return lines;
}

std::string tailOf(const std::string& path, size_t lines) {
  std::deque<std::string> last;
  std::istringstream in(readFile(path));
  for (std::string line; std::getline(in, line);) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) out += l + "\n";
  return out;
}

std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

namespace {

struct ProcStat {
  pid_t pid = 0;
  char state = '?';
  pid_t ppid = 0;
  pid_t pgid = 0;
};

// Every process, from /proc/PID/stat: "pid (comm) state ppid pgrp ...", where comm may hold
// spaces and parentheses.
std::vector<ProcStat> allProcesses() {
  std::vector<ProcStat> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::string stat = readFile("/proc/" + std::string(entry->d_name) + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    ProcStat p;
    p.pid = static_cast<pid_t>(pid);
    long ppid = 0;
    long pgid = 0;
    rest >> p.state >> ppid >> pgid;
    p.ppid = static_cast<pid_t>(ppid);
    p.pgid = static_cast<pid_t>(pgid);
    out.push_back(p);
  }
  ::closedir(proc);
  return out;
}

}  // namespace

bool groupAlive(pid_t pgid) {
  for (const auto& p : allProcesses()) {
    if (p.pgid == pgid && p.state != 'Z') return true;
  }
  return false;
}

int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// ---- Processes ------------------------------------------------------------------------------

Process::Process(std::string name, pid_t pid, std::string log_path)
    : name_(std::move(name)), pid_(pid), log_path_(std::move(log_path)) {}

Process::~Process() { stop(); }

std::unique_ptr<Process> Process::spawn(std::string name, std::vector<std::string> argv,
                                        const std::map<std::string, std::string>& env,
                                        const std::string& log_path) {
  int log_fd = openLog(log_path);
  if (log_fd < 0) return nullptr;
  // A header line makes the log self-describing when a failure prints it.
  std::string header = "# " + joined(argv) + "\n";
  if (::write(log_fd, header.data(), header.size()) < 0) {
    ADD_FAILURE() << "cannot write " << log_path;
  }
  pid_t pid = forkExec(argv, env, log_fd, log_fd);
  ::close(log_fd);
  if (pid < 0) {
    ADD_FAILURE() << "fork failed for " << name << ": " << std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<Process>(new Process(std::move(name), pid, log_path));
}

void Process::reaped(int status) {
  reaped_ = true;
  exit_code_ = exitCodeOf(status);
}

bool Process::running() {
  if (reaped_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped(status);
    return false;
  }
  return true;
}

int Process::stop(std::chrono::milliseconds grace) {
  if (reaped_) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped(status);
      return status;
    }
    std::this_thread::sleep_for(10ms);
  }
  std::cerr << "[harness] " << name_ << " ignored SIGTERM for " << grace.count()
            << " ms; sending SIGKILL\n";
  ::kill(pid_, SIGKILL);
  if (::waitpid(pid_, &status, 0) == pid_) reaped(status);
  return status;
}

void Process::kill() {
  if (reaped_) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  if (::waitpid(pid_, &status, 0) == pid_) reaped(status);
}

CommandResult runCommand(const std::vector<std::string>& argv, const std::string& scratch_dir,
                         std::chrono::milliseconds timeout,
                         const std::map<std::string, std::string>& env) {
  static int counter = 0;
  const std::string base = scratch_dir + "/cmd-" + std::to_string(++counter);
  CommandResult result;
  int out_fd = openLog(base + ".out");
  int err_fd = openLog(base + ".err");
  if (out_fd < 0 || err_fd < 0) return result;
  pid_t pid = forkExec(argv, env, out_fd, err_fd);
  ::close(out_fd);
  ::close(err_fd);
  if (pid < 0) {
    ADD_FAILURE() << "fork failed: " << std::strerror(errno);
    return result;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    if (::waitpid(pid, &status, WNOHANG) == pid) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ADD_FAILURE() << "command timed out after " << timeout.count() << " ms: " << joined(argv);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  result.exit_code = exitCodeOf(status);
  result.out = readFile(base + ".out");
  result.err = readFile(base + ".err");
  return result;
}

// ---- HTTP -----------------------------------------------------------------------------------

json HttpResponse::parsed() const {
  json body = json::parse(this->body, nullptr, /*allow_exceptions=*/false);
  return body.is_discarded() ? json(nullptr) : body;
}

HttpResponse httpRequest(const std::string& method, const std::string& url,
                         const std::map<std::string, std::string>& headers, const std::string* body,
                         const std::string& ca_file) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  HttpResponse response;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    response.error = "curl_easy_init failed";
    return response;
  }
  curl_slist* list = nullptr;
  // libcurl waits for "100 Continue" on large bodies unless told not to.
  list = curl_slist_append(list, "Expect:");
  for (const auto& [name, value] : headers) {
    // "Name;" is libcurl's spelling of a header with an empty value.
    list = curl_slist_append(list, (value.empty() ? name + ";" : name + ": " + value).c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, writeToString);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  if (!ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str());
  if (body != nullptr) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
  }
  if (method != "GET" && method != "POST") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  } else {
    response.error = curl_easy_strerror(rc);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return response;
}

HttpResponse httpGet(const std::string& url) { return httpRequest("GET", url, {}); }

HttpResponse httpPost(const std::string& url, const std::string& body,
                      const std::string& content_type) {
  return httpRequest("POST", url, {{"Content-Type", content_type}}, &body);
}

// ---- Events ---------------------------------------------------------------------------------

namespace {
bool fieldIs(const json& event, const char* key, const std::string& want) {
  return want.empty() || (event.contains(key) && event[key] == want);
}
}  // namespace

int findEvent(const json& events, const std::string& type, const std::string& wave,
              const std::string& cluster, const std::string& step) {
  for (size_t i = 0; i < events.size(); ++i) {
    const json& e = events[i];
    if (fieldIs(e, "type", type) && fieldIs(e, "wave", wave) && fieldIs(e, "cluster", cluster) &&
        fieldIs(e, "step", step)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

std::vector<json> eventsOf(const json& events, const std::string& type,
                           const std::string& cluster) {
  std::vector<json> out;
  for (const auto& e : events) {
    if (fieldIs(e, "type", type) && fieldIs(e, "cluster", cluster)) out.push_back(e);
  }
  return out;
}

// ---- The fixture ----------------------------------------------------------------------------

FleetTest::FleetTest() = default;

FleetTest::~FleetTest() {
  stopEverything();
  sweepOrphans();
}

void FleetTest::SetUp() {
  // Steps run by an agent that we SIGKILL are orphaned; as a subreaper this process inherits
  // them, so TearDown can find and stop them.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  char pattern[] = "/tmp/flotilla-it-XXXXXX";
  char* made = ::mkdtemp(pattern);
  ASSERT_NE(made, nullptr) << "mkdtemp: " << std::strerror(errno);
  dir_ = made;
  fs::create_directories(dir_ + "/work");
  fs::create_directories(dir_ + "/scratch");
}

void FleetTest::TearDown() {
  stopEverything();
  sweepOrphans();
  if (dir_.empty()) return;
  if (HasFailure() || std::getenv("FLOTILLA_KEEP_TEST_DIR") != nullptr) {
    std::cerr << "[harness] test files and logs kept in " << dir_ << "\n";
  } else {
    std::error_code error;
    fs::remove_all(dir_, error);
  }
}

std::string FleetTest::serverUrl() const {
  return (coordinator_options_.tls_cert.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") +
         std::to_string(http_port_);
}

bool FleetTest::coordinatorHealthy() { return request("GET", "/healthz", "").status == 200; }

std::string FleetTest::agentAddress() const {
  return "tcp://" + coordinator_options_.agents_host + ":" + std::to_string(agent_port_);
}

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
  coordinator_ = Process::spawn(
      "coordinator#" + std::to_string(coordinator_starts_), argv, coordinator_options_.env,
      dir_ + "/coordinator-" + std::to_string(coordinator_starts_) + ".log");
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
    const auto deadline = std::chrono::steady_clock::now() + kWaitDeadline;
    while (std::chrono::steady_clock::now() < deadline && coordinator_->running()) {
      if (coordinatorHealthy()) return;
      std::this_thread::sleep_for(kPollEvery);
    }
    if (coordinator_->running()) break;  // up but not answering: a real failure
    std::cerr << "[harness] coordinator exited at start (port taken?); retrying\n"
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

std::string FleetTest::coordinatorLog() const {
  return dir_ + "/coordinator-" + std::to_string(coordinator_starts_) + ".log";
}

void FleetTest::startAgent(const std::string& cluster,
                           const std::map<std::string, std::string>& labels) {
  startAgent(cluster, labels, AgentLaunch{});
}

void FleetTest::restartAgent(const std::string& cluster, const AgentLaunch& launch) {
  auto labels = agent_labels_.find(cluster);
  ASSERT_NE(labels, agent_labels_.end()) << "agent " << cluster << " was never started";
  auto old = agents_.find(cluster);
  if (old != agents_.end()) old->second->kill();  // a no-op when it already died
  startAgent(cluster, std::map<std::string, std::string>(labels->second), launch);
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

void FleetTest::startAgent(const std::string& cluster,
                           const std::map<std::string, std::string>& labels,
                           const AgentLaunch& launch) {
  ASSERT_NE(agent_port_, 0) << "start the coordinator first";
  agent_labels_[cluster] = labels;
  auto old = agents_.find(cluster);
  if (old != agents_.end()) {
    retired_.push_back(std::move(old->second));
    agents_.erase(old);
  }
  std::vector<std::string> argv = launch.prefix;
  argv.insert(argv.end(),
              {FLOTILLA_AGENT_BIN, "--cluster", cluster, "--coordinator",
               launch.coordinator.empty() ? agentAddress() : launch.coordinator, "--state-dir",
               agentStateDir(cluster), "--workdir", dir_ + "/work", "--heartbeat", "250ms"});
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

std::string FleetTest::agentStateDir(const std::string& cluster) const {
  return dir_ + "/agent-state/" + cluster;
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

void FleetTest::killAgent(const std::string& cluster) {
  auto it = agents_.find(cluster);
  ASSERT_NE(it, agents_.end()) << "no agent " << cluster;
  it->second->kill();
  retired_.push_back(std::move(it->second));
  agents_.erase(it);
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

void FleetTest::startFleet(CoordinatorOptions options) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator(std::move(options)));
  ASSERT_NO_FATAL_FAILURE(startAgent("staging-eu", {{"environment", "staging"}}));
  ASSERT_NO_FATAL_FAILURE(
      startAgent("prod-eu-1", {{"environment", "production"}, {"region", "eu"}}));
  ASSERT_NO_FATAL_FAILURE(
      startAgent("prod-eu-2", {{"environment", "production"}, {"region", "eu"}}));
  ASSERT_NO_FATAL_FAILURE(
      startAgent("prod-us-1", {{"environment", "production"}, {"region", "us"}}));
  ASSERT_NO_FATAL_FAILURE(waitForAgents({"staging-eu", "prod-eu-1", "prod-eu-2", "prod-us-1"}));
}

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

json FleetTest::events(const std::string& id) {
  json body = get("/api/v1/deployments/" + id + "/events").parsed();
  if (!body.is_object() || !body.contains("events")) {
    ADD_FAILURE() << "no events for " << id;
    return json::array();
  }
  return body["events"];
}

bool FleetTest::waitUntil(const std::string& what, const std::function<bool()>& done,
                          std::chrono::milliseconds deadline) {
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= give_up) break;
    std::this_thread::sleep_for(kPollEvery);
  }
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
        ended_elsewhere = isFinal(last) && last != state;
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

void FleetTest::dumpLogs() {
  std::cerr << "[harness] test dir " << dir_ << "\n";
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

}  // namespace flotilla::integration
