// Releases: `flotilla checks report` (what CI says about a service + version: tests passed,
// coverage 84.2, ...) and `flotilla release show` (its checklist against each environment of
// the policy, with ✓ and ✗).
#pragma once

#include <optional>
#include <string>

#include "cli/commands.hpp"

namespace flotilla::cli {

struct CheckReportArgs {
  std::string service;
  std::string version;
  std::string name;
  bool passed = false;
  std::optional<double> value;
  std::string url;
};

int checksReportCommand(Api& api, const CheckReportArgs& args);
int releaseShowCommand(Api& api, const std::string& service, const std::string& version,
                       bool as_json);

void addReleaseCommands(CLI::App& app, Commands& commands);

}  // namespace flotilla::cli
