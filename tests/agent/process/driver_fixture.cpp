// The process driver test fixture (see the header).
#include "tests/agent/process/driver_fixture.hpp"

#include <capnp/message.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include "agent/process/spec.hpp"
#include "common/http_client.hpp"

namespace flotilla::agent::testing {
namespace {

using namespace std::chrono_literals;
using common::httpGet;

constexpr char kDemoService[] = FLOTILLA_DEMO_SERVICE;

// Replica ports: a region per test process, below the kernel's ephemeral range. A port a
// stopped replica served connections on stays in TIME_WAIT for a minute, and the driver does not
// take such a port (the demo service binds with SO_REUSEPORT, plain servers could not): the
// region holds every port the whole binary uses in a minute, rolls and their rollbacks included.
constexpr int kPortBase = 20000;
constexpr int kPortsPerProcess = 200;
constexpr int kPortRegions = 60;  // 20000-31999
constexpr auto kStartDeadline = 10s;

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

size_t appendBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

}  // namespace

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

void TrafficLoop::loop(int port) {
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

void Sampler::loop() {
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

void ProcessDriverTest::SetUp() {
  ASSERT_EQ(access(kDemoService, X_OK), 0) << kDemoService << " is missing";
  char tmpl[] = "/tmp/flotilla-process-driver-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
  dir_ = tmpl;
  state_dir_ = dir_ + "/state";
  port_min_ = kPortBase + claimPortRegion() * kPortsPerProcess;
  port_max_ = port_min_ + kPortsPerProcess - 1;
  // No redispatch: a request HAProxy sends to a replica stopped before it was drained fails
  // where the test's clients see it.
  haproxy_ =
      support::Haproxy::start(dir_, "driver", kBackend, kSlots, support::Haproxy::Redispatch::kOff);
  ASSERT_NE(haproxy_, nullptr);
  admin_ = std::make_unique<HaproxyAdmin>(haproxy_->socketPath(), 2000ms);
  driver_ = std::make_unique<ProcessDriver>(state_dir_, "test");
}

void ProcessDriverTest::TearDown() {
  stopReplicas();
  if (haproxy_ != nullptr) haproxy_->stop();
  if (HasFailure()) {
    std::lock_guard lock(lines_mu_);
    std::cerr << "driver log:\n";
    for (const auto& line : lines_) std::cerr << "  " << line << "\n";
    if (haproxy_ != nullptr) std::cerr << "haproxy log:\n" << readFile(haproxy_->logPath()) << "\n";
  }
  haproxy_.reset();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

void ProcessDriverTest::stopReplicas() {
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

std::string ProcessDriverTest::commandTemplate() const {
  return std::string("'") + kDemoService +
         "' --port {port} --version {version}"
         " $(test {version} = 2.0.0-bad && echo --error-rate 0.2)"
         " $(test {version} = 2.0.0-sick && echo --health-fail-after 0s)"
         " $(test {version} = 2.0.0-flaky && echo --health-fail-after 1500ms)"
         " $(test {version} = 2.0.0-fading && echo --health-fail-after 800ms)"
         " $(test {version} = 2.0.0-slow && echo --latency-ms 100)";
}

ProcessDriverTest::TestSpec ProcessDriverTest::spec(const std::string& version,
                                                    const std::string& previous) const {
  TestSpec s;
  s.plan.service = "checkout";
  s.plan.version = version;
  s.plan.driver = common::DriverKind::kProcess;
  s.plan.process.command = commandTemplate();
  s.plan.process.replicas = 2;
  s.plan.process.port_min = static_cast<uint32_t>(port_min_);
  s.plan.process.port_max = static_cast<uint32_t>(port_max_);
  s.plan.process.health_path = "/health";
  s.plan.haproxy = common::HaproxyTraffic{haproxy_->socketPath(), kBackend};
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

StepReport ProcessDriverTest::run(Step step, const TestSpec& s, ProcessDriver* driver,
                                  const std::atomic<bool>* cancel) {
  static const std::atomic<bool> never{false};
  capnp::MallocMessageBuilder message;
  auto wire = message.initRoot<schema::ProcessSpec>();
  coordinator::buildProcessSpec(wire, s.plan, s.step);
  auto read = readSpec(step, wire.asReader(), "test");
  if (!read.ok()) return StepReport{Outcome::FAILED, read.status().message()};
  if (read->process) read->process->start_timeout = s.start_timeout;
  read->env = {{"FLOTILLA_WAVE", "all"}, {"FLOTILLA_WEIGHT", std::to_string(s.step.weight)}};
  auto figures = [this](const FiguresReport& f) {
    std::lock_guard lock(lines_mu_);
    figures_.push_back(f);
  };
  return (driver ? driver : driver_.get())
      ->run(step, *read, cancel ? *cancel : never, sink(), {}, figures);
}

std::set<pid_t> ProcessDriverTest::startedPids(const std::string& version) {
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

json ProcessDriverTest::record() const {
  const std::string text = readFile(state_dir_ + "/services/checkout.json");
  if (text.empty()) return json::object();
  return json::parse(text, nullptr, false);
}

std::vector<pid_t> ProcessDriverTest::recordedPids(const char* role) const {
  std::vector<pid_t> pids;
  const json rec = record();
  if (!rec.contains(role) || rec[role].is_null()) return pids;
  for (const json& r : rec[role]["replicas"]) pids.push_back(r["pid"].get<pid_t>());
  return pids;
}

std::string ProcessDriverTest::recordedVersion(const char* role) const {
  const json rec = record();
  if (!rec.contains(role) || rec[role].is_null()) return "";
  return rec[role]["version"].get<std::string>();
}

bool ProcessDriverTest::processGone(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == pid) return true;
  return kill(pid, 0) != 0 && errno == ESRCH;
}

bool ProcessDriverTest::waitUntilDead(pid_t pid) {
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

std::map<std::string, int> ProcessDriverTest::sample(int n) {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    auto reply = httpGet(haproxy_->url(), 2000ms);
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

ProcessDriverTest::TestSpec ProcessDriverTest::rollSpec(const std::string& version,
                                                        const std::string& previous, int replicas,
                                                        int max_unavailable, int max_surge) const {
  TestSpec s = spec(version, previous);
  s.plan.process.replicas = static_cast<uint32_t>(replicas);
  s.plan.strategy.kind = common::StrategyKind::kRolling;
  s.plan.strategy.max_unavailable = static_cast<uint32_t>(max_unavailable);
  s.plan.strategy.max_surge = static_cast<uint32_t>(max_surge);
  return s;
}

void ProcessDriverTest::installStable(const std::string& version, int replicas, bool traffic) {
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

std::function<std::optional<int>()> ProcessDriverTest::haproxyServing() const {
  auto admin = std::make_shared<HaproxyAdmin>(haproxy_->socketPath(), 2000ms);
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

std::function<std::optional<int>()> ProcessDriverTest::recordServing() const {
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

ProcessDriverTest::CancelledRoll ProcessDriverTest::cancelMidRoll(const TestSpec& roll) {
  CancelledRoll out;
  std::atomic<bool> cancel{false};
  std::thread step([&] { out.report = run(Step::ROLL, roll, nullptr, &cancel); });
  out.round_one = waitLogged("round 1:", 30s);
  std::this_thread::sleep_for(400ms);
  const auto cancelled_at = Clock::now();
  cancel = true;
  step.join();
  out.cancel_took = secondsSince(cancelled_at);
  return out;
}

bool ProcessDriverTest::waitLogged(const std::string& needle, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (logged(needle)) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

std::map<std::string, std::string> ProcessDriverTest::environmentOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::map<std::string, std::string> env;
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return env;
}

}  // namespace flotilla::agent::testing
