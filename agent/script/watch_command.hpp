// The plan's steps.watch, run by the script driver at each interval of a post-deploy watch tier
// (Step WATCH): one shell command through the agent's one way of starting children
// (agent/child_process.hpp), waited for up to a deadline. Its exit says whether the service is
// still good: 0 passes, anything else (a non-zero exit, a signal, the deadline) fails.
#pragma once

#include <atomic>
#include <chrono>

#include "agent/child_process.hpp"
#include "agent/driver.hpp"
#include "agent/process/step_context.hpp"

namespace flotilla::agent {

// At most this many of a run's output lines reach the stage's log (the rest are counted).
inline constexpr int kMaxWatchCommandLines = 20;

// Runs `spec` once and waits for it: at most `timeout`, less when `cancel` is set (then the
// group is killed and the probe fails as cancelled). Output lines go to `log`, escaped and
// bounded; the probe's detail is how it ended and its last line.
Probe runWatchCommand(const ChildSpec& spec, const LaunchPolicy& launch,
                      std::chrono::milliseconds timeout, const std::atomic<bool>& cancel,
                      const LineSink& log);

}  // namespace flotilla::agent
