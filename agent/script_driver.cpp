// The script driver.
#include "agent/script_driver.hpp"

namespace flotilla::agent {

using common::Status;
using common::StatusOr;

ScriptDriver::ScriptDriver(std::string workdir, std::map<std::string, std::string> labels)
    : workdir_(std::move(workdir)), labels_(std::move(labels)) {}

StatusOr<std::unique_ptr<ChildProcess>> ScriptDriver::start(const StepRequest& request) const {
  if (request.command.empty()) return Status::InvalidArgument("empty command");
  ChildSpec spec;
  spec.command = request.command;
  spec.workdir = workdir_;
  for (const auto& [k, v] : request.env) {
    // The coordinator may only set our own namespace of variables, never
    // PATH, LD_PRELOAD and the like.
    if (k.rfind("FLOTILLA_", 0) == 0) spec.env[k] = v;
  }
  auto env = labels_.find("environment");
  spec.env["FLOTILLA_ENVIRONMENT"] = env == labels_.end() ? "" : env->second;
  return ChildProcess::spawn(spec);
}

}  // namespace flotilla::agent
