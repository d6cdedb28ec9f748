// Tests for agent/process/driver.cpp and the steps: the real demo service as replicas, a real HAProxy in front
// of them (its runtime API on a stats socket), real traffic through it with libcurl.
#include "agent/process/driver.hpp"

#include <capnp/message.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/child_process.hpp"
#include "agent/haproxy.hpp"
#include "agent/process/spec.hpp"
#include "common/http_client.hpp"
#include "coordinator/process_spec.hpp"

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;
using common::httpGet;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kDemoService[] = FLOTILLA_DEMO_SERVICE;
constexpr char kHaproxyBinary[] = "/usr/sbin/haproxy";
constexpr char kBackend[] = "checkout";
constexpr int kSlots = 8;
// Replica ports: a region per test process, below the kernel's ephemeral range. A port a
// stopped replica served connections on stays in TIME_WAIT for a minute, and the driver does not
// take such a port (the demo service binds with SO_REUSEPORT, plain servers could not): the
// region holds every port the whole file uses in a minute, rolls and their rollbacks included.
constexpr int kPortBase = 20000;
constexpr int kPortsPerProcess = 200;
constexpr int kPortRegions = 60;  // 20000-31999
constexpr auto kStartDeadline = 10s;

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// HAProxy's frontend port goes into its config file: ask the kernel for a free one and let it
// go; the window in which another process could take it is tiny.
int freeTcpPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// The first free region, claimed for the life of the process with a lock file, so parallel test
// processes never start replicas on the same ports (the demo service binds with SO_REUSEPORT:
// two of them on one port would share its connections). The lock goes with the process.
int claimPortRegion() {
  static const int region = [] {
    const int first = static_cast<int>(getpid() % kPortRegions);
    for (int i = 0; i < kPortRegions; ++i) {
      const int candidate = (first + i) % kPortRegions;
      const std::string path =
          "/tmp/flotilla-process-driver-test-ports-" + std::to_string(candidate) + ".lock";
      const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
      if (fd < 0) continue;
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) return candidate;  // fd stays open: the claim
      close(fd);
    }
    return first;  // every region taken: share one, the driver skips ports in use
  }();
  return region;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

size_t appendBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// Requests through the frontend, one after the other on one keep-alive connection, until
// stopped: what a client of the service sees during a rollout.
class TrafficLoop {
 public:
  explicit TrafficLoop(int port) {
    thread_ = std::thread([this, port] { loop(port); });
  }
  ~TrafficLoop() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int failed() const {
    std::lock_guard lock(mu_);
    return failed_;
  }
  int count(const std::string& body) const {
    std::lock_guard lock(mu_);
    auto it = bodies_.find(body);
    return it == bodies_.end() ? 0 : it->second;
  }
  std::string describe() const {
    std::lock_guard lock(mu_);
    std::string out = "failed=" + std::to_string(failed_);
    for (const auto& [body, n] : bodies_) out += " '" + body + "'=" + std::to_string(n);
    for (const auto& f : first_failures_) out += "\n  " + f;
    return out;
  }

 private:
  void loop(int port) {
    CURL* curl = curl_easy_init();
    if (!curl) {
      std::lock_guard lock(mu_);
      ++failed_;
      first_failures_.push_back("curl_easy_init failed");
      return;
    }
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
    std::string body;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, appendBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    while (!stop_) {
      body.clear();
      const CURLcode rc = curl_easy_perform(curl);
      long code = 0;
      if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
      std::lock_guard lock(mu_);
      if (rc == CURLE_OK && code == 200) {
        ++bodies_[trim(body)];
        continue;
      }
      ++failed_;
      if (first_failures_.size() < 5) {
        first_failures_.push_back(rc != CURLE_OK ? curl_easy_strerror(rc)
                                                 : "HTTP " + std::to_string(code));
      }
    }
    curl_easy_cleanup(curl);
  }

  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  int failed_ = 0;
  std::map<std::string, int> bodies_;
  std::vector<std::string> first_failures_;
  std::thread thread_;
};

// Measures a count every ~20 ms on a thread of its own until stopped: the lowest and highest
// values, and every change with its time (for the failure message). A measurement may decline
// (nullopt): it is counted apart.
class Sampler {
 public:
  explicit Sampler(std::function<std::optional<int>()> measure)
      : measure_(std::move(measure)), start_(Clock::now()) {
    thread_ = std::thread([this] { loop(); });
  }
  ~Sampler() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int samples() const {
    std::lock_guard lock(mu_);
    return samples_;
  }
  int declined() const {
    std::lock_guard lock(mu_);
    return declined_;
  }
  int min() const {
    std::lock_guard lock(mu_);
    return min_;
  }
  int max() const {
    std::lock_guard lock(mu_);
    return max_;
  }
  std::string describe() const {
    std::lock_guard lock(mu_);
    std::string out = "samples=" + std::to_string(samples_) +
                      " declined=" + std::to_string(declined_) + " min=" + std::to_string(min_) +
                      " max=" + std::to_string(max_) + "; changes:";
    for (const auto& change : changes_) out += " " + change;
    return out;
  }

