// unit_run against units written by the test: the process runs as User=/Group= with UMask=,
// NoNewPrivileges=, WorkingDirectory= and exactly systemd's environment, InaccessiblePaths= are
// hidden from it (and only from it), StateDirectory= is made,
// `start` twice is "active", stop signals the process group or (KillMode=process) the main
// process only, escalates to SIGKILL after TimeoutStopSec=, a unit that exits at once fails the
// start with its log, and a pidfile naming a reused PID is not taken for the unit. Root only.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

#ifndef FLOTILLA_UNIT_RUN_BIN
#error "FLOTILLA_UNIT_RUN_BIN must be defined by CMake"
#endif

namespace flotilla::support {
namespace {

namespace fs = std::filesystem;

// A field of /proc/PID/status ("Uid", "Umask", ...), its first word.
std::string statusField(pid_t pid, const std::string& field) {
  std::istringstream in(readFile("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream words(line.substr(field.size() + 1));
    std::string first;
    words >> first;
    return first;
  }
  return "";
}

std::set<std::string> environOf(pid_t pid) {
  std::set<std::string> out;
  std::istringstream in(readFile("/proc/" + std::to_string(pid) + "/environ"));
  for (std::string entry; std::getline(in, entry, '\0');) out.insert(entry);
  return out;
}

class UnitRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (User=, StateDirectory= under /var/lib)";
    // The unit runs as nobody: it must reach its files.
    fs::permissions(dir_.path(), fs::perms::owner_all | fs::perms::group_read |
                                     fs::perms::group_exec | fs::perms::others_read |
                                     fs::perms::others_exec);
    fs::create_directories(dir_.path() + "/lib");
    fs::create_directories(dir_.path() + "/etc");
    fs::create_directories(dir_.path() + "/work");
    state_name_ = "flotilla-unit-run-test-" + std::to_string(getpid());
    // The main process starts a child in its process group, writes its pid, and sleeps.
    writeFile(dir_.path() + "/service.sh",
              "#!/bin/sh\n"
              "trap \"${ON_TERM:-exit 0}\" TERM\n"
              "sleep 600 &\n"
              "echo $! > \"$1/child.pid\"\n"
              "while :; do sleep 0.1; done\n");
    fs::permissions(dir_.path() + "/service.sh",
                    fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                        fs::perms::others_read | fs::perms::others_exec);
    fs::permissions(dir_.path() + "/work", fs::perms::all);
  }
  void TearDown() override {
    if (geteuid() != 0) return;
    run({"stop", "demo.service"});
    // Whatever the unit left behind (KillMode=process leaves its child by design).
    const std::string child = trim(readFile(dir_.path() + "/work/child.pid"));
    if (!child.empty() && startTicksOf(std::stoi(child))) ::kill(std::stoi(child), SIGKILL);
    std::error_code ec;
    fs::remove_all("/var/lib/" + state_name_, ec);
  }

  void writeUnit(const std::string& service_lines) {
    writeFile(dir_.path() + "/lib/demo.service",
              "[Unit]\nDescription=unit_run test\n[Service]\n"
              "User=nobody\nGroup=nogroup\nUMask=0027\nNoNewPrivileges=yes\n"
              "WorkingDirectory=" +
                  dir_.path() +
                  "/work\n"
                  "StateDirectory=" +
                  state_name_ +
                  "\nStateDirectoryMode=0710\n"
                  "Environment=\"GREETING=hello world\" WORK=" +
                  dir_.path() +
                  "/work\n"
                  "ExecStart=" +
                  dir_.path() + "/service.sh ${WORK}\n" + service_lines);
  }

  CommandResult run(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {
        FLOTILLA_UNIT_RUN_BIN, "--run-dir",    dir_.path() + "/run", "--unit-dir",
        dir_.path() + "/lib",  "--dropin-dir", dir_.path() + "/etc"};
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(argv, dir_.path(), 30s, {{"LANG", "C.UTF-8"}});
  }

  pid_t mainPid() {
    const CommandResult shown = run({"show", "demo.service"});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    const size_t at = shown.out.find("MainPID=");
    return at == std::string::npos ? -1 : std::stoi(shown.out.substr(at + 8));
  }

