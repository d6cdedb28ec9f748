// The policy commands: `flotilla policy` shows the policy the coordinator enforces (its
// environments, their deployers, approvals, checks, promotion and watch, the file's sha256);
// `flotilla policy reload` (admin) makes it read the file again.
#pragma once

#include "cli/commands.hpp"

namespace flotilla::cli {

int policyShowCommand(Api& api, bool as_json);
int policyReloadCommand(Api& api);

void addPolicyCommands(CLI::App& app, Commands& commands);

}  // namespace flotilla::cli
