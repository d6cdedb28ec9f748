// Tests for step child processes (agent/child_process.cpp): output, exit status, environment,
// working directory, process-group signals and clean-up. Every wait polls with a deadline.
#include "agent/child_process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/files.hpp"

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Generous: only a broken implementation gets near it.
constexpr auto kDeadline = 5s;

std::unique_ptr<ChildProcess> spawnOrDie(const ChildSpec& spec) {
  auto child = ChildProcess::spawn(spec);
  EXPECT_TRUE(child.ok()) << child.status().toString();
  if (!child.ok()) return nullptr;
  return std::move(child).value();
}

std::unique_ptr<ChildProcess> spawnOrDie(const std::string& command) {
  return spawnOrDie(ChildSpec{command, {}, ""});
}

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

struct Collected {
  std::vector<std::string> lines;
  std::optional<ChildExit> exit;  // set by the tryReap call of this collect() that saw the exit
  bool eof = false;               // the pipe reached end of file
};

// Reads output and reaps the child, polling its output and exit fds, until it has exited and
// (with `until_eof`) its output pipe is closed, or the deadline passes.
Collected collect(ChildProcess& child, bool until_eof = true) {
  Collected out;
  const auto deadline = Clock::now() + kDeadline;
  while (true) {
    if (!out.eof && !child.readOutput(out.lines)) out.eof = true;
    if (!child.exited()) out.exit = child.tryReap();
    if (child.exited() && (out.eof || !until_eof)) break;
    if (Clock::now() >= deadline) break;
    pollfd fds[2];
    nfds_t n = 0;
    if (!out.eof) fds[n++] = {child.outputFd(), POLLIN, 0};
    // A pidfd stays readable after the exit: only watch it until then.
    if (!child.exited()) fds[n++] = {child.exitFd(), POLLIN, 0};
    poll(fds, n, remainingMs(deadline));
  }
  return out;
}

// Spawns `spec` and collects everything it does until it exits; no exit (and a failure) when it
// cannot be spawned.
Collected run(const ChildSpec& spec) {
  auto child = spawnOrDie(spec);
  if (child == nullptr) return Collected{};
  return collect(*child);
}
Collected run(const std::string& command) { return run(ChildSpec{command, {}, ""}); }

// Reads until `count` complete lines have arrived (or the deadline passes).
std::vector<std::string> readLines(ChildProcess& child, size_t count) {
  std::vector<std::string> lines;
  const auto deadline = Clock::now() + kDeadline;
  while (lines.size() < count && Clock::now() < deadline) {
    if (!child.readOutput(lines)) break;
    if (lines.size() >= count) break;
    pollfd fd = {child.outputFd(), POLLIN, 0};
    poll(&fd, 1, remainingMs(deadline));
  }
  return lines;
}

