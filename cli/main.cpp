// flotilla: the operator's CLI. Owns the top-level options (where the coordinator is, which
// token), the list of commands in the order --help shows them, and how a command's failure
// becomes one line and an exit code.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <string>

#include "cli/admin.hpp"
#include "cli/api.hpp"
#include "cli/commands.hpp"
#include "cli/credentials.hpp"
#include "cli/deployments.hpp"
#include "cli/follow.hpp"
#include "cli/freeze.hpp"
#include "cli/log.hpp"
#include "cli/policy.hpp"
#include "cli/releases.hpp"
#include "cli/triggers.hpp"

#ifndef FLOTILLA_VERSION
#define FLOTILLA_VERSION "0.1.0"
#endif

namespace flotilla::cli {
namespace {

constexpr char kDefaultServer[] = "http://127.0.0.1:7780";

constexpr char kMainFooter[] = R"(Environment:
  FLOTILLA_SERVER  coordinator URL, used when --server is not given
  FLOTILLA_TOKEN   API token sent with every request, used when --token-file is not given
  FLOTILLA_CA_CERT CA certificate(s) for an https:// server, used when --ca-cert is not given

Exit codes:
  0    done (for wait and watch: the deployment succeeded)
  1    the coordinator refused the request, or the deployment ended rolled_back, failed or
       cancelled (wait, watch)
  2    the coordinator could not be reached, or a file could not be read
  3    wait: --timeout passed before the deployment ended
  100+ the command line is wrong (the message says how)

Run 'flotilla COMMAND --help' for the details of a command.)";

int run(int argc, char** argv) {
  CLI::App app{
      "flotilla submits deployment plans to a Flotilla coordinator and follows and steers them\n"
      "as they roll out wave by wave across the fleet: approve gated waves, promote past an\n"
      "analysis, retry a held step, pause, resume, roll back or cancel; freeze deployments during\n"
      "an incident.",
      "flotilla"};
  app.set_version_flag("--version", "flotilla " FLOTILLA_VERSION, "Print the version and exit");
  // Not require_subcommand(1): with it, a mistyped command name is reported as "A subcommand
  // is required" instead of naming the unexpected word.
  app.require_subcommand(0, 1);
  // Subcommands created after this inherit it, so --server also works after the command name.
  app.fallthrough();
  app.footer(kMainFooter);

  std::string server = kDefaultServer;
  app.add_option("--server", server, "HTTP address of flotilla-coordinator")
      ->envname("FLOTILLA_SERVER")
      ->type_name("URL")
      ->capture_default_str();

  std::string ca_file;
  app.add_option("--ca-cert", ca_file,
                 "PEM file of the CA that signed an https:// coordinator's certificate (default:\n"
                 "the system's trusted CAs)")
      ->envname("FLOTILLA_CA_CERT")
      ->type_name("FILE");

  std::string token_file;
  app.add_option("--token-file", token_file,
                 "File holding the API token (mode 0600: refused when group or others may read "
                 "it); default: FLOTILLA_TOKEN")
      ->type_name("FILE");

  // Every command, in the order the help lists them.
  Commands commands;
  addSubmitCommand(app, commands);
  addStatusCommand(app, commands);
  addWatchCommand(app, commands);
  addWaitCommand(app, commands);
  addApproveCommand(app, commands);
  addActionCommands(app, commands);
  addOverrideCommands(app, commands);
  addEventsCommand(app, commands);
  addNoteCommand(app, commands);
  addLogCommand(app, commands);
  addAgentsCommands(app, commands);
  addTokensCommands(app, commands);
  addAuditCommand(app, commands);
  addPolicyCommands(app, commands);
  addReleaseCommands(app, commands);
  addTriggerCommand(app, commands);
  addFreezeCommands(app, commands);

  // Subcommand help does not list the parent's options; say where the coordinator comes from.
  for (auto& command : commands) {
    command.app->footer(
        command.app->get_footer() +
        "\n\nCoordinator: --server URL (before or after the command) or FLOTILLA_SERVER;\n"
        "default " +
        std::string(kDefaultServer) + ". API token: --token-file FILE or FLOTILLA_TOKEN.");
  }

  try {
    app.parse(argc, argv);
    if (app.get_subcommands().empty()) throw CLI::RequiredError("A command");
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  try {
    Api api(server, loadToken(token_file), ca_file);
    for (auto& command : commands) {
      if (command.app->parsed()) return command.run(api);
    }
    return kExitTrouble;  // the parse step guarantees a command
  } catch (const CliError& error) {
    std::cerr << "flotilla: " << error.what() << '\n';
    return error.exitCode();
  } catch (const std::exception& error) {
    // Last resort for a bug or a reply shaped unlike the contract; still one line, no trace.
    std::cerr << "flotilla: unexpected error: " << error.what() << '\n';
    return kExitTrouble;
  }
}

}  // namespace
}  // namespace flotilla::cli

int main(int argc, char** argv) { return flotilla::cli::run(argc, argv); }