 private:
  void loop() {
    while (!stop_) {
      const std::optional<int> value = measure_();
      {
        std::lock_guard lock(mu_);
        if (!value) {
          ++declined_;
        } else {
          ++samples_;
          min_ = samples_ == 1 ? *value : std::min(min_, *value);
          max_ = samples_ == 1 ? *value : std::max(max_, *value);
          if (*value != last_) {
            char at[32];
            std::snprintf(at, sizeof(at),
                          "%.2fs=", std::chrono::duration<double>(Clock::now() - start_).count());
            changes_.push_back(at + std::to_string(*value));
            last_ = *value;
          }
        }
      }
      std::this_thread::sleep_for(20ms);
    }
  }

  std::function<std::optional<int>()> measure_;
  const Clock::time_point start_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  int samples_ = 0;
  int declined_ = 0;
  int min_ = -1;
  int max_ = -1;
  int last_ = -1;
  std::vector<std::string> changes_;
  std::thread thread_;
};

// One HAProxy per test (foreground, owned by PID, stats socket in a fresh directory), a state
// dir beside it, and a driver on that state dir. TearDown stops every replica the test started
// and HAProxy, whatever happened.
class ProcessDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kHaproxyBinary, X_OK), 0)
        << kHaproxyBinary << " is missing: HAProxy is a test dependency (Debian: haproxy)";
    ASSERT_EQ(access(kDemoService, X_OK), 0) << kDemoService << " is missing";
    char tmpl[] = "/tmp/flotilla-process-driver-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    state_dir_ = dir_ + "/state";
    socket_path_ = dir_ + "/admin.sock";
    haproxy_log_ = dir_ + "/haproxy.log";
    port_min_ = kPortBase + claimPortRegion() * kPortsPerProcess;
    port_max_ = port_min_ + kPortsPerProcess - 1;

    frontend_port_ = freeTcpPort();
    ASSERT_GT(frontend_port_, 0);
    const std::string config = dir_ + "/haproxy.cfg";
    {
      std::ofstream cfg(config);
      cfg << "global\n"
          << "  stats socket " << socket_path_ << " mode 600 level admin\n"
          << "defaults\n"
          << "  mode http\n"
          << "  timeout connect 1s\n"
          << "  timeout client 5s\n"
          << "  timeout server 5s\n"
          << "frontend fe\n"
          << "  bind 127.0.0.1:" << frontend_port_ << "\n"
          << "  default_backend " << kBackend << "\n"
          << "backend " << kBackend << "\n"
          << "  balance roundrobin\n"
          << "  server-template srv 1-" << kSlots << " 127.0.0.1:1 disabled\n";
      ASSERT_TRUE(cfg.good());
    }
    startHaproxy(config);
    ASSERT_GT(haproxy_pid_, 0) << "cannot start haproxy";
    admin_ = std::make_unique<HaproxyAdmin>(socket_path_, 2000ms);
    const auto deadline = Clock::now() + kStartDeadline;
    while (true) {
      auto info = admin_->command("show info");
      if (info.ok()) break;
      int status = 0;
      if (waitpid(haproxy_pid_, &status, WNOHANG) == haproxy_pid_) {
        haproxy_pid_ = -1;
        FAIL() << "haproxy exited at start-up:\n" << readFile(haproxy_log_);
      }
      ASSERT_LT(Clock::now(), deadline)
          << "haproxy's stats socket did not answer: " << info.status().toString();
      std::this_thread::sleep_for(10ms);
    }
    driver_ = std::make_unique<ProcessDriver>(state_dir_, "test");
  }

  void TearDown() override {
    stopReplicas();
    stopHaproxy();
    if (HasFailure()) {
      std::lock_guard lock(lines_mu_);
      std::cerr << "driver log:\n";
      for (const auto& line : lines_) std::cerr << "  " << line << "\n";
      std::cerr << "haproxy log:\n" << readFile(haproxy_log_) << "\n";
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // fork/exec so the child can ask to die with the test (PR_SET_PDEATHSIG): a crashed test
  // leaves no HAProxy behind. Everything is prepared before fork().
  void startHaproxy(const std::string& config) {
    std::string binary = kHaproxyBinary, f = "-f", cfg = config, db = "-db";
    char* argv[] = {binary.data(), f.data(), cfg.data(), db.data(), nullptr};
    int log_fd = open(haproxy_log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0) return;
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(null_fd, 0);
      dup2(log_fd, 1);
      dup2(log_fd, 2);
      execv(argv[0], argv);
      _exit(127);
    }
    close(log_fd);
    close(null_fd);
    haproxy_pid_ = pid;
  }

  void stopHaproxy() {
    if (haproxy_pid_ <= 0) return;
    kill(haproxy_pid_, SIGTERM);
    const auto deadline = Clock::now() + 3s;
    int status = 0;
    while (waitpid(haproxy_pid_, &status, WNOHANG) != haproxy_pid_) {
      if (Clock::now() >= deadline) {
        kill(haproxy_pid_, SIGKILL);
        waitpid(haproxy_pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    haproxy_pid_ = -1;
  }

  // Every replica the record holds, plus every one the driver said it started: SIGTERM, then
  // SIGKILL, always reaped (the test process is their parent).
  void stopReplicas() {
    std::set<pid_t> pids = startedPids();
    const json rec = record();
    for (const char* role : {"stable", "candidate"}) {
      if (!rec.contains(role) || rec[role].is_null()) continue;
      for (const json& r : rec[role]["replicas"]) pids.insert(r["pid"].get<pid_t>());
    }
    for (pid_t pid : pids) kill(pid, SIGTERM);
    const auto deadline = Clock::now() + 5s;
    std::set<pid_t> left = pids;
    while (!left.empty() && Clock::now() < deadline) {
      for (auto it = left.begin(); it != left.end();) {
        int status = 0;
        const pid_t r = waitpid(*it, &status, WNOHANG);
        it = (r == *it || (r < 0 && kill(*it, 0) != 0)) ? left.erase(it) : std::next(it);
      }
      std::this_thread::sleep_for(20ms);
    }
    for (pid_t pid : left) {
      kill(pid, SIGKILL);
      int status = 0;
      waitpid(pid, &status, 0);
    }
  }

  // The command template: one binary, its behaviour chosen by the version string.
  std::string commandTemplate() const {
    return std::string("'") + kDemoService +
           "' --port {port} --version {version}"
           " $(test {version} = 2.0.0-bad && echo --error-rate 0.2)"
           " $(test {version} = 2.0.0-sick && echo --health-fail-after 0s)"
           " $(test {version} = 2.0.0-flaky && echo --health-fail-after 1500ms)"
           " $(test {version} = 2.0.0-fading && echo --health-fail-after 800ms)";
  }

  // A step's spec as the coordinator builds it from this plan (coordinator/process_spec.cpp):
  // run() sends it through the wire form and the agent's checks (agent/process/spec.cpp).
  struct TestSpec {
    common::Plan plan;
    coordinator::ProcessStepParams step;
    std::optional<std::chrono::milliseconds> start_timeout = 10s;  // not on the wire
  };

  TestSpec spec(const std::string& version, const std::string& previous = "") const {
    TestSpec s;
    s.plan.service = "checkout";
    s.plan.version = version;
    s.plan.driver = common::DriverKind::kProcess;
    s.plan.process.command = commandTemplate();
    s.plan.process.replicas = 2;
    s.plan.process.port_min = static_cast<uint32_t>(port_min_);
    s.plan.process.port_max = static_cast<uint32_t>(port_max_);
    s.plan.process.health_path = "/health";
    s.plan.haproxy = common::HaproxyTraffic{socket_path_, kBackend};
    s.plan.health.http.path = "/health";
    s.plan.health.http.interval = 100ms;
    s.plan.health.http.timeout = 500ms;
    s.plan.health.http.failure_threshold = 3;
    s.plan.health.metrics = common::MetricsAnalysis{};  // 0.5, 2.0, 20 requests, wait
    common::Wave wave;
    wave.name = "all";
    s.plan.waves = {wave};
    s.step = {"d-1", "test", previous, 0, 100, 0ms};
    return s;
  }

  // Through the wire and the agent's checks, as a command would bring it.
  StepReport run(Step step, const TestSpec& s, ProcessDriver* driver = nullptr,
                 const std::atomic<bool>* cancel = nullptr) {
    static const std::atomic<bool> never{false};
    capnp::MallocMessageBuilder message;
    auto wire = message.initRoot<schema::ProcessSpec>();
    coordinator::buildProcessSpec(wire, s.plan, s.step);
    auto read = readSpec(step, wire.asReader(), "test");
    if (!read.ok()) return StepReport{Outcome::FAILED, read.status().message()};
    if (read->process) read->process->start_timeout = s.start_timeout;
    read->env = {{"FLOTILLA_WAVE", "all"}, {"FLOTILLA_WEIGHT", std::to_string(s.step.weight)}};
    return (driver ? driver : driver_.get())->run(step, *read, cancel ? *cancel : never, sink());
  }

  LineSink sink() {
    return [this](const std::string& line) {
      std::lock_guard lock(lines_mu_);
      lines_.push_back(line);
    };
  }

  bool logged(const std::string& needle) {
    std::lock_guard lock(lines_mu_);
    for (const auto& line : lines_) {
      if (line.find(needle) != std::string::npos) return true;
    }
    return false;
  }

  std::set<pid_t> startedPids(const std::string& version = "") {
    static const std::regex started(R"(^started \S+ \(pid (\d+)\) for (\S+)$)");
    std::set<pid_t> pids;
    std::lock_guard lock(lines_mu_);
    for (const auto& line : lines_) {
      std::smatch m;
      if (std::regex_match(line, m, started) && (version.empty() || m[2] == version)) {
        pids.insert(static_cast<pid_t>(std::stol(m[1])));
      }
    }
    return pids;
  }

  json record() const {
    const std::string text = readFile(state_dir_ + "/services/checkout.json");
    if (text.empty()) return json::object();
    return json::parse(text, nullptr, false);
  }

  std::vector<pid_t> recordedPids(const char* role) const {
    std::vector<pid_t> pids;
    const json rec = record();
    if (!rec.contains(role) || rec[role].is_null()) return pids;
    for (const json& r : rec[role]["replicas"]) pids.push_back(r["pid"].get<pid_t>());
    return pids;
  }

  std::string recordedVersion(const char* role) const {
    const json rec = record();
    if (!rec.contains(role) || rec[role].is_null()) return "";
    return rec[role]["version"].get<std::string>();
  }

  // Gone for good: reaped by the driver, or a zombie we reap here.
  static bool processGone(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return true;
    return kill(pid, 0) != 0 && errno == ESRCH;
  }

  // SIGKILL is delivered asynchronously: wait until the process is a zombie (our child) or gone.
  static bool waitUntilDead(pid_t pid) {
    const auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      const std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
      const size_t close = stat.rfind(')');
      if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] == 'Z') {
        return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  // `n` requests through HAProxy; the answers' bodies (or "HTTP nnn" / the error) by count.
  std::map<std::string, int> sample(int n) {
    std::map<std::string, int> seen;
    for (int i = 0; i < n; ++i) {
      auto reply = httpGet("http://127.0.0.1:" + std::to_string(frontend_port_) + "/", 2000ms);
      if (!reply.ok()) {
        ++seen[reply.status().message()];
      } else if (reply->status != 200) {
        ++seen["HTTP " + std::to_string(reply->status)];
      } else {
        ++seen[trim(reply->body)];
      }
    }
    return seen;
  }

  // A roll step's spec: `replicas` replicas, the rolling strategy's bounds.
  TestSpec rollSpec(const std::string& version, const std::string& previous, int replicas,
                    int max_unavailable, int max_surge) const {
    TestSpec s = spec(version, previous);
    s.plan.process.replicas = static_cast<uint32_t>(replicas);
    s.plan.strategy.kind = common::StrategyKind::kRolling;
    s.plan.strategy.max_unavailable = static_cast<uint32_t>(max_unavailable);
    s.plan.strategy.max_surge = static_cast<uint32_t>(max_surge);
    return s;
  }

  // 1.0.0 serving all traffic as the stable set, as after a first rollout.
  void installStable(const std::string& version, int replicas = 2, bool traffic = true) {
    TestSpec s = spec(version);
    s.plan.process.replicas = static_cast<uint32_t>(replicas);
    if (!traffic) s.plan.haproxy.reset();
    auto r = run(Step::DEPLOY, s);
    ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
    r = run(Step::SHIFT, withWeight(s, 100));
    ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
    r = run(Step::FINALIZE, s);
    ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
    ASSERT_EQ(recordedVersion("stable"), version);
    ASSERT_EQ(recordedPids("stable").size(), static_cast<size_t>(replicas));
  }

  // Servers HAProxy sends new requests to: ready (not draining, not in maintenance), a weight,
  // a replica's address. Declines when the stats socket does not answer.
  std::function<std::optional<int>()> haproxyServing() const {
    auto admin = std::make_shared<HaproxyAdmin>(socket_path_, 2000ms);
    return [admin]() -> std::optional<int> {
      auto servers = admin->showServers(kBackend);
      if (!servers.ok()) return std::nullopt;
      int n = 0;
      for (const ServerInfo& s : *servers) {
        if (s.port != kFreeSlotPort && s.state() == ServerState::kReady && s.weight > 0) ++n;
      }
      return n;
    };
  }

  // Without a load balancer: replicas the record has put into service (a weight) that answer
  // "/". Declines when the record changed while the replicas were asked.
  std::function<std::optional<int>()> recordServing() const {
    const std::string path = state_dir_ + "/services/checkout.json";
    return [path]() -> std::optional<int> {
      const std::string before = readFile(path);
      const json rec = json::parse(before, nullptr, false);
      if (rec.is_discarded() || !rec.is_object()) return std::nullopt;
      int n = 0;
      for (const char* role : {"stable", "candidate"}) {
        if (!rec.contains(role) || rec[role].is_null()) continue;
        for (const json& r : rec[role]["replicas"]) {
          if (r["weight"].get<int>() <= 0) continue;
          auto reply =
              httpGet("http://127.0.0.1:" + std::to_string(r["port"].get<int>()) + "/", 300ms);
          if (reply.ok() && reply->status == 200) ++n;
        }
      }
      if (readFile(path) != before) return std::nullopt;
      return n;
    };
  }

  // Waits (up to `limit`) until the driver logged a line holding `needle`.
  bool waitLogged(const std::string& needle, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      if (logged(needle)) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  // A process' environment, from /proc/PID/environ.
  static std::map<std::string, std::string> environmentOf(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    std::map<std::string, std::string> env;
    std::string entry;
    while (std::getline(in, entry, '\0')) {
      const size_t eq = entry.find('=');
      if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    return env;
  }

  static double secondsSince(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

  static TestSpec withWeight(TestSpec s, int weight) {
    s.step.weight = static_cast<uint32_t>(weight);
    return s;
  }
  static TestSpec withDuration(TestSpec s, int ms) {
    s.step.duration = std::chrono::milliseconds(ms);
    return s;
  }

  std::string dir_;
  std::string state_dir_;
  std::string socket_path_;
  std::string haproxy_log_;
  int frontend_port_ = -1;
  int port_min_ = 0;
  int port_max_ = 0;
  pid_t haproxy_pid_ = -1;
  std::unique_ptr<HaproxyAdmin> admin_;
  std::unique_ptr<ProcessDriver> driver_;
  std::mutex lines_mu_;
  std::vector<std::string> lines_;
};

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
  TrafficLoop traffic(frontend_port_);

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

TEST_F(ProcessDriverTest, ErroringCanaryFailsAnalysisAndRollbackRestoresTheStableSet) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  const std::vector<pid_t> stable_pids = recordedPids("stable");
  TrafficLoop traffic(frontend_port_);

  auto r = run(Step::DEPLOY, spec("2.0.0-bad", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  const std::vector<pid_t> bad_pids = recordedPids("candidate");
  r = run(Step::SHIFT, withWeight(spec("2.0.0-bad", "1.0.0"), 50));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::ANALYZE, withDuration(spec("2.0.0-bad", "1.0.0"), 1500));
  EXPECT_EQ(r.outcome, Outcome::FAILED) << r.message;
  EXPECT_NE(r.message.find("error rate"), std::string::npos) << r.message;

  r = run(Step::ROLLBACK, spec("2.0.0-bad", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  traffic.stop();
  EXPECT_EQ(sample(30), (std::map<std::string, int>{{"checkout 1.0.0", 30}}));
  EXPECT_EQ(recordedVersion("candidate"), "");
  EXPECT_EQ(recordedPids("stable"), stable_pids) << "the stable set is never restarted";
  for (pid_t pid : bad_pids) EXPECT_TRUE(processGone(pid)) << "bad replica " << pid;
  EXPECT_GT(traffic.count("checkout 2.0.0-bad"), 0) << traffic.describe();

  r = run(Step::ROLLBACK, spec("2.0.0-bad", "1.0.0"));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll back"), std::string::npos) << r.message;
  EXPECT_EQ(recordedPids("stable"), stable_pids);
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

TEST_F(ProcessDriverTest, HealthFailuresDuringAnalysisFailOnTheFourthInARow) {
  TestSpec s = spec("2.0.0-flaky");
  s.plan.health.metrics.reset();
  auto r = run(Step::DEPLOY, s);
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::ANALYZE, withDuration(s, 8000));
  EXPECT_EQ(r.outcome, Outcome::FAILED) << r.message;
  EXPECT_NE(r.message.find("health check failed 4 times in a row on 127.0.0.1:"), std::string::npos)
      << r.message;
  EXPECT_TRUE(logged("3 in a row")) << "the third failure is tolerated";
}

TEST_F(ProcessDriverTest, BakeWatchesHealthAndPasses) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  auto r = run(Step::BAKE, withDuration(spec("1.0.0"), 500));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("health checks"), std::string::npos) << r.message;
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

TEST_F(ProcessDriverTest, CancelDuringAnalysisAbortsQuicklyAndKeepsTheRecord) {
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0"));
  auto r = run(Step::DEPLOY, spec("2.0.0", "1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  const std::vector<pid_t> candidate = recordedPids("candidate");

  std::atomic<bool> cancel{false};
  StepReport report;
  std::thread step([&] {
    report = run(Step::ANALYZE, withDuration(spec("2.0.0", "1.0.0"), 30000), nullptr, &cancel);
  });
  std::this_thread::sleep_for(500ms);
  const auto cancelled_at = Clock::now();
  cancel = true;
  step.join();
  // The analysis window is 30 s: coming back well before it means the cancel stopped it.
  EXPECT_LT(Clock::now() - cancelled_at, 20s);
  EXPECT_EQ(report.outcome, Outcome::ABORTED) << report.message;
  EXPECT_EQ(recordedPids("candidate"), candidate);

  r = run(Step::ROLLBACK, spec("2.0.0", "1.0.0"));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_EQ(recordedVersion("candidate"), "");
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

  TrafficLoop traffic(frontend_port_);
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

// --- rolling updates

TEST_F(ProcessDriverTest, RollingUpdateKeepsAtLeastReplicasMinusMaxUnavailableServing) {
  constexpr int kReplicas = 4, kMaxUnavailable = 1, kMaxSurge = 1;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas));
  const std::vector<pid_t> old_pids = recordedPids("stable");
  const TestSpec roll = rollSpec("2.0.0", "1.0.0", kReplicas, kMaxUnavailable, kMaxSurge);

  TrafficLoop traffic(frontend_port_);
  Sampler serving(haproxyServing());
  auto start = Clock::now();
  auto r = run(Step::ROLL, roll);
  const double roll_took = secondsSince(start);
  serving.stop();
  traffic.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  std::cout << "[   TIME   ] roll 1.0.0 -> 2.0.0, 4 replicas, U=1 S=1: " << roll_took << "s; "
            << serving.describe() << "\n";
  EXPECT_EQ(serving.declined(), 0) << serving.describe();
  EXPECT_GT(serving.samples(), 50) << serving.describe();
  EXPECT_GE(serving.min(), kReplicas - kMaxUnavailable) << serving.describe();
  EXPECT_LE(serving.max(), kReplicas + kMaxSurge) << serving.describe();
  EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
  EXPECT_GT(traffic.count("checkout 1.0.0"), 0) << traffic.describe();
  EXPECT_GT(traffic.count("checkout 2.0.0"), 0) << traffic.describe();
  EXPECT_TRUE(logged("round 1: 2.0.0 1/4, 1.0.0 2/4 serving"));
  EXPECT_TRUE(logged("2.0.0 4/4, 1.0.0 0/4 serving"));

  json rec = record();
  EXPECT_EQ(recordedVersion("stable"), "2.0.0");
  EXPECT_EQ(recordedPids("stable").size(), 4u);
  EXPECT_EQ(recordedVersion("candidate"), "") << "after a roll there is no candidate set";
  EXPECT_EQ(rec["previous_version"], "1.0.0");
  EXPECT_EQ(rec["rolling"]["done"], true);
  for (pid_t pid : old_pids) EXPECT_TRUE(processGone(pid)) << "1.0.0 replica " << pid;
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 2.0.0", 20}}));

  // The new set is the stable set: finalize has nothing to do, bake watches it, a repeated roll
  // changes nothing.
  r = run(Step::FINALIZE, roll);
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("already the stable set"), std::string::npos) << r.message;
  r = run(Step::BAKE, withDuration(roll, 500));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("4 replica(s) of 2.0.0 passed"), std::string::npos) << r.message;
  const std::vector<pid_t> new_pids = recordedPids("stable");
  r = run(Step::ROLL, roll);
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll"), std::string::npos) << r.message;
  EXPECT_EQ(recordedPids("stable"), new_pids);

  // Rollback after the roll goes back the same way, within the same bounds.
  TrafficLoop back_traffic(frontend_port_);
  Sampler back(haproxyServing());
  start = Clock::now();
  r = run(Step::ROLLBACK, roll);
  const double back_took = secondsSince(start);
  back.stop();
  back_traffic.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  std::cout << "[   TIME   ] rolling rollback 2.0.0 -> 1.0.0: " << back_took << "s; "
            << back.describe() << "\n";
  EXPECT_NE(r.message.find("rolled back to 1.0.0"), std::string::npos) << r.message;
  EXPECT_GE(back.min(), kReplicas - kMaxUnavailable) << back.describe();
  EXPECT_LE(back.max(), kReplicas + kMaxSurge) << back.describe();
  EXPECT_EQ(back_traffic.failed(), 0) << back_traffic.describe();
  EXPECT_EQ(recordedVersion("stable"), "1.0.0");
  EXPECT_EQ(recordedPids("stable").size(), 4u);
  EXPECT_EQ(recordedVersion("candidate"), "");
  EXPECT_EQ(record()["previous_version"], "2.0.0");
  for (pid_t pid : new_pids) EXPECT_TRUE(processGone(pid)) << "2.0.0 replica " << pid;
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 1.0.0", 20}}));

  r = run(Step::ROLLBACK, roll);
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll back"), std::string::npos) << r.message;
  EXPECT_EQ(recordedPids("stable").size(), 4u);
}

TEST_F(ProcessDriverTest, RollingUpdateWithoutMaxUnavailableNeverDropsBelowTheReplicaCount) {
  constexpr int kReplicas = 3;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas));
  const std::vector<pid_t> old_pids = recordedPids("stable");
  TrafficLoop traffic(frontend_port_);
  Sampler serving(haproxyServing());
  const auto start = Clock::now();
  auto r = run(Step::ROLL, rollSpec("2.0.0", "1.0.0", kReplicas, 0, 1));
  const double took = secondsSince(start);
  serving.stop();
  traffic.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  std::cout << "[   TIME   ] roll 1.0.0 -> 2.0.0, 3 replicas, U=0 S=1: " << took << "s; "
            << serving.describe() << "\n";
  EXPECT_GT(serving.samples(), 50) << serving.describe();
  EXPECT_GE(serving.min(), kReplicas) << serving.describe();
  EXPECT_LE(serving.max(), kReplicas + 1) << serving.describe();
  EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
  EXPECT_TRUE(logged("round 1: 2.0.0 1/3, 1.0.0 2/3 serving"));
  EXPECT_TRUE(logged("round 3: 2.0.0 3/3, 1.0.0 0/3 serving"));
  EXPECT_EQ(recordedVersion("stable"), "2.0.0");
  EXPECT_EQ(recordedPids("stable").size(), 3u);
  for (pid_t pid : old_pids) EXPECT_TRUE(processGone(pid)) << "1.0.0 replica " << pid;
}

TEST_F(ProcessDriverTest, RollingUpdateOfAVersionFailingHealthFailsAndRollbackRestoresTheOldSet) {
  constexpr int kReplicas = 4, kMaxUnavailable = 1, kMaxSurge = 1;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas));
  // 2.0.0-fading passes its readiness check, then its /health answers 503 after 800 ms: the
  // health checks between rounds catch it while the roll is under way.
  const TestSpec roll = rollSpec("2.0.0-fading", "1.0.0", kReplicas, kMaxUnavailable, kMaxSurge);
  TrafficLoop traffic(frontend_port_);
  Sampler serving(haproxyServing());
  auto r = run(Step::ROLL, roll);
  EXPECT_EQ(r.outcome, Outcome::FAILED) << r.message;
  EXPECT_NE(r.message.find("health check failed 4 times in a row"), std::string::npos) << r.message;
  EXPECT_TRUE(logged("3 in a row")) << "the third failure is tolerated";
  const json mid = record();
  EXPECT_EQ(mid["rolling"]["done"], false) << mid.dump();
  EXPECT_FALSE(startedPids("2.0.0-fading").empty());

  const auto start = Clock::now();
  r = run(Step::ROLLBACK, roll);
  const double took = secondsSince(start);
  serving.stop();
  traffic.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  std::cout << "[   TIME   ] rolling rollback of a failed roll: " << took << "s; "
            << serving.describe() << "\n";
  EXPECT_GE(serving.min(), kReplicas - kMaxUnavailable) << serving.describe();
  EXPECT_LE(serving.max(), kReplicas + kMaxSurge) << serving.describe();
  EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
  EXPECT_GT(traffic.count("checkout 2.0.0-fading"), 0) << traffic.describe();
  EXPECT_EQ(recordedVersion("stable"), "1.0.0");
  EXPECT_EQ(recordedPids("stable").size(), 4u);
  EXPECT_EQ(recordedVersion("candidate"), "");
  for (pid_t pid : startedPids("2.0.0-fading")) {
    EXPECT_TRUE(processGone(pid)) << "2.0.0-fading replica " << pid;
  }
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 1.0.0", 20}}));

  r = run(Step::ROLLBACK, roll);
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll back"), std::string::npos) << r.message;
}

TEST_F(ProcessDriverTest, CancelMidRollAbortsWithAConsistentRecordAndRollbackRestoresTheOldSet) {
  constexpr int kReplicas = 4;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas));
  const TestSpec roll = rollSpec("2.0.0", "1.0.0", kReplicas, 1, 1);
  TrafficLoop traffic(frontend_port_);
  Sampler serving(haproxyServing());

  std::atomic<bool> cancel{false};
  StepReport report;
  std::thread step([&] { report = run(Step::ROLL, roll, nullptr, &cancel); });
  // Round 2 has started its replicas and is draining 1.0.0 ones by now.
  const bool round_one = waitLogged("round 1:", 30s);
  std::this_thread::sleep_for(400ms);
  const auto cancelled_at = Clock::now();
  cancel = true;
  step.join();
  const double cancel_took = secondsSince(cancelled_at);
  ASSERT_TRUE(round_one) << "the roll never finished its first round";
  std::cout << "[   TIME   ] cancel to kAborted mid-roll: " << cancel_took << "s\n";
  EXPECT_EQ(report.outcome, Outcome::ABORTED) << report.message;
  EXPECT_LT(cancel_took, 3.0);

  // The record says what runs: every replica it holds is alive, every 2.0.0 replica started and
  // not in it is gone.
  const json mid = record();
  EXPECT_EQ(mid["rolling"]["done"], false) << mid.dump();
  std::set<pid_t> recorded;
  for (const char* role : {"stable", "candidate"}) {
    for (pid_t pid : recordedPids(role)) {
      recorded.insert(pid);
      EXPECT_EQ(kill(pid, 0), 0) << "recorded replica " << pid << " is not running";
    }
  }
  for (pid_t pid : startedPids("2.0.0")) {
    if (!recorded.count(pid)) {
      EXPECT_TRUE(processGone(pid)) << "unrecorded replica " << pid;
    }
  }
  // Steps that move traffic by shares wait until the roll is finished or undone.
  auto r = run(Step::SHIFT, withWeight(spec("2.0.0", "1.0.0"), 100));
  EXPECT_EQ(r.outcome, Outcome::FAILED) << r.message;
  EXPECT_NE(r.message.find("rolling update from 1.0.0 to 2.0.0 is in progress"), std::string::npos)
      << r.message;

  r = run(Step::ROLLBACK, roll);
  serving.stop();
  traffic.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_GE(serving.min(), kReplicas - 1) << serving.describe();
  EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
  EXPECT_EQ(recordedVersion("stable"), "1.0.0");
  EXPECT_EQ(recordedPids("stable").size(), 4u);
  EXPECT_EQ(recordedVersion("candidate"), "");
  for (pid_t pid : startedPids("2.0.0")) EXPECT_TRUE(processGone(pid)) << "2.0.0 replica " << pid;
  EXPECT_EQ(sample(20), (std::map<std::string, int>{{"checkout 1.0.0", 20}}));
}

