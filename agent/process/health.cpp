#include "agent/process/health.hpp"

#include <algorithm>
#include <future>

#include "agent/process/replica_process.hpp"
#include "common/http_client.hpp"

namespace flotilla::agent {

using common::Status;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

int HealthWatch::failing() const {
  int worst = 0;
  for (const auto& [port, f] : failures_) worst = std::max(worst, f.current());
  return worst;
}

Probe probe(int port, const std::string& path, Millis timeout) {
  auto reply = common::httpGet(url(port, path), timeout);
  if (!reply.ok()) return {false, false, reply.status().message()};
  if (reply->status != 200) return {false, true, "HTTP " + std::to_string(reply->status)};
  return {true, true, ""};
}

std::vector<Probe> probeAll(const std::vector<int>& ports, const std::string& path,
                            Millis timeout) {
  std::vector<std::future<Probe>> pending;
  pending.reserve(ports.size());
  for (int port : ports) {
    pending.push_back(std::async(std::launch::async, probe, port, path, timeout));
  }
  std::vector<Probe> out;
  for (auto& f : pending) out.push_back(f.get());
  return out;
}

HealthWatch::HealthWatch(StepContext& ops, const ReplicaSet& set, const HealthSpec& health,
                         Millis interval)
    : ops_(ops), version_(set.version), health_(health), interval_(interval) {
  for (const Replica& r : set.replicas) {
    ports_.push_back(r.port);
    failures_.emplace(r.port, ConsecutiveFailures(health.failure_threshold));
  }
}

Status HealthWatch::watch(Clock::duration duration) {
  const auto end = ops_.now() + duration;
  while (true) {
    const auto round = ops_.now();
    const std::vector<Probe> results = ops_.probe(ports_, health_.path, health_.timeout);
    for (size_t i = 0; i < ports_.size(); ++i) {
      ConsecutiveFailures& f = failures_.at(ports_[i]);
      const bool crossed = f.record(results[i].ok);
      ++checks_;
      if (results[i].ok) continue;
      if (crossed) {
        return Status::Unavailable("health check failed " + std::to_string(f.current()) +
                                   " times in a row on " + endpoint(ports_[i]) + ": " +
                                   results[i].detail);
      }
      ops_.say("health check failed on " + endpoint(ports_[i]) + " (" + version_ + ", " +
               std::to_string(f.current()) + " in a row): " + results[i].detail);
    }
    const auto next = round + interval_;
    if (next >= end) {
      if (!ops_.pause(end - ops_.now())) return ops_.abort();
      return Status::Ok();
    }
    if (!ops_.pause(next - ops_.now())) return ops_.abort();
  }
}

HealthMonitor::HealthMonitor(const HealthSpec& health, std::string version)
    : health_(health), version_(std::move(version)) {
  thread_ = std::thread([this] { loop(); });
}

HealthMonitor::~HealthMonitor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HealthMonitor::watch(int port) {
  std::lock_guard lock(mu_);
  failures_.try_emplace(port, health_.failure_threshold);
}

void HealthMonitor::forget(int port) {
  std::lock_guard lock(mu_);
  failures_.erase(port);
}

bool HealthMonitor::healthy(int port) const {
  std::lock_guard lock(mu_);
  auto it = failures_.find(port);
  return it == failures_.end() || it->second.current() == 0;
}

Status HealthMonitor::verdict(StepContext& ops) {
  std::vector<std::string> lines;
  std::optional<std::string> failure;
  {
    std::lock_guard lock(mu_);
    lines.swap(lines_);
    failure = failure_;
  }
  for (const std::string& line : lines) ops.say(line);
  if (failure) return Status::Unavailable(*failure);
  return Status::Ok();
}

void HealthMonitor::loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    const auto round = Clock::now();
    std::vector<int> ports;
    for (const auto& entry : failures_) ports.push_back(entry.first);
    if (!ports.empty()) {
      lock.unlock();
      const std::vector<Probe> results = probeAll(ports, health_.path, health_.timeout);
      lock.lock();
      for (size_t i = 0; i < ports.size(); ++i) {
        auto it = failures_.find(ports[i]);
        if (it == failures_.end()) continue;  // forgotten while the check ran
        const bool crossed = it->second.record(results[i].ok);
        if (results[i].ok || failure_) continue;
        if (crossed) {
          failure_ = "health check failed " + std::to_string(it->second.current()) +
                     " times in a row on " + endpoint(ports[i]) + " (" + version_ +
                     "): " + results[i].detail;
        } else {
          lines_.push_back("health check failed on " + endpoint(ports[i]) + " (" + version_ + ", " +
                           std::to_string(it->second.current()) +
                           " in a row): " + results[i].detail);
        }
      }
    }
    wake_.wait_until(lock, round + health_.interval, [this] { return stop_; });
  }
}

}  // namespace flotilla::agent
