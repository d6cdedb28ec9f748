// The fleet's administration commands: agents (list, enroll, revoke, remove), API tokens
// (create, list, revoke) and the audit trail (list, verify).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace flotilla::cli {

int agentsCommand(Api& api, bool as_json);
int agentsEnrollCommand(Api& api, const std::string& cluster, std::chrono::milliseconds ttl);
int agentsRevokeCommand(Api& api, const std::string& cluster);
int agentsRemoveCommand(Api& api, const std::string& cluster);

int tokensCreateCommand(Api& api, const std::string& name, const std::string& role,
                        const std::vector<std::string>& envs);
int tokensListCommand(Api& api, bool as_json);
int tokensRevokeCommand(Api& api, const std::string& name);

// `since`: "" (all), an RFC 3339 time, or a duration ago.
int auditCommand(Api& api, const std::string& since, int limit, bool as_json, bool verify);

void addAgentsCommands(CLI::App& app, Commands& commands);
void addTokensCommands(CLI::App& app, Commands& commands);
void addAuditCommand(CLI::App& app, Commands& commands);

}  // namespace flotilla::cli