TEST_F(ProcessDriverTest, AgentRestartMidRollReadoptsBothVersionsAndTheRollFinishes) {
  constexpr int kReplicas = 4;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas));
  const TestSpec roll = rollSpec("2.0.0", "1.0.0", kReplicas, 1, 1);
  TrafficLoop traffic(frontend_port_);
  Sampler serving(haproxyServing());

  // The agent "dies" mid-roll: its step is cancelled half-way through round 2.
  std::atomic<bool> cancel{false};
  StepReport report;
  std::thread step([&] { report = run(Step::ROLL, roll, nullptr, &cancel); });
  const bool round_one = waitLogged("round 1:", 30s);
  std::this_thread::sleep_for(400ms);
  cancel = true;
  step.join();
  ASSERT_TRUE(round_one);
  ASSERT_EQ(report.outcome, Outcome::ABORTED) << report.message;
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

TEST_F(ProcessDriverTest, RollingUpdateWithoutTrafficConfigKeepsTheProcessBounds) {
  constexpr int kReplicas = 3;
  ASSERT_NO_FATAL_FAILURE(installStable("1.0.0", kReplicas, /*traffic=*/false));
  const std::vector<pid_t> old_pids = recordedPids("stable");
  TestSpec roll = rollSpec("2.0.0", "1.0.0", kReplicas, 1, 1);
  roll.plan.haproxy.reset();
  Sampler serving(recordServing());
  auto r = run(Step::ROLL, roll);
  serving.stop();
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  std::cout << "[   TIME   ] roll without a load balancer: " << serving.describe() << "\n";
  // The roll takes ~0.2 s; under load the sampler fits ten samples in it, not more (seen in a
  // full parallel ctest run). Enough to bound the serving count through the roll.
  EXPECT_GE(serving.samples(), 5) << serving.describe();
  EXPECT_GE(serving.min(), kReplicas - 1) << serving.describe();
  EXPECT_LE(serving.max(), kReplicas + 1) << serving.describe();
  EXPECT_TRUE(logged("no load balancer"));
  EXPECT_EQ(recordedVersion("stable"), "2.0.0");
  for (pid_t pid : old_pids) EXPECT_TRUE(processGone(pid)) << "1.0.0 replica " << pid;
  const json rec = record();  // the loop must not range over a temporary's member
  for (const json& replica : rec["stable"]["replicas"]) {
    auto reply =
        httpGet("http://127.0.0.1:" + std::to_string(replica["port"].get<int>()) + "/", 2000ms);
    ASSERT_TRUE(reply.ok()) << reply.status().toString();
    EXPECT_EQ(trim(reply->body), "checkout 2.0.0");
  }
  auto servers = admin_->freeServers(kBackend);
  ASSERT_TRUE(servers.ok());
  EXPECT_EQ(servers->size(), static_cast<size_t>(kSlots)) << "HAProxy was not touched";
}

