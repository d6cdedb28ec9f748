// flotilla-agent: flags, logging, signals; the rest is Agent::run().
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "agent/agent.hpp"
#include "common/curve.hpp"
#include "common/logging.hpp"
#include "common/plan.hpp"

using namespace flotilla;

namespace {
void onSignal(int) { agent::Agent::requestStop(); }
}  // namespace

int main(int argc, char** argv) {
  const mode_t step_umask = ::umask(077);  // the state dir is born private; steps get the old one
  agent::AgentOptions options;
  std::vector<std::string> labels;
  std::string log_level = "info";
  std::string heartbeat = "1s";
  std::string stop_timeout = "60s";

  CLI::App app{
      "flotilla-agent: runs on one cluster, connects to the coordinator, and runs the steps it\n"
      "is sent, each exactly once: every step is recorded in the state directory before it\n"
      "starts, and a repeated command is answered from that record. Script plans run shell\n"
      "commands (build, apply, verify, rollback); process plans run the service's replicas as\n"
      "local processes and move traffic through HAProxy's runtime API (deploy, shift, analyze,\n"
      "bake, finalize, roll, rollback). Replicas outlive an agent restart and are re-adopted.\n"
      "A script build names its artifact with a line `flotilla-artifact: sha256:<64 hex>` or\n"
      "by writing the digest to $FLOTILLA_ARTIFACT_FILE; it is sent with the build's result."};
  app.set_version_flag("--version", std::string("flotilla-agent ") + agent::kAgentVersion);
  app.add_option("--cluster", options.cluster, "This cluster's name ([a-z0-9-], 1..63)")
      ->required();
  app.add_option("--coordinator", options.coordinator, "The coordinator's agent address")
      ->capture_default_str();
  std::string coordinator_key;
  std::string enroll_token;
  app.add_option("--coordinator-key", coordinator_key,
                 "The coordinator's CURVE public key, or @FILE holding it (what\n"
                 "`flotilla-coordinator show-key` prints). Pinned: the agent never runs a command\n"
                 "from a peer that does not hold its secret key. Required unless --insecure");
  app.add_option("--enroll-token", enroll_token,
                 "One-time token from `flotilla agents enroll CLUSTER` (or @FILE holding it):\n"
                 "binds this agent's key (made in STATE_DIR/keys/ on first start) to the cluster.\n"
                 "Needed only until the first registration succeeds");
  app.add_flag("--insecure", options.insecure,
               "Connect without CURVE keys (NULL mechanism), to a coordinator started with\n"
               "--insecure: for loopback experiments only");
  app.add_option("--label", labels,
                 "KEY=VALUE label for wave selectors (repeatable), e.g. environment=staging");
  app.add_option("--state-dir", options.state_dir,
                 "Where the agent records the steps it ran (default ./flotilla-agent-CLUSTER)");
  app.add_option("--workdir", options.workdir,
                 "Directory steps run in (default: the agent's working directory)");
  app.add_option("--heartbeat", heartbeat, "Heartbeat interval until the coordinator sets its own")
      ->capture_default_str();
  app.add_option("--stop-timeout", stop_timeout,
                 "On SIGTERM or SIGINT, start no new step and let the running ones finish and\n"
                 "report for up to this long, then exit (a step still running then is stopped\n"
                 "and reported unknown after the restart). 0s exits at once; so does a second\n"
                 "signal. Keep it below the service manager's stop timeout (the units: 90s)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  // What steps and process-driver replicas get: an environment allowlist and a user.
  std::vector<std::string> pass_env;
  std::string run_as;
  app.add_option("--pass-env", pass_env,
                 "Pass this variable of the agent's environment on to steps (repeatable). Steps "
                 "get only PATH, HOME, LANG and FLOTILLA_* by default, plus the FLOTILLA_* "
                 "variables of the command");
  app.add_option("--run-as", run_as,
                 "Run steps and replicas as USER (its groups, gid and uid; HOME is its home). "
                 "Needs root unless USER is the agent's own user; --workdir must be usable by "
                 "USER");
  CLI11_PARSE(app, argc, argv);

  if (!common::isValidName(options.cluster)) {
    std::cerr << "flotilla-agent: --cluster \"" << options.cluster
              << "\" is not a valid name ([a-z0-9-], 1..63, no leading or trailing '-')\n";
    return 2;
  }
  for (const auto& l : labels) {
    auto eq = l.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == l.size() || l.size() > 128) {
      std::cerr << "flotilla-agent: --label wants KEY=VALUE, got \"" << l << "\"\n";
      return 2;
    }
    options.labels[l.substr(0, eq)] = l.substr(eq + 1);
  }
  auto beat = common::parseDuration(heartbeat);
  if (!beat.ok()) {
    std::cerr << "flotilla-agent: --heartbeat: " << beat.status().message() << "\n";
    return 2;
  }
  options.heartbeat = *beat;
  auto drain = common::parseDuration(stop_timeout);
  if (!drain.ok()) {
    std::cerr << "flotilla-agent: --stop-timeout: " << drain.status().message() << "\n";
    return 2;
  }
  options.stop_timeout = *drain;
  if (options.state_dir.empty()) options.state_dir = "./flotilla-agent-" + options.cluster;
  if (!options.workdir.empty() && !std::filesystem::is_directory(options.workdir)) {
    std::cerr << "flotilla-agent: --workdir " << options.workdir << " is not a directory\n";
    return 2;
  }
  for (const auto& name : pass_env) {
    if (!agent::isValidEnvName(name)) {
      std::cerr << "flotilla-agent: --pass-env wants a variable name, got \"" << name << "\"\n";
      return 2;
    }
  }
  options.launch.pass_env = pass_env;
  options.launch.umask = step_umask;
  if (!run_as.empty()) {
    auto user = agent::resolveRunAs(run_as);
    if (!user.ok()) {
      std::cerr << "flotilla-agent: " << user.status().message() << "\n";
      return 2;
    }
    options.launch.run_as = std::move(user).value();
  }

  if (!options.insecure) {
    if (coordinator_key.empty()) {
      std::cerr << "flotilla-agent: --coordinator-key is required (the key `flotilla-coordinator "
                   "show-key` prints), unless --insecure\n";
      return 2;
    }
    auto key = common::keyFromArgument(coordinator_key);
    if (!key.ok()) {
      std::cerr << "flotilla-agent: --coordinator-key: " << key.status().message() << "\n";
      return 2;
    }
    options.coordinator_key = *key;
  } else if (!coordinator_key.empty() || !enroll_token.empty()) {
    std::cerr << "flotilla-agent: --insecure takes no --coordinator-key or --enroll-token\n";
    return 2;
  }
  if (!enroll_token.empty() && enroll_token[0] == '@') {
    std::ifstream in(enroll_token.substr(1));
    std::string token;
    if (!(in >> token)) {
      std::cerr << "flotilla-agent: --enroll-token: cannot read " << enroll_token.substr(1) << "\n";
      return 2;
    }
    enroll_token = token;
  }
  if (enroll_token.size() > 256) {
    std::cerr << "flotilla-agent: --enroll-token is too long to be a token\n";
    return 2;
  }
  options.enroll_token = enroll_token;

  common::Status s = common::setupLogging("agent " + options.cluster, log_level);
  if (!s.ok()) {
    std::cerr << "flotilla-agent: " << s.message() << "\n";
    return 2;
  }
  auto records = agent::StageStore::open(options.state_dir, options.cluster);
  if (!records.ok()) {
    std::cerr << "flotilla-agent: " << records.status().message() << "\n";
    return 1;
  }
  if (options.insecure) {
    spdlog::warn(
        "INSECURE: no CURVE keys (--insecure); anyone on the path to {} can send us "
        "commands. For loopback experiments only.",
        options.coordinator);
  } else {
    auto pair = common::loadOrCreateKeyPair(options.state_dir + "/keys", "agent");
    if (!pair.ok()) {
      std::cerr << "flotilla-agent: " << pair.status().message() << "\n";
      return 1;
    }
    options.public_key = pair->public_key;
    options.secret_key = pair->secret_key;
    spdlog::info("agent key {}; coordinator key pinned to {}", options.public_key,
                 options.coordinator_key);
  }
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  std::signal(SIGPIPE, SIG_IGN);
  agent::Agent agent(options, std::move(records).value());
  s = agent.run();
  if (!s.ok()) {
    std::cerr << "flotilla-agent: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