// Gone: no such process, or a zombie waiting for a parent that is not us (an orphaned
// grandchild is reaped by PID 1, which in a container may never do it).
bool processGone(pid_t pid) {
  if (kill(pid, 0) == -1 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto paren = content.rfind(')');
  if (paren == std::string::npos || paren + 2 >= content.size()) return true;
  const char state = content[paren + 2];
  return state == 'Z' || state == 'X';
}

bool waitGone(pid_t pid) {
  const auto deadline = Clock::now() + kDeadline;
  while (!processGone(pid)) {
    if (Clock::now() >= deadline) return false;
    usleep(1000);  // a poll interval, not an assertion
  }
  return true;
}

size_t openFdCount() {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

// ---- Output ---------------------------------------------------------------------------------

TEST(ChildProcessTest, EchoLinesAreReadInOrder) {
  auto child = spawnOrDie("echo one; echo two; echo 'three  with  spaces'");
  ASSERT_NE(child, nullptr);
  EXPECT_GT(child->pid(), 0);
  EXPECT_GE(child->outputFd(), 0);
  EXPECT_GE(child->exitFd(), 0);
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_TRUE(c.eof);
  EXPECT_EQ(c.lines, (std::vector<std::string>{"one", "two", "three  with  spaces"}));
  EXPECT_EQ(c.exit->exit_code, 0);
  EXPECT_EQ(c.exit->signal, 0);
  EXPECT_EQ(c.exit->describe(), "exit code 0");
  EXPECT_EQ(child->outputFd(), -1);
  EXPECT_EQ(child->takePartialLine(), "");
}

TEST(ChildProcessTest, MoreOutputThanThePipeHoldsArrivesComplete) {
  // ~190 KB: the child blocks on a full pipe until the reader drains it.
  Collected c = run("seq 1 30000");
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_EQ(c.exit->exit_code, 0);
  ASSERT_EQ(c.lines.size(), 30000u);
  for (size_t i = 0; i < c.lines.size(); ++i) {
    ASSERT_EQ(c.lines[i], std::to_string(i + 1)) << "line " << i;
  }
}

TEST(ChildProcessTest, EmptyLinesAreKept) {
  Collected c = run("printf 'a\\n\\n\\nb\\n'");
  EXPECT_EQ(c.lines, (std::vector<std::string>{"a", "", "", "b"}));
}

TEST(ChildProcessTest, StdoutAndStderrAreBothCaptured) {
  auto child = spawnOrDie("echo to-stdout; echo to-stderr >&2; echo again-stdout");
  ASSERT_NE(child, nullptr);
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_EQ(c.lines, (std::vector<std::string>{"to-stdout", "to-stderr", "again-stdout"}));
}

TEST(ChildProcessTest, StdinIsEmpty) {
  // A step that reads stdin must not hang waiting for the agent.
  auto child = spawnOrDie("cat; echo done");
  ASSERT_NE(child, nullptr);
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_EQ(c.lines, std::vector<std::string>{"done"});
}

TEST(ChildProcessTest, PartialLastLineIsReturnedByTakePartialLine) {
  auto child = spawnOrDie("printf 'complete\\nno newline at the end'");
  ASSERT_NE(child, nullptr);
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_TRUE(c.eof);
  EXPECT_EQ(c.lines, std::vector<std::string>{"complete"});
  EXPECT_EQ(child->takePartialLine(), "no newline at the end");
  EXPECT_EQ(child->takePartialLine(), "");
}

TEST(ChildProcessTest, VeryLongLineIsCutTo4096Bytes) {
  auto child = spawnOrDie(
      "head -c 100000 /dev/zero | tr '\\0' x; echo; echo after; head -c 5000 /dev/zero | tr '\\0' "
      "y");
  ASSERT_NE(child, nullptr);
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  ASSERT_EQ(c.lines.size(), 2u);
  EXPECT_EQ(c.lines[0], std::string(4096, 'x'));
  EXPECT_EQ(c.lines[1], "after");  // the cut does not swallow the next line
  EXPECT_EQ(child->takePartialLine(), std::string(4096, 'y'));
}

TEST(ChildProcessTest, LineOfExactly4096BytesIsKept) {
  auto child = spawnOrDie("head -c 4096 /dev/zero | tr '\\0' z; echo");
  ASSERT_NE(child, nullptr);
  Collected c = collect(*child);
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_EQ(c.lines[0], std::string(4096, 'z'));
}

// ---- Exit status ----------------------------------------------------------------------------

TEST(ChildProcessTest, ExitCodesAreReported) {
  for (int code : {0, 1, 3, 42, 127, 255}) {
    auto child = spawnOrDie("exit " + std::to_string(code));
    ASSERT_NE(child, nullptr);
    Collected c = collect(*child);
    ASSERT_TRUE(c.exit.has_value()) << code;
    EXPECT_EQ(c.exit->exit_code, code);
    EXPECT_EQ(c.exit->signal, 0);
    EXPECT_EQ(c.exit->describe(), "exit code " + std::to_string(code));
    EXPECT_TRUE(child->exited());
  }
}

TEST(ChildProcessTest, UnknownCommandExitsWith127) {
  Collected c = run("/nonexistent/flotilla-test-command");
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_EQ(c.exit->exit_code, 127);
  EXPECT_FALSE(c.lines.empty()) << "the shell says why on stderr";
}

TEST(ChildProcessTest, TryReapReportsTheExitOnce) {
  auto child = spawnOrDie("exit 5");
  ASSERT_NE(child, nullptr);
  EXPECT_FALSE(child->exited());
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_TRUE(child->exited());
  EXPECT_FALSE(child->tryReap().has_value());
  EXPECT_FALSE(child->tryReap().has_value());
}

TEST(ChildProcessTest, KilledBySigkillReportsSignal9) {
  auto child = spawnOrDie("echo started; sleep 100");
  ASSERT_NE(child, nullptr);
  ASSERT_EQ(readLines(*child, 1), std::vector<std::string>{"started"});
  EXPECT_FALSE(child->tryReap().has_value());
  child->signalGroup(SIGKILL);
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_EQ(c.exit->signal, 9);
  EXPECT_EQ(c.exit->exit_code, 128 + 9);
  EXPECT_EQ(c.exit->describe(), "killed by SIGKILL");
}

TEST(ChildProcessTest, KilledBySigtermReportsIt) {
  auto child = spawnOrDie("echo started; sleep 100");
  ASSERT_NE(child, nullptr);
  ASSERT_EQ(readLines(*child, 1), std::vector<std::string>{"started"});
  child->signalGroup(SIGTERM);
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_EQ(c.exit->signal, SIGTERM);
  EXPECT_EQ(c.exit->describe(), "killed by SIGTERM");
}

TEST(ChildExitTest, Describe) {
  EXPECT_EQ((ChildExit{0, 0}).describe(), "exit code 0");
  EXPECT_EQ((ChildExit{2, 0}).describe(), "exit code 2");
  EXPECT_EQ((ChildExit{137, SIGKILL}).describe(), "killed by SIGKILL");
  EXPECT_EQ((ChildExit{143, SIGTERM}).describe(), "killed by SIGTERM");
  EXPECT_EQ((ChildExit{139, SIGSEGV}).describe(), "killed by SIGSEGV");
}

// ---- Environment and working directory ------------------------------------------------------

TEST(ChildProcessTest, EnvVariablesArePassed) {
  ASSERT_EQ(setenv("FLOTILLA_TEST_INHERITED", "from-agent", 1), 0);
  ASSERT_EQ(setenv("FLOTILLA_TEST_OVERRIDDEN", "from-agent", 1), 0);
  ChildSpec spec;
  spec.command =
      "echo \"$FLOTILLA_VERSION\"; echo \"$FLOTILLA_SPACES\"; echo \"$FLOTILLA_TEST_INHERITED\"; "
      "echo \"$FLOTILLA_TEST_OVERRIDDEN\"; echo \"${FLOTILLA_EMPTY-unset}\"";
  spec.env = {{"FLOTILLA_VERSION", "1.4.2"},
              {"FLOTILLA_SPACES", "a b  c=d"},
              {"FLOTILLA_TEST_OVERRIDDEN", "from-step"},
              {"FLOTILLA_EMPTY", ""}};
  auto child = spawnOrDie(spec);
  unsetenv("FLOTILLA_TEST_INHERITED");
  unsetenv("FLOTILLA_TEST_OVERRIDDEN");
  ASSERT_NE(child, nullptr);
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_EQ(c.lines,
            (std::vector<std::string>{"1.4.2", "a b  c=d", "from-agent", "from-step", ""}));
}

TEST(ChildProcessTest, EnvValuesAreNotInterpretedByTheShell) {
  ChildSpec spec;
  spec.command = "printf '%s\\n' \"$FLOTILLA_X\"";
  spec.env = {{"FLOTILLA_X", "$(echo injected); `echo injected`"}};
  Collected c = run(spec);
  EXPECT_EQ(c.lines, std::vector<std::string>{"$(echo injected); `echo injected`"});
}

TEST(ChildProcessTest, WorkdirIsHonoured) {
  support::TempDir temp("child-test");
  ASSERT_FALSE(temp.path().empty());
  const std::string dir = std::filesystem::canonical(temp.path()).string();
  support::writeFile(dir + "/marker.txt", "in the workdir\n");
  ChildSpec spec;
  spec.command = "pwd -P; cat marker.txt";
  spec.workdir = dir;
  Collected c = run(spec);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_EQ(c.exit->exit_code, 0);
  EXPECT_EQ(c.lines, (std::vector<std::string>{dir, "in the workdir"}));
}

TEST(ChildProcessTest, EmptyWorkdirMeansTheAgentsOwn) {
  Collected c = run("pwd -P");
  EXPECT_EQ(c.lines,
            std::vector<std::string>{std::filesystem::canonical(std::filesystem::current_path())});
}

TEST(ChildProcessTest, MissingWorkdirFailsToSpawn) {
  const size_t fds_before = openFdCount();
  ChildSpec spec;
  spec.command = "echo should not run";
  spec.workdir = "/nonexistent/flotilla-test-dir";
  auto child = ChildProcess::spawn(spec);
  ASSERT_FALSE(child.ok());
  EXPECT_TRUE(child.status().isIoError()) << child.status().toString();
  EXPECT_EQ(openFdCount(), fds_before) << "the failed spawn leaked file descriptors";
}

// ---- Process group, background processes, clean-up -------------------------------------------

// A shell that starts a background `sleep 100` (its pid in *grandchild, 0 when it never said)
// and waits for it.
std::unique_ptr<ChildProcess> spawnWithGrandchild(pid_t* grandchild) {
  auto child = spawnOrDie("sleep 100 & echo $!; wait");
  if (child == nullptr) return nullptr;
  auto lines = readLines(*child, 1);
  EXPECT_EQ(lines.size(), 1u);
  *grandchild = lines.size() == 1 ? std::stoi(lines[0]) : 0;
  return child;
}

TEST(ChildProcessTest, SignalGroupKillsGrandchildren) {
  pid_t grandchild = 0;
  auto child = spawnWithGrandchild(&grandchild);
  ASSERT_NE(child, nullptr);
  ASSERT_GT(grandchild, 0);
  ASSERT_NE(grandchild, child->pid());
  ASSERT_FALSE(processGone(grandchild));
  child->signalGroup(SIGKILL);
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_EQ(c.exit->signal, SIGKILL);
  EXPECT_TRUE(c.eof) << "the grandchild still holds the pipe";
  EXPECT_TRUE(waitGone(grandchild)) << "grandchild " << grandchild << " survived the group kill";
}

TEST(ChildProcessTest, BackgroundProcessHoldingThePipeDoesNotDelayTheExit) {
  auto child = spawnOrDie("sleep 100 & echo $!; echo bye; exit 7");
  ASSERT_NE(child, nullptr);
  const auto started = Clock::now();
  Collected c = collect(*child, /*until_eof=*/false);
  ASSERT_TRUE(c.exit.has_value()) << "the shell's exit was not reported";
  EXPECT_LT(Clock::now() - started, 2s);
  EXPECT_EQ(c.exit->exit_code, 7);
  EXPECT_FALSE(c.eof) << "the background sleep should still hold the pipe";
  // Both lines were written before the exit, so they are in the pipe by now.
  std::vector<std::string> lines = c.lines;
  child->readOutput(lines);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "bye");
  const pid_t grandchild = std::stoi(lines[0]);
  // The group outlives its leader: the agent can still kill what the step left behind, and
  // then the pipe closes.
  child->signalGroup(SIGKILL);
  EXPECT_TRUE(waitGone(grandchild));
  Collected rest = collect(*child);
  EXPECT_TRUE(rest.eof);
}

TEST(ChildProcessTest, DestructorKillsAndReapsARunningChild) {
  auto child = spawnOrDie("echo started; sleep 100");
  ASSERT_NE(child, nullptr);
  ASSERT_EQ(readLines(*child, 1), std::vector<std::string>{"started"});
  const pid_t pid = child->pid();
  ASSERT_EQ(kill(pid, 0), 0);
  const auto started = Clock::now();
  child.reset();
  EXPECT_LT(Clock::now() - started, 2s);
  // Reaped by the destructor itself: not even a zombie is left.
  errno = 0;
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST(ChildProcessTest, DestructorKillsGrandchildrenOfARunningChild) {
  pid_t grandchild = 0;
  auto child = spawnWithGrandchild(&grandchild);
  ASSERT_NE(child, nullptr);
  ASSERT_GT(grandchild, 0);
  child.reset();
  EXPECT_TRUE(waitGone(grandchild));
}

TEST(ChildProcessTest, DestructorReapsAnExitedChildThatWasNeverReaped) {
  auto child = spawnOrDie("exit 0");
  ASSERT_NE(child, nullptr);
  const pid_t pid = child->pid();
  pollfd fd = {child->exitFd(), POLLIN, 0};
  ASSERT_EQ(poll(&fd, 1, 5000), 1) << "the exit fd never became readable";
  child.reset();
  errno = 0;
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST(ChildProcessTest, NoFileDescriptorLeaks) {
  const size_t before = openFdCount();
  for (int i = 0; i < 20; ++i) {
    auto child = spawnOrDie("echo " + std::to_string(i));
    ASSERT_NE(child, nullptr);
    if (i % 2 == 0) collect(*child);  // the other half is destroyed while possibly running
  }
  EXPECT_EQ(openFdCount(), before);
}

TEST(ChildProcessTest, ChildDoesNotHoldTheReadEndOfItsPipe) {
  // If the read end leaked into the step, a step's background process would hold both ends and
  // the pipe could never report EOF. Each line: "<fd> <link target>" of the shell's own fds.
  auto child = spawnOrDie("for f in /proc/$$/fd/*; do echo \"${f##*/} $(readlink $f)\"; done");
  ASSERT_NE(child, nullptr);
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  std::map<std::string, std::string> fds;
  for (const auto& line : c.lines) {
    auto space = line.find(' ');
    if (space != std::string::npos) fds[line.substr(0, space)] = line.substr(space + 1);
  }
  ASSERT_EQ(fds.count("1"), 1u) << ::testing::PrintToString(c.lines);
  const std::string pipe = fds["1"];
  EXPECT_EQ(pipe.rfind("pipe:", 0), 0u) << pipe;
  EXPECT_EQ(fds["2"], pipe) << "stderr goes to the same pipe";
  EXPECT_EQ(fds["0"], "/dev/null");
  for (const auto& [fd, target] : fds) {
    if (fd != "1" && fd != "2") {
      EXPECT_NE(target, pipe) << "fd " << fd << " is the output pipe";
    }
    EXPECT_EQ(target.find("pidfd"), std::string::npos) << "fd " << fd << " is a pidfd";
  }
}

TEST(ChildProcessTest, CloseOutputStopsReading) {
  auto child = spawnOrDie("echo hello; sleep 100");
  ASSERT_NE(child, nullptr);
  ASSERT_EQ(readLines(*child, 1), std::vector<std::string>{"hello"});
  child->closeOutput();
  EXPECT_EQ(child->outputFd(), -1);
  std::vector<std::string> lines;
  EXPECT_FALSE(child->readOutput(lines));
  EXPECT_TRUE(lines.empty());
  child->signalGroup(SIGKILL);
  Collected c = collect(*child);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_EQ(c.exit->signal, SIGKILL);
}

// ---- Environment allowlist (stepEnvironment) -------------------------------------------------

std::map<std::string, std::string> asMap(const std::vector<std::string>& env) {
  std::map<std::string, std::string> out;
  for (const auto& kv : env) {
    auto eq = kv.find('=');
    out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

TEST(StepEnvironmentTest, OnlyTheDefaultNamesPassByDefault) {
  const char* agent_env[] = {"PATH=/usr/bin",
                             "HOME=/root",
                             "LANG=C.UTF-8",
                             "FLOTILLA_FAILPOINTS=x",
                             "AWS_SECRET_ACCESS_KEY=hunter2",
                             "LD_PRELOAD=/evil.so",
                             "LC_ALL=C",
                             "PATHX=no",
                             "NOEQUALS",
                             nullptr};
  auto env = asMap(stepEnvironment(LaunchPolicy{}, agent_env, {}));
  EXPECT_EQ(env, (std::map<std::string, std::string>{{"PATH", "/usr/bin"},
                                                     {"HOME", "/root"},
                                                     {"LANG", "C.UTF-8"},
                                                     {"FLOTILLA_FAILPOINTS", "x"}}));
}

TEST(StepEnvironmentTest, PassEnvAddsNamedVariablesOnly) {
  const char* agent_env[] = {"KUBECONFIG=/etc/kube", "AWS_SECRET_ACCESS_KEY=hunter2",
                             "KUBECONFIG_EXTRA=no", nullptr};
  LaunchPolicy policy;
  policy.pass_env = {"KUBECONFIG", "NOT_SET"};
  auto env = asMap(stepEnvironment(policy, agent_env, {}));
  EXPECT_EQ(env, (std::map<std::string, std::string>{{"KUBECONFIG", "/etc/kube"}}));
}

TEST(StepEnvironmentTest, CommandVariablesWinAndOnlyFlotillaOnesAreTaken) {
  const char* agent_env[] = {"FLOTILLA_VERSION=agent", "PATH=/usr/bin", nullptr};
  auto env = asMap(stepEnvironment(LaunchPolicy{}, agent_env,
                                   {{"FLOTILLA_VERSION", "1.4.2"},
                                    {"FLOTILLA_WEIGHT", "10"},
                                    {"PATH", "/tmp/evil"},
                                    {"LD_PRELOAD", "/evil.so"}}));
  EXPECT_EQ(env,
            (std::map<std::string, std::string>{
                {"FLOTILLA_VERSION", "1.4.2"}, {"FLOTILLA_WEIGHT", "10"}, {"PATH", "/usr/bin"}}));
}

TEST(StepEnvironmentTest, RunAsSetsThatUsersHome) {
  const char* agent_env[] = {"HOME=/root", nullptr};
  LaunchPolicy policy;
  policy.run_as = RunAsUser{"svc", 1000, 1000, "/home/svc", {1000}};
  EXPECT_EQ(asMap(stepEnvironment(policy, agent_env, {}))["HOME"], "/home/svc");
  const char* no_home[] = {nullptr};
  EXPECT_EQ(asMap(stepEnvironment(policy, no_home, {}))["HOME"], "/home/svc");
}

TEST(StepEnvironmentTest, SortedByName) {
  const char* agent_env[] = {"PATH=/bin", "HOME=/h", "FLOTILLA_B=2", "FLOTILLA_A=1", nullptr};
  EXPECT_EQ(stepEnvironment(LaunchPolicy{}, agent_env, {}),
            (std::vector<std::string>{"FLOTILLA_A=1", "FLOTILLA_B=2", "HOME=/h", "PATH=/bin"}));
}

TEST(StepEnvironmentTest, EnvNames) {
  EXPECT_TRUE(isValidEnvName("KUBECONFIG"));
  EXPECT_TRUE(isValidEnvName("_x1"));
  EXPECT_FALSE(isValidEnvName(""));
  EXPECT_FALSE(isValidEnvName("1X"));
  EXPECT_FALSE(isValidEnvName("A=B"));
  EXPECT_FALSE(isValidEnvName("A-B"));
  EXPECT_FALSE(isValidEnvName(std::string(129, 'A')));
  EXPECT_TRUE(isDefaultPassedName("PATH"));
  EXPECT_TRUE(isDefaultPassedName("FLOTILLA_ANYTHING"));
  EXPECT_FALSE(isDefaultPassedName("PATH_X"));
  EXPECT_FALSE(isDefaultPassedName("LC_ALL"));
}

TEST(ChildProcessTest, TheAgentsOtherVariablesDoNotReachTheStep) {
  ASSERT_EQ(setenv("FLOTILLA_TEST_SECRET_TOKEN", "visible-by-design", 1), 0);
  ASSERT_EQ(setenv("TEST_AGENT_SECRET", "hunter2", 1), 0);
  ASSERT_EQ(setenv("TEST_PASSED_ON", "kept", 1), 0);
  LaunchPolicy policy;
  policy.pass_env = {"TEST_PASSED_ON"};
  auto child = ChildProcess::spawn(ChildSpec{"env", {{"FLOTILLA_VERSION", "2.0.0"}}, ""}, policy);
  unsetenv("FLOTILLA_TEST_SECRET_TOKEN");
  unsetenv("TEST_AGENT_SECRET");
  unsetenv("TEST_PASSED_ON");
  ASSERT_TRUE(child.ok()) << child.status().toString();
  Collected c = collect(**child);
  std::map<std::string, std::string> env;
  for (const auto& line : c.lines) {
    auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  EXPECT_EQ(env.count("TEST_AGENT_SECRET"), 0u) << ::testing::PrintToString(c.lines);
  EXPECT_EQ(env["TEST_PASSED_ON"], "kept");
  EXPECT_EQ(env["FLOTILLA_VERSION"], "2.0.0");
  EXPECT_EQ(env["FLOTILLA_TEST_SECRET_TOKEN"], "visible-by-design");
  for (const auto& [k, v] : env) {
    // sh adds PWD, SHLVL and _ itself.
    bool allowed = isDefaultPassedName(k) || k == "TEST_PASSED_ON" || k == "PWD" || k == "SHLVL" ||
                   k == "_" || k == "OLDPWD";
    EXPECT_TRUE(allowed) << k << " reached the step";
  }
}

// ---- spawnShell: umask, output file, descriptors, sessions, --run-as ---------------------------

class SpawnShellTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.empty()); }
  // Runs `command` with output to dir_/out.log; returns that file's text once it exited.
  std::string runToFile(const std::string& command, const LaunchPolicy& policy,
                        bool new_session = false) {
    ShellLaunch launch;
    launch.command = command;
    launch.output_path = dir_ + "/out.log";
    launch.new_session = new_session;
    auto pid = spawnShell(launch, policy);
    EXPECT_TRUE(pid.ok()) << pid.status().toString();
    if (!pid.ok()) return "";
    int status = 0;
    waitpid(*pid, &status, 0);
    std::ifstream in(launch.output_path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  support::TempDir temp_{"spawn-test"};
  const std::string dir_ = temp_.path();
};

TEST_F(SpawnShellTest, OutputFileIsCreated0600AndAppended) {
  EXPECT_EQ(runToFile("echo one", LaunchPolicy{}), "one\n");
  EXPECT_EQ(runToFile("echo two >&2", LaunchPolicy{}), "one\ntwo\n");
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/out.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SpawnShellTest, ChildGetsThePolicysUmaskNotTheAgents) {
  mode_t was = umask(077);
  LaunchPolicy policy;
  policy.umask = 027;
  std::string out = runToFile("umask", policy);
  umask(was);
  EXPECT_EQ(out, "0027\n");
}

TEST_F(SpawnShellTest, OnlyStandardDescriptorsAreInherited) {
  int leaked = open("/dev/null", O_RDONLY);  // no O_CLOEXEC: a careless descriptor of the agent
  ASSERT_GE(leaked, 3);
  // `exec`: the shell becomes ls, which lists its own descriptors. (A pipeline would list the
  // shell's while it still held the pipes of the stages it was starting: a race.)
  std::string out = runToFile("exec ls -1 /proc/self/fd", LaunchPolicy{});
  close(leaked);
  // 0..2, plus the directory ls itself opens; never `leaked` (unless it is the one ls opened).
  EXPECT_EQ(out.rfind("0\n1\n2\n", 0), 0u) << out;
  EXPECT_LE(std::count(out.begin(), out.end(), '\n'), 4) << out;
}

TEST_F(SpawnShellTest, NewSessionOrOwnGroup) {
  std::string own = runToFile("ps -o pid=,pgid=,sid= -p $$", LaunchPolicy{});
  std::istringstream a(own);
  long pid = 0, pgid = 0, sid = 0;
  a >> pid >> pgid >> sid;
  EXPECT_EQ(pid, pgid) << own;
  EXPECT_NE(pid, sid) << own;
  std::filesystem::remove(dir_ + "/out.log");
  std::string session = runToFile("ps -o pid=,pgid=,sid= -p $$", LaunchPolicy{}, true);
  std::istringstream b(session);
  b >> pid >> pgid >> sid;
  EXPECT_EQ(pid, sid) << session;
}

TEST_F(SpawnShellTest, IgnoredSignalsAreResetInTheChild) {
  auto* was = signal(SIGPIPE, SIG_IGN);  // what the agent does
  std::string out = runToFile("grep SigIgn /proc/$$/status", LaunchPolicy{});
  signal(SIGPIPE, was);
  EXPECT_EQ(out, "SigIgn:\t0000000000000000\n");
}

TEST_F(SpawnShellTest, FailuresBeforeExecAreReportedWithTheirStep) {
  ShellLaunch launch;
  launch.command = "true";
  launch.output_path = dir_ + "/missing-dir/out.log";
  auto pid = spawnShell(launch, LaunchPolicy{});
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.status().message().find("open the output file"), std::string::npos)
      << pid.status().toString();
  launch.output_path = dir_ + "/out.log";
  launch.workdir = dir_ + "/nope";
  pid = spawnShell(launch, LaunchPolicy{});
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.status().message().find("enter the workdir " + dir_ + "/nope"), std::string::npos)
      << pid.status().toString();
}

TEST(RunAsTest, UnknownUserIsRefused) {
  auto user = resolveRunAs("flotilla-no-such-user");
  ASSERT_FALSE(user.ok());
  EXPECT_NE(user.status().message().find("no such user"), std::string::npos);
}

TEST(RunAsTest, ItselfIsAlwaysAllowed) {
  passwd* me = getpwuid(geteuid());
  ASSERT_NE(me, nullptr);
  auto user = resolveRunAs(me->pw_name);
  ASSERT_TRUE(user.ok()) << user.status().toString();
  EXPECT_EQ(user->uid, geteuid());
  EXPECT_EQ(user->home, me->pw_dir);
}

TEST_F(SpawnShellTest, RunAsNobodyDropsUidGidAndGroups) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  auto nobody = resolveRunAs("nobody");
  ASSERT_TRUE(nobody.ok()) << nobody.status().toString();
  EXPECT_NE(nobody->uid, 0u);
  LaunchPolicy policy;
  policy.run_as = *nobody;
  std::string out = runToFile("id -u; id -g; id -G; echo \"$HOME\"", policy);
  std::ostringstream want;
  want << nobody->uid << "\n" << nobody->gid << "\n";
  EXPECT_EQ(out.rfind(want.str(), 0), 0u) << out;
  EXPECT_EQ(out.find(" 0 "), std::string::npos) << "still in group root: " << out;
  EXPECT_NE(out.find("\n" + nobody->home + "\n"), std::string::npos) << out;
  // The output file was opened before the drop: it is the agent's, and private.
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/out.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(SpawnShellTest, RunAsNobodyCannotEnterAPrivateWorkdir) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  auto nobody = resolveRunAs("nobody");
  ASSERT_TRUE(nobody.ok());
  LaunchPolicy policy;
  policy.run_as = *nobody;
  std::filesystem::create_directory(dir_ + "/private");
  chmod((dir_ + "/private").c_str(), 0700);
  ShellLaunch launch;
  launch.command = "true";
  launch.output_path = dir_ + "/out.log";
  launch.workdir = dir_ + "/private";
  auto pid = spawnShell(launch, policy);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.status().message().find("as user nobody"), std::string::npos)
      << pid.status().toString();
}

}  // namespace
}  // namespace flotilla::agent
