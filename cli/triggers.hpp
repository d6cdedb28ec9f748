// `flotilla trigger NAME VERSION`: start a policy trigger (POST /api/v1/triggers/{name}), as CI
// does on a merge: the trigger's stored plan template deployed with VERSION to its environment,
// no human involved.
#pragma once

#include <string>

#include "cli/commands.hpp"

namespace flotilla::cli {

struct TriggerArgs {
  std::string name;
  std::string version;
  std::string changes_file;
  std::string notes_url;
  bool as_json = false;
};

int triggerCommand(Api& api, const TriggerArgs& args);

void addTriggerCommand(CLI::App& app, Commands& commands);

}  // namespace flotilla::cli
