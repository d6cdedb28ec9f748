// The script driver: a step is a shell command run with /bin/sh -c, with the FLOTILLA_*
// variables of the step over the agent's allowlisted environment (stepEnvironment), as the
// --run-as user if any, in its own process group. An abort or a timeout sends the group
// SIGTERM, then SIGKILL after the agent's --kill-grace. Build, apply, verify, rollback and
// shift (a strategy's later weights: the plan's `switch`, or `apply` again) are commands;
// analyze and bake watch the service (agent/script/watch.hpp) on a thread, from the command's
// `watch` spec.
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
  // `cluster`: for {cluster} in a watch's URL and queries when its spec names none.
  ScriptDriver(std::string workdir, std::chrono::milliseconds kill_grace, LaunchPolicy launch = {},
               std::string cluster = "");

  const char* name() const override { return "script"; }
  // A script step leaves nothing to re-adopt: one interrupted by a restart is reported unknown
  // and its leftovers killed from the stage record (the agent does that for every driver).
  common::Status recover(const LineSink&) override { return common::Status::Ok(); }
  // Refuses an empty command, a process-driver step and a spawn that fails. A watch with a bad
  // spec fails (it is not refused: the coordinator sent it, and retrying will not mend it).
  common::StatusOr<std::unique_ptr<StepRun>> start(const StepCommand& command,
                                                   const std::function<void()>& wake) override;

 private:
  common::StatusOr<std::unique_ptr<StepRun>> startWatch(const StepCommand& command,
                                                        const std::function<void()>& wake);

  std::string workdir_;
  std::chrono::milliseconds kill_grace_;
  LaunchPolicy launch_;
  std::string cluster_;
};

}  // namespace flotilla::agent
