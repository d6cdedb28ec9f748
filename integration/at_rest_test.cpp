// Files at rest and what steps see (issue 10): the coordinator's data dir and the agent's state
// dir are owner-only (0700 dirs, 0600 files, tightened when found looser); steps get only an
// allowlist of the agent's environment (PATH, HOME, LANG, FLOTILLA_* and --pass-env names) and,
// with --run-as, run as that user; the agent does not log step text at info level.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

namespace fs = std::filesystem;

constexpr char kSecret[] = "s3cr3t-agent-token-7f1c9e";
constexpr char kCommandMarker[] = "at-rest-command-marker-41d2";

// The build prints the step's whole environment; the command carries a marker that must not
// appear in the agent's log at info level.
const ScriptPlan kEnvPlan{.service = "vault-client",
                          .version = "3.1.0",
                          .build = std::string("env; echo done >/dev/null # ") + kCommandMarker,
                          .apply = "echo \"uid=$(id -u) home=$HOME\"",
                          .verify = "",
                          .rollback = "echo rollback",
                          .waves = {waveOf("staging", {"staging-eu"})}};

// Every stage.output line of `events`, in order.
std::vector<std::string> outputLines(const json& events) {
  std::vector<std::string> lines;
  for (const auto& e : events) {
    if (e.value("type", "") == "stage.output") lines.push_back(e.value("message", ""));
  }
  return lines;
}

bool hasLine(const std::vector<std::string>& lines, const std::string& line) {
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

// Every directory and file under `root` (root included) whose mode is not 0700 / 0600, as
// "path mode" lines; symlinks are not followed.
std::vector<std::string> looseEntries(const std::string& root) {
  std::vector<std::string> loose;
  auto check = [&loose](const fs::path& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return;  // gone meanwhile (a RocksDB temp file)
    unsigned mode = st.st_mode & 07777;
    if (S_ISDIR(st.st_mode) && mode != 0700)
      loose.push_back(p.string() + " dir " + std::to_string(mode));
    if (S_ISREG(st.st_mode) && mode != 0600)
      loose.push_back(p.string() + " file " + std::to_string(mode));
  };
  check(root);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    check(it->path());
  }
  return loose;
}

size_t entryCount(const std::string& root) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// Files under `root` whose bytes contain `needle`.
std::vector<std::string> filesHolding(const std::string& root, const std::string& needle) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file() && readFile(it->path().string()).find(needle) != std::string::npos) {
      found.push_back(it->path().string());
    }
  }
  return found;
}

// Loosens every mode under `root` the way an older version left them (0755 dirs, 0644 files).
// CURVE secret keys (keys/*.key) are left alone: one found readable by others is not
// tightened but refused (the key must be taken as leaked), and older versions had none.
void loosen(const std::string& root) {
  ::chmod(root.c_str(), 0755);
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().extension() == ".key") continue;
    ::chmod(e.path().c_str(), e.is_directory() ? 0755 : 0644);
  }
}

// Runs the agent with `extra` flags appended to the harness's command line (through a shell
// that execs it, so the pid stays the agent's).
AgentLaunch withFlags(std::map<std::string, std::string> env, const std::string& extra) {
  AgentLaunch launch;
  launch.env = std::move(env);
  launch.prefix = {"/bin/sh", "-c", "exec \"$@\" " + extra, "agent-with-flags"};
  return launch;
}

class AtRestTest : public FleetTest {
 protected:
  std::string dataDir() const { return dir() + "/data"; }
  std::string stateDir(const std::string& cluster) const { return agentStateDir(cluster); }
  // The coordinator and staging-eu's agent (started with `launch`), connected.
  void startStaging(const AgentLaunch& launch = {}) {
    ASSERT_NO_FATAL_FAILURE(startCoordinator());
    ASSERT_NO_FATAL_FAILURE(startAgents({usualAgent("staging-eu")}, launch));
  }
  // Submits kEnvPlan and waits for it to succeed; returns its id ("" on failure).
  std::string deployEnvPlan() {
    const std::string id = submitPlan("env-plan.yaml", kEnvPlan.yaml());
    if (id.empty()) return id;
    EXPECT_TRUE(waitForState(id, "succeeded")) << events(id).dump(1);
    return id;
  }
};

