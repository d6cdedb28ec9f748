// The script driver.
#include "agent/script_driver.hpp"

namespace flotilla::agent {

using common::Status;
using common::StatusOr;

ScriptDriver::ScriptDriver(std::string workdir, std::map<std::string, std::string> labels,
                           LaunchPolicy launch)
    : workdir_(std::move(workdir)), labels_(std::move(labels)), launch_(std::move(launch)) {}

StatusOr<std::unique_ptr<ChildProcess>> ScriptDriver::start(const StepRequest& request) const {
  if (request.command.empty()) return Status::InvalidArgument("empty command");
  ChildSpec spec;
  spec.command = request.command;
  spec.workdir = workdir_;
  // stepEnvironment() keeps only FLOTILLA_* of these: the coordinator never sets PATH,
  // LD_PRELOAD and the like.
  spec.env = request.env;
  auto env = labels_.find("environment");
  spec.env["FLOTILLA_ENVIRONMENT"] = env == labels_.end() ? "" : env->second;
  return ChildProcess::spawn(spec, launch_);
}

}  // namespace flotilla::agent
