// One child process run with /bin/sh -c in its own process group, its
// stdout and stderr merged into one pipe, its exit watched through a pidfd.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace flotilla::agent {

struct ChildSpec {
  std::string command;                     // run with /bin/sh -c
  std::map<std::string, std::string> env;  // added to (and overriding) the agent's environment
  std::string workdir;                     // empty = the agent's
};

struct ChildExit {
  int exit_code = 0;             // when it exited
  int signal = 0;                // when a signal ended it (0 otherwise)
  std::string describe() const;  // "exit code 3", "killed by SIGKILL"
};

class ChildProcess {
 public:
  static common::StatusOr<std::unique_ptr<ChildProcess>> spawn(const ChildSpec& spec);
  ~ChildProcess();  // kills the group if still running, reaps, closes fds
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  int outputFd() const { return out_fd_; }  // -1 once the pipe is closed
  int exitFd() const { return pid_fd_; }    // readable when the child exited

  // Reads what the pipe holds now; complete lines go to `lines`. Closes the
  // pipe at EOF. Returns false once the pipe is closed.
  bool readOutput(std::vector<std::string>& lines);
  // Reaps the child if it exited. The first call that sees the exit returns it.
  std::optional<ChildExit> tryReap();
  // The partial last line, once the pipe is closed or the child is gone.
  std::string takePartialLine();
  // Sends `sig` to the whole process group.
  void signalGroup(int sig);
  bool exited() const { return exit_.has_value(); }
  void closeOutput();

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int pid_fd_ = -1;
  std::string partial_;
  std::optional<ChildExit> exit_;
};

// Start time of a process in clock ticks since boot (/proc/PID/stat field 22);
// with the PID it names one process for good, PIDs being reused.
common::StatusOr<uint64_t> processStartTicks(pid_t pid);

// Kills (SIGKILL) what is left of a step's process group from an earlier
// agent run: every process whose group is `pgid` and that started no earlier
// than the group leader did (`leader_start_ticks`), so a reused group id is
// never hit. Returns how many processes were killed.
int killLeftoverGroup(pid_t pgid, uint64_t leader_start_ticks);

}  // namespace flotilla::agent
