// How the agent runs a step, whatever runs it. One interface, one implementation per driver:
// agent/script/driver (shell commands: build, apply, verify, rollback, shift; analyze and bake
// watch health and Prometheus) and
// agent/process/driver (the service's replicas as local processes behind HAProxy). A future
// `kubernetes` driver is one more class.
//
// The agent picks the driver once per command, from the command itself (a StageCommand with a
// ProcessSpec belongs to the process driver, rollbacks included), then only talks to the
// StepRun it got back: it collects output, alerts and analysis figures, stops it on an abort or a
// timeout, and turns its end into the stage's result. What is common to every step (the durable
// stage record, exactly-once, timeouts, output limits, results) stays in the agent.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/stage_record.hpp"
#include "common/analysis_figures.hpp"
#include "common/status.hpp"
#include "common/steps.hpp"
#include "flotilla.capnp.h"

namespace flotilla::agent {

// Output lines as a step goes (thread-safe: a process step calls it from its own thread).
using LineSink = std::function<void(const std::string& line)>;

// A crossed alert threshold (the spec's "alerts"), raised once per rule and step.
struct AlertReport {
  std::string rule;  // "error_rate", "latency_p95", "cpu", "memory"
  double value = 0;
  double threshold = 0;
  double baseline = 0;  // 0 when the rule has none
  std::string version;  // the version measured
  std::string message;
};
using AlertSink = std::function<void(const AlertReport& alert)>;

// One analysis window's (or bake slice's) figures, whatever its verdict: the measured sets, the
// thresholds in force, the verdict and the health streak (the fields: common/analysis_figures.hpp;
// leave strategy_step alone, the coordinator sets it). Report at most one per window; the agent
// checks them with common::checkFigures before they leave (a non-finite number is not sent).
// Thread-safe like the AlertSink.
using FiguresReport = common::AnalysisFigures;
using FiguresSink = std::function<void(const FiguresReport& figures)>;

// How a step ended, as its driver saw it. A step that was stopped (stop()) and did not finish
// anyway ends ABORTED; the agent then says whether that was an abort or a timeout.
struct StepEnd {
  Outcome outcome = Outcome::FAILED;  // SUCCEEDED, FAILED or ABORTED
  int exit_code = 1;
  std::string message;
};

// One step under way.
class StepRun {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~StepRun() = default;
  // Descriptors that become readable when the run has news (output, its end). A run without
  // any wakes the agent's loop itself (the `wake` it was started with).
  virtual void pollFds(std::vector<int>& fds) const = 0;
  // Moves the output lines, alerts and figures that came since the last call into the vectors.
  virtual void collect(std::vector<std::string>& lines, std::vector<AlertReport>& alerts,
                       std::vector<FiguresReport>& figures) = 0;
  // An abort or a timeout: stop as soon as it safely can. Called at most once.
  virtual void stop(Clock::time_point now) = 0;
  // The end, once the step is over (a last collect() then takes what it said last); nullopt
  // while it runs. Also where a stopped step is pushed harder (SIGKILL after the grace).
  virtual std::optional<StepEnd> poll(Clock::time_point now) = 0;
  // The process group the step runs in and its leader's start time, for the stage record, so
  // an agent restarted after a crash can stop what the step left running (0: nothing to stop).
  virtual pid_t group() const { return 0; }
  virtual uint64_t groupStartTicks() const { return 0; }
};

// What a driver is asked to run: the wire command (valid during start() only) and the
// variables of the step (the coordinator's FLOTILLA_* and the agent's FLOTILLA_ENVIRONMENT).
struct StepCommand {
  StageKey key;
  schema::StageCommand::Reader wire;
  std::map<std::string, std::string> env;
};

class Driver {
 public:
  virtual ~Driver() = default;
  virtual const char* name() const = 0;
  // Re-adopts what an agent before this one left running. Once, at start, before any step.
  virtual common::Status recover(const LineSink& log) = 0;
  // Starts one step (a forward step or a rollback). An error is a refusal: nothing ran.
  // `wake` wakes the agent's loop; a run with no descriptors calls it when it has news.
  virtual common::StatusOr<std::unique_ptr<StepRun>> start(const StepCommand& command,
                                                           const std::function<void()>& wake) = 0;
};

// A run that ended before it began (a bad spec): ends at the first poll with `end`.
class EndedRun : public StepRun {
 public:
  // The step failed before it began: `why` is its message and its one output line.
  static std::unique_ptr<StepRun> failed(common::Step step, const std::string& why) {
    return std::make_unique<EndedRun>(
        StepEnd{Outcome::FAILED, 1, why},
        std::vector<std::string>{std::string(common::stepName(step)) + " failed: " + why});
  }

  EndedRun(StepEnd end, std::vector<std::string> lines)
      : end_(std::move(end)), lines_(std::move(lines)) {}
  void pollFds(std::vector<int>&) const override {}
  void collect(std::vector<std::string>& lines, std::vector<AlertReport>&,
               std::vector<FiguresReport>&) override {
    for (auto& l : lines_) lines.push_back(std::move(l));
    lines_.clear();
  }
  void stop(Clock::time_point) override {}
  std::optional<StepEnd> poll(Clock::time_point) override { return end_; }

 private:
  StepEnd end_;
  std::vector<std::string> lines_;
};

}  // namespace flotilla::agent
