// What the parts of a process step need from the world around the step: its log, the agent's
// clock, a sleep that a cancel cuts short, the status a cancelled step returns, and health
// probes of replicas. ServiceOps (service_ops.hpp) is the real one (steady clock, real sleeps,
// HTTP probes); a unit test gives its own, with a clock that jumps ahead on every pause and
// probes that answer as the test says, so the rules of a watch run in milliseconds.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/status.hpp"

namespace flotilla::agent {

// One health check of one replica.
struct Probe {
  bool ok = false;
  bool answered = false;  // an HTTP answer came back (a running service said "not healthy")
  std::string detail;     // why not
};

// Sleeps `d` in slices of at most `slice`; false as soon as `cancel` is set (the real contexts'
// pause()).
inline bool sleepUnlessCancelled(std::chrono::steady_clock::duration d,
                                 const std::atomic<bool>& cancel, std::chrono::milliseconds slice) {
  using Clock = std::chrono::steady_clock;
  const auto end = Clock::now() + d;
  while (!cancel.load()) {
    const auto now = Clock::now();
    if (now >= end) return true;
    std::this_thread::sleep_for(std::min<Clock::duration>(end - now, slice));
  }
  return false;
}

class StepContext {
 public:
  virtual ~StepContext() = default;
  virtual void say(const std::string& line) const = 0;
  virtual std::chrono::steady_clock::time_point now() const = 0;
  // Sleeps `d` in slices; false when the step was cancelled meanwhile.
  virtual bool pause(std::chrono::steady_clock::duration d) = 0;
  // Marks the step cancelled; the status for the step to return.
  virtual common::Status abort() = 0;
  // One health check of every port at once (GET `path` on loopback), in the order given.
  virtual std::vector<Probe> probe(const std::vector<int>& ports, const std::string& path,
                                   std::chrono::milliseconds timeout) = 0;
};

}  // namespace flotilla::agent
