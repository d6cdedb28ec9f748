// The script driver: a step is a shell command run with /bin/sh -c, with the FLOTILLA_*
// variables of the step over the agent's allowlisted environment (stepEnvironment), as the
// --run-as user if any, in its own process group. An abort or a timeout sends the group
// SIGTERM, then SIGKILL after the agent's --kill-grace.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "agent/child_process.hpp"
#include "agent/driver.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

class ScriptDriver : public Driver {
 public:
  ScriptDriver(std::string workdir, std::chrono::milliseconds kill_grace, LaunchPolicy launch = {});

  const char* name() const override { return "script"; }
  // A script step leaves nothing to re-adopt: one interrupted by a restart is reported unknown
  // and its leftovers killed from the stage record (the agent does that for every driver).
  common::Status recover(const LineSink&) override { return common::Status::Ok(); }
  // Refuses an empty command and a spawn that fails.
  common::StatusOr<std::unique_ptr<StepRun>> start(const StepCommand& command,
                                                   const std::function<void()>& wake) override;

 private:
  std::string workdir_;
  std::chrono::milliseconds kill_grace_;
  LaunchPolicy launch_;
};

}  // namespace flotilla::agent