TEST_F(AtRestTest, SecretInTheAgentsEnvironmentNeverReachesStepsEventsOrFiles) {
  AgentLaunch launch;
  launch.env = {{"AT_REST_SECRET", kSecret}, {"FLOTILLA_AT_REST_MARK", "agent-flotilla-var"}};
  ASSERT_NO_FATAL_FAILURE(startStaging(launch));
  const std::string id = deployEnvPlan();
  ASSERT_FALSE(id.empty());

  const json ev = events(id);
  const std::vector<std::string> lines = outputLines(ev);
  EXPECT_EQ(ev.dump().find(kSecret), std::string::npos) << "the secret reached the events";
  EXPECT_EQ(ev.dump().find("AT_REST_SECRET"), std::string::npos);
  // The coordinator's FLOTILLA_* and the agent's own FLOTILLA_* do reach the step.
  EXPECT_TRUE(hasLine(lines, "FLOTILLA_VERSION=3.1.0")) << ::testing::PrintToString(lines);
  EXPECT_TRUE(hasLine(lines, "FLOTILLA_DEPLOYMENT=" + id)) << ::testing::PrintToString(lines);
  EXPECT_TRUE(hasLine(lines, "FLOTILLA_ENVIRONMENT=staging")) << ::testing::PrintToString(lines);
  EXPECT_TRUE(hasLine(lines, "FLOTILLA_AT_REST_MARK=agent-flotilla-var"))
      << ::testing::PrintToString(lines);
  // Nothing but the allowlist (and what sh itself sets).
  for (const auto& line : lines) {
    auto eq = line.find('=');
    if (eq == std::string::npos || line.rfind("uid=", 0) == 0) continue;
    const std::string name = line.substr(0, eq);
    const bool allowed = name == "PATH" || name == "HOME" || name == "LANG" ||
                         name.rfind("FLOTILLA_", 0) == 0 || name == "PWD" || name == "SHLVL" ||
                         name == "_" || name == "OLDPWD";
    EXPECT_TRUE(allowed) << name << " of the agent's environment reached the step";
  }

  // The agent's log names the step and a hash of its command, never the command itself.
  const std::string agent_log = readFile(agentLog("staging-eu"));
  EXPECT_EQ(agent_log.find(kCommandMarker), std::string::npos)
      << tailOf(agentLog("staging-eu"), 40);
  EXPECT_NE(agent_log.find("build step, command sha256:"), std::string::npos)
      << tailOf(agentLog("staging-eu"), 40);
  EXPECT_EQ(agent_log.find(kSecret), std::string::npos);

  // At rest: owner-only, and the secret is in no file of either side.
  EXPECT_GT(entryCount(dataDir()), 3u);
  EXPECT_GT(entryCount(stateDir("staging-eu")), 5u);
  EXPECT_EQ(looseEntries(dataDir()), std::vector<std::string>{});
  EXPECT_EQ(looseEntries(stateDir("staging-eu")), std::vector<std::string>{});
  EXPECT_EQ(filesHolding(dataDir(), kSecret), std::vector<std::string>{});
  EXPECT_EQ(filesHolding(stateDir("staging-eu"), kSecret), std::vector<std::string>{});
  // The stage log is there (and private, above), holding the step's output.
  EXPECT_FALSE(filesHolding(stateDir("staging-eu"), "FLOTILLA_VERSION=3.1.0").empty());
}

TEST_F(AtRestTest, LooserModesLeftByAnOlderVersionAreTightenedAtStart) {
  ASSERT_NO_FATAL_FAILURE(startStaging());
  ASSERT_FALSE(deployEnvPlan().empty());
  stopCoordinator();
  killAgent("staging-eu");

  loosen(dataDir());
  loosen(stateDir("staging-eu"));
  ASSERT_FALSE(looseEntries(dataDir()).empty());
  ASSERT_FALSE(looseEntries(stateDir("staging-eu")).empty());

  restartCoordinator();
  restartAgent("staging-eu");
  ASSERT_NO_FATAL_FAILURE(waitForAgents({"staging-eu"}));
  EXPECT_EQ(looseEntries(dataDir()), std::vector<std::string>{});
  EXPECT_EQ(looseEntries(stateDir("staging-eu")), std::vector<std::string>{});
  // Each says so, once.
  const std::string coordinator_log = readFile(coordinatorLog());
  auto said = [](const std::string& log) {
    size_t n = 0;
    for (size_t at = log.find("readable by others"); at != std::string::npos;
         at = log.find("readable by others", at + 1)) {
      ++n;
    }
    return n;
  };
  EXPECT_EQ(said(coordinator_log), 1u) << tailOf(coordinatorLog(), 30);
  EXPECT_EQ(said(readFile(agentLog("staging-eu"))), 1u) << tailOf(agentLog("staging-eu"), 30);
}

