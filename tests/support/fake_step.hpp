// A process step's surroundings for unit tests (agent/process/step_context.hpp): the clock is
// the test's and jumps ahead on every pause (a 10-minute watch runs in microseconds), lines are
// kept, and health probes answer as the test's `probes` says (real HTTP probes without one).
// Header-only: only agent tests include it.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "agent/process/health.hpp"
#include "agent/process/step_context.hpp"

namespace flotilla::support {

class FakeStep : public agent::StepContext {
 public:
  using Clock = std::chrono::steady_clock;
  // One call per round of checks: the ports, and the fake time of the round.
  using Probes =
      std::function<std::vector<agent::Probe>(const std::vector<int>& ports, Clock::time_point)>;

  void say(const std::string& line) const override { lines.push_back(line); }
  Clock::time_point now() const override { return now_; }
  bool pause(Clock::duration d) override {
    if (d > Clock::duration::zero()) now_ += d;
    slept += std::max(d, Clock::duration::zero());
    return !cancelled;
  }
  common::Status abort() override {
    aborted = true;
    return common::Status::FailedPrecondition("cancelled");
  }
  std::vector<agent::Probe> probe(const std::vector<int>& ports, const std::string& path,
                                  std::chrono::milliseconds timeout) override {
    ++probe_rounds;
    if (probes) return probes(ports, now_);
    return agent::probeAll(ports, path, timeout);
  }

  Clock::time_point start() const { return start_; }

  mutable std::vector<std::string> lines;
  Probes probes;
  bool cancelled = false;
  bool aborted = false;
  int probe_rounds = 0;
  Clock::duration slept{};

 private:
  Clock::time_point start_ = Clock::time_point{} + std::chrono::hours(1);
  Clock::time_point now_ = start_;
};

}  // namespace flotilla::support
