// The script driver: a step is a shell command run with /bin/sh -c, with the
// FLOTILLA_* variables the coordinator chose plus the cluster's environment, over the
// agent's allowlisted environment (stepEnvironment), as the --run-as user if any.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "agent/child_process.hpp"
#include "agent/stage_record.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

struct StepRequest {
  StageKey key;
  std::string step;  // build | apply | verify | rollback
  std::string command;
  std::chrono::milliseconds timeout{0};
  std::map<std::string, std::string> env;  // from the coordinator
};

class ScriptDriver {
 public:
  ScriptDriver(std::string workdir, std::map<std::string, std::string> labels,
               LaunchPolicy launch = {});
  common::StatusOr<std::unique_ptr<ChildProcess>> start(const StepRequest& request) const;

 private:
  std::string workdir_;
  std::map<std::string, std::string> labels_;
  LaunchPolicy launch_;
};

}  // namespace flotilla::agent
