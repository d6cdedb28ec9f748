// A step that runs on a thread of its own (it waits on health checks, timers and queries): the
// process driver's steps and the script driver's watches. The agent's loop collects what the
// step says through it; a stop() sets the flag the step looks at between its waits.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/driver.hpp"

namespace flotilla::agent {

// How a threaded step ended.
struct StepReport {
  Outcome outcome = Outcome::FAILED;  // kSucceeded, kFailed (verdict or error), kAborted
  std::string message;                // the reason, with measured values and thresholds
};

// The step's body: runs to its end, looks at `cancel` between waits, says what it does
// through `log`, raises alerts through `alerts` and reports each analysis window's figures
// through `figures` (all from its own thread).
using ThreadJob = std::function<StepReport(const std::atomic<bool>& cancel, const LineSink& log,
                                           const AlertSink& alerts, const FiguresSink& figures)>;

class ThreadRun : public StepRun {
 public:
  // Starts `job` at once; `wake` wakes the agent's loop when the step has news.
  ThreadRun(ThreadJob job, std::function<void()> wake);
  ~ThreadRun() override;  // cancels and joins

  void pollFds(std::vector<int>&) const override {}  // wakes the loop itself
  void collect(std::vector<std::string>& lines, std::vector<AlertReport>& alerts,
               std::vector<FiguresReport>& figures) override;
  void stop(Clock::time_point) override { cancel_ = true; }
  std::optional<StepEnd> poll(Clock::time_point) override;

 private:
  std::function<void()> wake_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::vector<std::string> lines_;      // guarded by mu_
  std::vector<AlertReport> alerts_;     // guarded by mu_
  std::vector<FiguresReport> figures_;  // guarded by mu_
  StepReport report_;                   // written before done_ is set
  std::thread thread_;                  // last: starts once everything above exists
};

}  // namespace flotilla::agent