  pid_t childPid() {
    const std::string path = dir_.path() + "/work/child.pid";
    EXPECT_TRUE(pollUntil([&] { return !trim(readFile(path)).empty(); }, 5s));
    const std::string text = trim(readFile(path));
    return text.empty() ? -1 : std::stoi(text);
  }

  TempDir dir_{"unit-run"};
  std::string state_name_;
};

TEST_F(UnitRunTest, RunsTheProcessAsTheUnitSaysAndStopsItsGroup) {
  writeUnit("");
  CommandResult started = run({"start", "demo.service"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  EXPECT_EQ(trim(started.out), "started");
  EXPECT_EQ(trim(run({"start", "demo.service"}).out), "active");
  const pid_t pid = mainPid();
  ASSERT_GT(pid, 0);
  EXPECT_NE(run({"show", "demo.service"}).out.find("ActiveState=active"), std::string::npos);

  const passwd* nobody = getpwnam("nobody");
  const group* nogroup = getgrnam("nogroup");
  ASSERT_NE(nobody, nullptr);
  ASSERT_NE(nogroup, nullptr);
  EXPECT_EQ(statusField(pid, "Uid"), std::to_string(nobody->pw_uid));
  EXPECT_EQ(statusField(pid, "Gid"), std::to_string(nogroup->gr_gid));
  EXPECT_EQ(statusField(pid, "Umask"), "0027");
  EXPECT_EQ(statusField(pid, "NoNewPrivs"), "1");
  EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(pid) + "/cwd"), dir_.path() + "/work");
  EXPECT_EQ(getsid(pid), pid);
  EXPECT_EQ(environOf(pid),
            (std::set<std::string>{
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                "USER=nobody", "LOGNAME=nobody", std::string("HOME=") + nobody->pw_dir,
                std::string("SHELL=") + nobody->pw_shell, "STATE_DIRECTORY=/var/lib/" + state_name_,
                "GREETING=hello world", "WORK=" + dir_.path() + "/work"}));
  struct stat st {};
  ASSERT_EQ(stat(("/var/lib/" + state_name_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0710u);
  EXPECT_EQ(st.st_uid, nobody->pw_uid);
  EXPECT_EQ(st.st_gid, nogroup->gr_gid);
  EXPECT_NE(readFile(dir_.path() + "/run/logs/demo.service.log")
                .find("unit_run start demo.service (" + dir_.path() + "/lib/demo.service): " +
                      dir_.path() + "/service.sh " + dir_.path() + "/work"),
            std::string::npos);

  // KillMode=control-group (the default): the whole process group goes.
  const pid_t child = childPid();
  ASSERT_GT(child, 0);
  const CommandResult stopped = run({"stop", "demo.service"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_FALSE(startTicksOf(pid).has_value());
  EXPECT_FALSE(startTicksOf(child).has_value());
  EXPECT_EQ(mainPid(), 0);
  EXPECT_FALSE(fileExists(dir_.path() + "/run/demo.service.pid"));
  EXPECT_EQ(trim(run({"stop", "demo.service"}).out), "inactive");
}

TEST_F(UnitRunTest, KillModeProcessStopsTheMainProcessOnly) {
  writeUnit("KillMode=process\n");
  ASSERT_EQ(run({"start", "demo.service"}).exit_code, 0);
  const pid_t pid = mainPid();
  const pid_t child = childPid();
  ASSERT_GT(child, 0);
  EXPECT_EQ(run({"stop", "demo.service"}).exit_code, 0);
  EXPECT_FALSE(startTicksOf(pid).has_value());
  EXPECT_TRUE(startTicksOf(child).has_value()) << "KillMode=process killed the unit's child";
}

TEST_F(UnitRunTest, SigkillAfterTimeoutStopSec) {
  // The main process ignores SIGTERM.
  writeUnit("Environment=ON_TERM=:\nTimeoutStopSec=1s\n");
  ASSERT_EQ(run({"start", "demo.service"}).exit_code, 0);
  const pid_t pid = mainPid();
  const auto before = std::chrono::steady_clock::now();
  const CommandResult stopped = run({"stop", "demo.service"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_GE(std::chrono::steady_clock::now() - before, 1s);
  EXPECT_NE(stopped.err.find("SIGKILL"), std::string::npos) << stopped.err;
  EXPECT_FALSE(startTicksOf(pid).has_value());
}

TEST_F(UnitRunTest, RestartStartsAStoppedUnitAndReplacesARunningOne) {
  writeUnit("");
  ASSERT_EQ(run({"restart", "demo.service"}).exit_code, 0);
  const pid_t first = mainPid();
  ASSERT_GT(first, 0);
  ASSERT_EQ(run({"restart", "demo.service"}).exit_code, 0);
  const pid_t second = mainPid();
  EXPECT_GT(second, 0);
  EXPECT_NE(first, second);
  EXPECT_FALSE(startTicksOf(first).has_value());
}

TEST_F(UnitRunTest, AUnitThatExitsAtOnceFailsTheStartWithItsLog) {
  writeFile(dir_.path() + "/lib/demo.service",
            "[Service]\nExecStart=/bin/sh -c 'echo cannot start: $$REASON; exit 3'\n"
            "Environment=REASON=broken\n");
  const CommandResult started = run({"start", "demo.service"});
  EXPECT_EQ(started.exit_code, 1);
  EXPECT_NE(started.err.find("exited at once (status 3)"), std::string::npos) << started.err;
  EXPECT_NE(started.err.find("cannot start: broken"), std::string::npos) << started.err;
  EXPECT_EQ(mainPid(), 0);

  // Refused before anything runs: a required EnvironmentFile= that is missing.
  writeFile(dir_.path() + "/lib/demo.service",
            "[Service]\nExecStart=/bin/true\nEnvironmentFile=/nonexistent/demo.env\n");
  const CommandResult refused = run({"start", "demo.service"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("/nonexistent/demo.env is missing"), std::string::npos) << refused.err;
}

TEST_F(UnitRunTest, InaccessiblePathsAreHiddenFromTheUnitOnly) {
  const std::string secrets = dir_.path() + "/secrets";
  fs::create_directories(secrets);
  writeFile(secrets + "/key", "secret\n");
  writeFile(dir_.path() + "/token", "secret\n");
  fs::permissions(secrets, fs::perms::all);
  fs::permissions(secrets + "/key", fs::perms::all);
  fs::permissions(dir_.path() + "/token", fs::perms::all);
  writeFile(dir_.path() + "/lib/demo.service",
            "[Service]\nUser=nobody\nEnvironment=D=" + dir_.path() +
                "\nInaccessiblePaths=" + secrets + " " + dir_.path() + "/token -/nonexistent/x\n" +
                "ExecStart=/bin/sh -c 'cat ${D}/secrets/key; echo dir=$?; cat ${D}/token; "
                "echo file=$?; exec sleep 600'\n");
  const CommandResult started = run({"start", "demo.service"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const std::string log = dir_.path() + "/run/logs/demo.service.log";
  ASSERT_TRUE(pollUntil([&] { return contains(readFile(log), "file="); }, 5s)) << readFile(log);
  EXPECT_NE(readFile(log).find("dir=1"), std::string::npos) << readFile(log);
  EXPECT_NE(readFile(log).find("file=1"), std::string::npos) << readFile(log);
  EXPECT_EQ(readFile(log).find("secret\n"), std::string::npos) << readFile(log);
  // The host still sees them: the mounts live in the unit's namespace.
  EXPECT_EQ(readFile(secrets + "/key"), "secret\n");
  EXPECT_EQ(readFile(dir_.path() + "/token"), "secret\n");
}

TEST_F(UnitRunTest, APidfileNamingAReusedPidIsNotTheUnit) {
  writeUnit("");
  fs::create_directories(dir_.path() + "/run");
  // This test's own pid, with another start time: some other process now holds that pid.
  writeFile(dir_.path() + "/run/demo.service.pid",
            std::to_string(getpid()) + " " + std::to_string(*startTicksOf(getpid()) + 1) + "\n");
  EXPECT_EQ(mainPid(), 0);
  EXPECT_EQ(trim(run({"start", "demo.service"}).out), "started");
  EXPECT_NE(mainPid(), getpid());
}

}  // namespace
}  // namespace flotilla::support
