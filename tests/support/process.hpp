// Test support, processes: children the test owns by PID (spawned with their output in a log,
// stopped and reaped even when the test fails), commands run to completion, and what /proc says
// about any process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flotilla::support {

using namespace std::chrono_literals;

// A child process whose stdout and stderr go to a log file (opened for appending, with the
// command line as its first line). It dies with the test process (PR_SET_PDEATHSIG), and is
// stopped and reaped on destruction.
class Process {
 public:
  // argv[0] is the executable path; `env` is added to (and overrides) this process's environment.
  // nullptr (and a test failure) when it cannot be started.
  static std::unique_ptr<Process> spawn(std::string name, std::vector<std::string> argv,
                                        const std::map<std::string, std::string>& env,
                                        const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  const std::string& name() const { return name_; }
  const std::string& logPath() const { return log_path_; }
  pid_t pid() const { return pid_; }
  // False once the process exited (it is reaped then).
  bool running();
  // SIGTERM, up to `grace` for it to exit, then SIGKILL; reaps. Returns the wait status, or -1
  // when it was already reaped.
  int stop(std::chrono::milliseconds grace = 10s);
  // SIGKILL and reap.
  void kill();
  // Exit code once exited (128+signal for a signal), or -1 while running.
  int exitCode() const { return exit_code_; }

 private:
  Process(std::string name, pid_t pid, std::string log_path);
  void reaped(int status);

  std::string name_;
  pid_t pid_;
  std::string log_path_;
  bool reaped_ = false;
  int exit_code_ = -1;
};

struct CommandResult {
  int exit_code = -1;  // 128+signal when killed (also on timeout)
  std::string out;
  std::string err;
};

// Runs argv to completion (killed after `timeout`, a test failure), capturing exit code, stdout
// and stderr (through files in `scratch_dir`). `env` is added to (and overrides) this process's
// environment.
CommandResult runCommand(const std::vector<std::string>& argv, const std::string& scratch_dir,
                         std::chrono::milliseconds timeout,
                         const std::map<std::string, std::string>& env = {});

// ---- /proc ------------------------------------------------------------------------------------

// One process, from /proc/PID/stat.
struct ProcessInfo {
  pid_t pid = 0;
  char state = '?';  // R, S, D, Z, ...
  pid_t ppid = 0;
  pid_t pgid = 0;
};
// The pid of every process on the machine (a cheap listing of /proc).
std::vector<pid_t> allPids();
// Every process on the machine.
std::vector<ProcessInfo> allProcesses();
// Whether any process of process group `pgid` still runs (zombies do not count).
bool groupAlive(pid_t pgid);
// When the process started (field 22 of /proc/PID/stat, in clock ticks); nullopt when it is
// gone or a zombie. With the pid, it names one process: a reused pid has another start time.
std::optional<uint64_t> startTicksOf(pid_t pid);
// Its argv, from /proc/PID/cmdline (empty when it is gone).
std::vector<std::string> commandLineOf(pid_t pid);

}  // namespace flotilla::support