TEST_F(ProcessDriverTest, RollFromNothingStartsTheReplicasAndRollbackHasNothingToGoBackTo) {
  auto r = run(Step::ROLL, rollSpec("1.0.0", "", 2, 1, 1));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_TRUE(logged("round 1: 1.0.0 2/2 serving"));
  EXPECT_EQ(recordedVersion("stable"), "1.0.0");
  EXPECT_EQ(sample(10), (std::map<std::string, int>{{"checkout 1.0.0", 10}}));
  const std::vector<pid_t> pids = recordedPids("stable");
  r = run(Step::ROLLBACK, rollSpec("1.0.0", "", 2, 1, 1));
  EXPECT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  EXPECT_NE(r.message.find("nothing to roll back to"), std::string::npos) << r.message;
  EXPECT_EQ(recordedPids("stable"), pids);
}

TEST_F(ProcessDriverTest, BadRollSpecsAreRefused) {
  TestSpec s = rollSpec("2.0.0", "1.0.0", 2, 0, 0);
  auto r = run(Step::ROLL, s);
  EXPECT_EQ(r.outcome, Outcome::FAILED);
  EXPECT_NE(r.message.find("must not both be 0"), std::string::npos) << r.message;
  s.plan.strategy.max_unavailable = 300;
  r = run(Step::ROLL, s);
  EXPECT_EQ(r.outcome, Outcome::FAILED);
  EXPECT_NE(r.message.find("rolling.maxUnavailable must be in 0..256"), std::string::npos)
      << r.message;
  EXPECT_TRUE(startedPids("2.0.0").empty());

  // A canary under way is finished or rolled back first.
  r = run(Step::DEPLOY, spec("1.0.0"));
  ASSERT_EQ(r.outcome, Outcome::SUCCEEDED) << r.message;
  r = run(Step::ROLL, rollSpec("2.0.0", "1.0.0", 2, 1, 1));
  EXPECT_EQ(r.outcome, Outcome::FAILED);
  EXPECT_NE(r.message.find("candidate set of 1.0.0 is running"), std::string::npos) << r.message;
  EXPECT_TRUE(startedPids("2.0.0").empty());
}

TEST(HttpProbeTest, RefusedConnectionIsUnavailable) {
  const int port = freeTcpPort();
  auto reply = httpGet("http://127.0.0.1:" + std::to_string(port) + "/", 500ms);
  EXPECT_TRUE(reply.status().isUnavailable()) << reply.status().toString();
}

}  // namespace
}  // namespace flotilla::agent
