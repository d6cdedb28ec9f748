// The deployment commands: submit, status, approve, and the steering actions (rollback, pause,
// resume, cancel). Each prints its result and returns the exit code; failures throw CliError.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace flotilla::cli {

// The plan file's text; CliError (exit 2) naming the file when it cannot be read.
std::string readPlanFile(const std::string& file);
// "application/json" for *.json, else "application/yaml" (the plan's native format).
std::string planContentType(const std::string& file);

struct SubmitOptions {
  bool dry_run = false;    // POST ...?dry_run=true: resolve and print, store nothing
  bool as_json = false;    // the coordinator's JSON instead of text
  bool queue = true;       // false: refuse while a deployment of the service is in flight
  bool supersede = false;  // roll the one in flight back first
  // The release's description for the deployment log: a changelog file and a release-notes
  // link. With either, the plan goes in the submission form (cli/log.hpp).
  std::string changes_file{};
  std::string notes_url{};
  // --hotfix --reason TEXT: ?hotfix=true&hotfix_reason=TEXT (implies supersede).
  bool hotfix = false;
  std::string hotfix_reason{};
};
int submitCommand(Api& api, const std::string& file, const SubmitOptions& options = {});
// The text of a dry run's answer: the plan, then per wave its clusters, steps and gates.
std::vector<std::string> renderDryRun(const nlohmann::json& body);
// `id` empty: every deployment as a table.
int statusCommand(Api& api, const std::string& id, bool as_json);
// `wave` empty: the wave the deployment waits on.
int approveCommand(Api& api, const std::string& id, const std::string& wave);
// POST /api/v1/deployments/ID/ACTION with `body`; `what` names it in the confirmation line.
int actionCommand(Api& api, const std::string& id, const std::string& action,
                  const std::string& what, const std::string& body);

void addSubmitCommand(CLI::App& app, Commands& commands);
void addStatusCommand(CLI::App& app, Commands& commands);
void addApproveCommand(CLI::App& app, Commands& commands);
// rollback (with --reason), pause, resume, cancel.
void addActionCommands(CLI::App& app, Commands& commands);
// promote ID [--wave W] [--reason TEXT], retry ID CLUSTER [--reason TEXT].
void addOverrideCommands(CLI::App& app, Commands& commands);

}  // namespace flotilla::cli
