// The command table: each area's file registers its subcommands (options, help text) and the
// function that runs each; main.cpp calls the registrations in one block, in the order the
// help lists them, and runs the one that was parsed. Also the output lines every command uses.
#pragma once

#include <functional>
#include <iostream>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace flotilla::cli {

class Api;

struct Command {
  CLI::App* app;                 // the (sub)command as CLI11 parsed it
  std::function<int(Api&)> run;  // returns the exit code; failures throw CliError
};
// The first parsed entry runs, so a subcommand goes before its parent.
using Commands = std::vector<Command>;

inline constexpr char kIdHelp[] =
    "Deployment id, as printed by 'flotilla submit' (e.g. checkout-3)";

// A result line on stdout, flushed: scripts and `watch` readers see it at once.
inline void printLine(const std::string& line) { std::cout << line << '\n' << std::flush; }

// A note on stderr ("" prints nothing), so that stdout stays parseable.
inline void printNote(const std::string& note) {
  if (!note.empty()) std::cerr << "flotilla: " << note << '\n';
}

}  // namespace flotilla::cli
