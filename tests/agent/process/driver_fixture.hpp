// For the real-process tests of the process driver and its steps
// (tests/agent/process/{driver,deploy_steps,watch_steps,rolling_steps}_test.cpp): the real demo
// service as replicas, a real HAProxy in front of them (its runtime API on a stats socket), real
// traffic through it with libcurl, and a ProcessDriver on a fresh state dir.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/haproxy.hpp"
#include "agent/process/driver.hpp"
#include "common/plan.hpp"
#include "coordinator/process_spec.hpp"
#include "tests/support/haproxy.hpp"

namespace flotilla::agent::testing {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

inline constexpr char kBackend[] = "checkout";
inline constexpr int kSlots = 8;

std::string readFile(const std::string& path);

std::string trim(std::string s);

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
  void loop(int port);

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
  void loop();

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

// One HAProxy per test (tests/support/haproxy.hpp, in a fresh directory), a state
// dir beside it, and a driver on that state dir. TearDown stops every replica the test started
// and HAProxy, whatever happened.
class ProcessDriverTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Every replica the record holds, plus every one the driver said it started: SIGTERM, then
  // SIGKILL, always reaped (the test process is their parent).
  void stopReplicas();

  // The command template: one binary, its behaviour chosen by the version string.
  std::string commandTemplate() const;

  // A step's spec as the coordinator builds it from this plan (coordinator/process_spec.cpp):
  // run() sends it through the wire form and the agent's checks (agent/process/spec.cpp).
  struct TestSpec {
    common::Plan plan;
    coordinator::ProcessStepParams step;
    std::optional<std::chrono::milliseconds> start_timeout =
        std::chrono::seconds(10);  // not on the wire
  };

  TestSpec spec(const std::string& version, const std::string& previous = "") const;

  // Through the wire and the agent's checks, as a command would bring it.
  StepReport run(Step step, const TestSpec& s, ProcessDriver* driver = nullptr,
                 const std::atomic<bool>* cancel = nullptr);

  LineSink sink() {
    return [this](const std::string& line) {
      std::lock_guard lock(lines_mu_);
      lines_.push_back(line);
    };
  }

  // The figures the steps reported, in order.
  std::vector<FiguresReport> figures() {
    std::lock_guard lock(lines_mu_);
    return figures_;
  }

  bool logged(const std::string& needle) {
    std::lock_guard lock(lines_mu_);
    for (const auto& line : lines_) {
      if (line.find(needle) != std::string::npos) return true;
    }
    return false;
  }

  // The pids of the "started ... (pid N) for VERSION" lines the driver logged.
  std::set<pid_t> startedPids(const std::string& version = "");

  json record() const;
  std::vector<pid_t> recordedPids(const char* role) const;
  std::string recordedVersion(const char* role) const;

  // Gone for good: reaped by the driver, or a zombie we reap here.
  static bool processGone(pid_t pid);

  // SIGKILL is delivered asynchronously: wait until the process is a zombie (our child) or gone.
  static bool waitUntilDead(pid_t pid);

  // `n` requests through HAProxy; the answers' bodies (or "HTTP nnn" / the error) by count.
  std::map<std::string, int> sample(int n);

  // A roll step's spec: `replicas` replicas, the rolling strategy's bounds.
  TestSpec rollSpec(const std::string& version, const std::string& previous, int replicas,
                    int max_unavailable, int max_surge) const;

  // 1.0.0 serving all traffic as the stable set, as after a first rollout.
  void installStable(const std::string& version, int replicas = 2, bool traffic = true);

  // Servers HAProxy sends new requests to: ready (not draining, not in maintenance), a weight,
  // a replica's address. Declines when the stats socket does not answer.
  std::function<std::optional<int>()> haproxyServing() const;

  // Without a load balancer: replicas the record has put into service (a weight) that answer
  // "/". Declines when the record changed while the replicas were asked.
  std::function<std::optional<int>()> recordServing() const;

  // Runs a roll step and cancels it (as an agent that dies would) once round 1 is over and
  // round 2 has started its replicas and is draining old ones.
  struct CancelledRoll {
    StepReport report;
    bool round_one = false;    // round 1 ended before the cancel
    double cancel_took = 0.0;  // seconds from the cancel to the step's end
  };
  CancelledRoll cancelMidRoll(const TestSpec& roll);

  // Waits (up to `limit`) until the driver logged a line holding `needle`.
  bool waitLogged(const std::string& needle, std::chrono::milliseconds limit);

  // A process' environment, from /proc/PID/environ.
  static std::map<std::string, std::string> environmentOf(pid_t pid);

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
  int port_min_ = 0;
  int port_max_ = 0;
  std::unique_ptr<support::Haproxy> haproxy_;
  std::unique_ptr<HaproxyAdmin> admin_;
  std::unique_ptr<ProcessDriver> driver_;
  std::mutex lines_mu_;
  std::vector<std::string> lines_;
  std::vector<FiguresReport> figures_;  // guarded by lines_mu_
};

}  // namespace flotilla::agent::testing
