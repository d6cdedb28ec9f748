// How the agent starts every process it runs for a plan (script steps and process-driver
// replicas): the one environment merge, the one fork-and-exec with --run-as, and one child
// process run with /bin/sh -c in its own process group, its stdout and stderr merged into one
// pipe, its exit watched through a pidfd.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"

namespace flotilla::agent {

// The user steps run as (--run-as USER), looked up once at agent start.
struct RunAsUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  // Supplementary groups, read at start: initgroups() reads /etc/group through NSS, which is not
  // safe in the child of a multi-threaded process, so the child only calls setgroups().
  std::vector<gid_t> groups;
};

// Looks USER up. Refused when the user does not exist, or when this process is not root and USER
// is not the user it already runs as.
common::StatusOr<RunAsUser> resolveRunAs(const std::string& name);

// How every step and replica is started; fixed at agent start from its flags.
struct LaunchPolicy {
  std::vector<std::string> pass_env;  // --pass-env: names passed on beyond the defaults
  std::optional<RunAsUser> run_as;    // --run-as: drop to this user before exec
  mode_t umask = 022;                 // the children's umask (the agent's own is 077)
};

// Names every step gets from the agent's environment: PATH, HOME, LANG and FLOTILLA_*.
bool isDefaultPassedName(std::string_view name);
// An environment variable name a flag may give: [A-Za-z_][A-Za-z0-9_]*, at most 128 bytes.
bool isValidEnvName(std::string_view name);

// THE environment of a step or replica, as "NAME=value" sorted by name: from `agent_env` (the
// agent's environ) only the default names and `policy.pass_env`; with --run-as, HOME is that
// user's home; then `ours` (the FLOTILLA_* variables of the command) over all of it. Names in
// `ours` outside FLOTILLA_* are dropped: a coordinator never sets PATH, LD_PRELOAD and the like.
std::vector<std::string> stepEnvironment(const LaunchPolicy& policy, const char* const* agent_env,
                                         const std::map<std::string, std::string>& ours);

// One process to start with /bin/sh -c COMMAND.
struct ShellLaunch {
  std::string command;
  std::map<std::string, std::string> env;  // FLOTILLA_* for stepEnvironment()
  std::string workdir;                     // entered after dropping privileges; empty = the agent's
  int output_fd = -1;                      // stdout and stderr go to this descriptor, or else
  std::string output_path;   // appended to this file (created 0600 before privileges drop)
  bool new_session = false;  // setsid (outlives the agent) instead of a new process group
};

// The one place the agent starts a child: stdin from /dev/null, every other descriptor closed,
// default signal dispositions and an empty mask, `policy.umask`, its own process group (or
// session), then the user of `policy.run_as` (groups, gid, uid), the workdir, and exec. Returns
// once the exec happened; a failure of any step before it is an error naming that step.
common::StatusOr<pid_t> spawnShell(const ShellLaunch& launch, const LaunchPolicy& policy);

struct ChildSpec {
  std::string command;  // run with /bin/sh -c
  std::map<std::string, std::string>
      env;              // FLOTILLA_* variables, over the agent's (stepEnvironment)
  std::string workdir;  // empty = the agent's
};

struct ChildExit {
  int exit_code = 0;             // when it exited
  int signal = 0;                // when a signal ended it (0 otherwise)
  std::string describe() const;  // "exit code 3", "killed by SIGKILL"
};

class ChildProcess {
 public:
  static common::StatusOr<std::unique_ptr<ChildProcess>> spawn(const ChildSpec& spec,
                                                               const LaunchPolicy& policy = {});
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
