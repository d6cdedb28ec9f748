// The incident freeze commands: freeze (admin), unfreeze (admin), freeze show, freeze note
// (admin), and the banner every status output leads with while a freeze is active.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace flotilla::cli {

int freezeCommand(Api& api, const std::string& reason, const std::string& environment);
int unfreezeCommand(Api& api, const std::string& environment);
// `id` "" : the active freezes; otherwise that freeze's record with its notes.
int freezeShowCommand(Api& api, const std::string& id, bool as_json);
int freezeNoteCommand(Api& api, const std::string& id, const std::string& text);

// One line per active freeze in `freezes` (the "freezes" array of a status answer), e.g.
//   FROZEN: freeze-3 (environment production) by alice since 2026-...: INC-12 db failover;
//   new deployments are refused, running ones stop at their next step (flotilla unfreeze
//   --env production lifts it)
// Nothing when there is none (or the coordinator is older than freezes).
std::vector<std::string> freezeBanner(const nlohmann::json& freezes);

void addFreezeCommands(CLI::App& app, Commands& commands);

}  // namespace flotilla::cli