TEST_F(AtRestTest, PassEnvHandsOnlyTheNamedVariableToSteps) {
  ASSERT_NO_FATAL_FAILURE(
      startStaging(withFlags({{"AT_REST_PASSED", "passed-on-value"}, {"AT_REST_SECRET", kSecret}},
                             "--pass-env AT_REST_PASSED")));
  const std::string id = deployEnvPlan();
  ASSERT_FALSE(id.empty());
  const json ev = events(id);
  const std::vector<std::string> lines = outputLines(ev);
  EXPECT_TRUE(hasLine(lines, "AT_REST_PASSED=passed-on-value")) << ::testing::PrintToString(lines);
  EXPECT_EQ(ev.dump().find(kSecret), std::string::npos) << "the secret reached the events";
}

TEST_F(AtRestTest, RunAsNobodyRunsStepsAsNobody) {
  if (::geteuid() != 0) GTEST_SKIP() << "--run-as another user needs root";
  passwd* nobody = ::getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  // The workdir must be usable by that user (README); the test dir is 0700 from mkdtemp.
  ASSERT_EQ(::chmod(dir().c_str(), 0711), 0);
  ASSERT_EQ(::chown((dir() + "/work").c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  ASSERT_NO_FATAL_FAILURE(
      startStaging(withFlags({{"AT_REST_SECRET", kSecret}}, "--run-as nobody")));
  const std::string id = deployEnvPlan();
  ASSERT_FALSE(id.empty());
  const std::vector<std::string> lines = outputLines(events(id));
  const std::string want = "uid=" + std::to_string(nobody->pw_uid) + " home=" + nobody->pw_dir;
  EXPECT_TRUE(hasLine(lines, want)) << want << " in " << ::testing::PrintToString(lines);
  EXPECT_TRUE(hasLine(lines, std::string("HOME=") + nobody->pw_dir));
  // The agent itself still runs as root and keeps its state private.
  EXPECT_EQ(looseEntries(stateDir("staging-eu")), std::vector<std::string>{});
}

TEST_F(AtRestTest, AgentRefusesToStartWithAnUnusableRunAsOrPassEnv) {
  auto run = [this](const std::vector<std::string>& flags,
                    const std::vector<std::string>& prefix = {}) {
    std::vector<std::string> argv = prefix;
    argv.insert(argv.end(), {FLOTILLA_AGENT_BIN, "--cluster", "staging-eu", "--state-dir",
                             dir() + "/refused-state"});
    argv.insert(argv.end(), flags.begin(), flags.end());
    return runCommand(argv, dir() + "/scratch", 20s);
  };
  CommandResult unknown = run({"--run-as", "flotilla-no-such-user"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
  EXPECT_NE(unknown.err.find("no such user"), std::string::npos) << unknown.err;
  CommandResult bad_name = run({"--pass-env", "A=B"});
  EXPECT_EQ(bad_name.exit_code, 2) << bad_name.err;
  EXPECT_NE(bad_name.err.find("--pass-env"), std::string::npos) << bad_name.err;
  EXPECT_FALSE(fs::exists(dir() + "/refused-state")) << "refused before touching the state dir";
  if (::geteuid() == 0) {
    // Not root: only itself. setpriv drops this test's root for the agent.
    CommandResult not_root = run({"--run-as", "root"}, {"/usr/bin/setpriv", "--reuid=nobody",
                                                        "--regid=nogroup", "--clear-groups"});
    EXPECT_EQ(not_root.exit_code, 2) << not_root.err;
    EXPECT_NE(not_root.err.find("only root can run steps as another user"), std::string::npos)
        << not_root.err;
  }
}

// Two agents on one state dir would each run every stage: the second refuses to start and names
// the process that holds the dir; the first carries on.
TEST_F(AtRestTest, SecondAgentOnTheSameStateDirRefusesToStart) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string state = agentStateDir("staging-eu");
  CommandResult second =
      runCommand({FLOTILLA_AGENT_BIN, "--cluster", "staging-eu", "--state-dir", state,
                  "--coordinator", agentAddress(), "--coordinator-key", coordinatorKey()},
                 dir() + "/scratch", 20s);
  EXPECT_EQ(second.exit_code, 1) << second.err;
  EXPECT_NE(second.err.find("in use by another process (pid " +
                            std::to_string(agentPid("staging-eu")) + ")"),
            std::string::npos)
      << second.err;
  EXPECT_TRUE(agentRunning("staging-eu"));
  // A killed agent leaves no lock behind: the next one starts on the same dir.
  ASSERT_NO_FATAL_FAILURE(killAgent("staging-eu"));
  ASSERT_NO_FATAL_FAILURE(restartAgent("staging-eu"));
  ASSERT_NO_FATAL_FAILURE(waitForAgents({"staging-eu"}));
}

}  // namespace
}  // namespace flotilla::integration
