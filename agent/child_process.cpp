// Child processes for steps.
#include "agent/child_process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace flotilla::agent {

using common::Status;
using common::StatusOr;

namespace {
// A line longer than this is cut, so one runaway line cannot eat memory.
constexpr size_t kMaxLine = 4096;
}  // namespace

// ---- Environment and launch ------------------------------------------------------------

bool isDefaultPassedName(std::string_view name) {
  return name == "PATH" || name == "HOME" || name == "LANG" || name.rfind("FLOTILLA_", 0) == 0;
}

bool isValidEnvName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  auto word = [](char c) { return c == '_' || std::isalnum(static_cast<unsigned char>(c)); };
  return !std::isdigit(static_cast<unsigned char>(name[0])) &&
         std::all_of(name.begin(), name.end(), word);
}

std::vector<std::string> stepEnvironment(const LaunchPolicy& policy, const char* const* agent_env,
                                         const std::map<std::string, std::string>& ours) {
  std::map<std::string, std::string> env;
  for (const char* const* e = agent_env; e && *e; ++e) {
    std::string_view kv = *e;
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    std::string name(kv.substr(0, eq));
    bool passed =
        isDefaultPassedName(name) ||
        std::find(policy.pass_env.begin(), policy.pass_env.end(), name) != policy.pass_env.end();
    if (passed) env[name] = std::string(kv.substr(eq + 1));
  }
  if (policy.run_as) env["HOME"] = policy.run_as->home;
  for (const auto& [k, v] : ours) {
    if (k.rfind("FLOTILLA_", 0) == 0) env[k] = v;
  }
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

StatusOr<RunAsUser> resolveRunAs(const std::string& name) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) {
    return Status::IoError("--run-as " + name + ": cannot look the user up: " + strerror(rc));
  }
  if (found == nullptr) return Status::InvalidArgument("--run-as " + name + ": no such user");
  RunAsUser user{name, pw.pw_uid, pw.pw_gid, pw.pw_dir ? pw.pw_dir : "/", {}};
  if (geteuid() != 0 && user.uid != geteuid()) {
    return Status::InvalidArgument("--run-as " + name +
                                   ": only root can run steps as another user (this agent runs "
                                   "as uid " +
                                   std::to_string(geteuid()) + ")");
  }
  int count = 32;
  std::vector<gid_t> groups(static_cast<size_t>(count));
  while (getgrouplist(name.c_str(), user.gid, groups.data(), &count) < 0) {
    if (count > 65536) return Status::InvalidArgument("--run-as " + name + ": too many groups");
    groups.resize(static_cast<size_t>(count) * 2);
    count = static_cast<int>(groups.size());
  }
  groups.resize(static_cast<size_t>(count));
  user.groups = std::move(groups);
  return user;
}

namespace {

// What a child reports through its error pipe when a step before exec fails.
struct SpawnFailure {
  int stage = 0;  // index into kSpawnStages
  int error = 0;  // errno
};

constexpr const char* kSpawnStages[] = {"open /dev/null",  "open the output file",
                                        "redirect output", "start a process group",
                                        "set groups",      "set gid",
                                        "set uid",         "enter the workdir",
                                        "exec /bin/sh"};
enum SpawnStage {
  kDevNull,
  kOutputFile,
  kRedirect,
  kGroup,
  kSetGroups,
  kSetGid,
  kSetUid,
  kChdir,
  kExec
};

[[noreturn]] void reportAndExit(int report_fd, SpawnStage stage) {
  SpawnFailure f{stage, errno};
  ssize_t n = write(report_fd, &f, sizeof(f));
  (void)n;  // the parent sees a short report as "exec'd"; the exit code 127 still tells
  _exit(127);
}

// In the child: only async-signal-safe calls (the agent has other threads whose locks the fork
// copied). Never returns.
[[noreturn]] void childAfterFork(const ShellLaunch& launch, const LaunchPolicy& policy,
                                 const char* output_path, char* const argv[], char* const envp[],
                                 int report_fd) {
  auto fail = [report_fd](SpawnStage stage) { reportAndExit(report_fd, stage); };
  // Handlers are the agent's; ignored signals (SIGPIPE) would stay ignored across exec.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  int out = launch.output_fd;
  if (output_path != nullptr) {
    out = open(output_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (out < 0) fail(kOutputFile);
  }
  // An agent started with 0..2 closed may hold the output there: move it out of the way.
  if (out <= 2 && (out = fcntl(out, F_DUPFD_CLOEXEC, 3)) < 0) fail(kRedirect);
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in < 0) fail(kDevNull);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) fail(kRedirect);
  // dup2 onto itself keeps close-on-exec: clear it on 0..2 whatever they came from.
  for (int fd = 0; fd <= 2; ++fd) fcntl(fd, F_SETFD, 0);
  // Nothing else of the agent's (its sockets, its state files) reaches the step.
  if (report_fd > 3) syscall(SYS_close_range, 3u, static_cast<unsigned>(report_fd - 1), 0u);
  syscall(SYS_close_range, static_cast<unsigned>(report_fd + 1), ~0u, 0u);

  if (launch.new_session ? setsid() < 0 : setpgid(0, 0) != 0) fail(kGroup);
  umask(policy.umask);
  if (policy.run_as) {
    // Raw system calls: glibc's wrappers would try to reach the agent's other threads, which
    // the fork left behind. Groups first, the uid last (it takes the right to change the rest).
    const RunAsUser& u = *policy.run_as;
    if (syscall(SYS_setgroups, u.groups.size(), u.groups.data()) != 0) fail(kSetGroups);
    if (syscall(SYS_setresgid, u.gid, u.gid, u.gid) != 0) fail(kSetGid);
    if (syscall(SYS_setresuid, u.uid, u.uid, u.uid) != 0) fail(kSetUid);
  }
  if (!launch.workdir.empty() && chdir(launch.workdir.c_str()) != 0) fail(kChdir);
  execve("/bin/sh", argv, envp);
  reportAndExit(report_fd, kExec);
}

}  // namespace

StatusOr<pid_t> spawnShell(const ShellLaunch& launch, const LaunchPolicy& policy) {
  // Everything the child needs is built here: after fork it may not allocate.
  std::vector<std::string> env_strings = stepEnvironment(policy, environ, launch.env);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", command = launch.command;
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};
  const char* output_path = launch.output_path.empty() ? nullptr : launch.output_path.c_str();
  if (output_path == nullptr && launch.output_fd < 0) {
    return Status::InvalidArgument("spawnShell: no output given");
  }

  // The child writes why it failed here; a successful exec closes it (close-on-exec) unread.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0)
    return Status::IoError(std::string("pipe: ") + strerror(errno));
  if (report[1] <= 2) {  // 0..2 become the child's stdio: keep the report end above them
    int moved = fcntl(report[1], F_DUPFD_CLOEXEC, 3);
    close(report[1]);
    if (moved < 0) {
      close(report[0]);
      return Status::IoError(std::string("fcntl: ") + strerror(errno));
    }
    report[1] = moved;
  }
  // No agent signal handler may run in the child before it resets them.
  sigset_t all, was;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &was);
  pid_t pid = fork();
  if (pid == 0) {
    close(report[0]);
    childAfterFork(launch, policy, output_path, argv, envp.data(), report[1]);
  }
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &was, nullptr);
  close(report[1]);
  if (pid < 0) {
    close(report[0]);
    return Status::IoError(std::string("fork: ") + strerror(fork_errno));
  }
  SpawnFailure failure;
  ssize_t n;
  do {
    n = read(report[0], &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  if (n != static_cast<ssize_t>(sizeof(failure))) return pid;  // exec'd (end of file)
  int status = 0;
  waitpid(pid, &status, 0);
  std::string what = failure.stage >= 0 && failure.stage <= kExec ? kSpawnStages[failure.stage]
                                                                  : "start the process";
  if (failure.stage == kChdir) what += " " + launch.workdir;
  if (failure.stage == kOutputFile) what += " " + launch.output_path;
  if (policy.run_as && failure.stage >= kSetGroups) what += " as user " + policy.run_as->name;
  return Status::IoError("cannot " + what + ": " + strerror(failure.error));
}

// ---- One step's child ---------------------------------------------------------------------

std::string ChildExit::describe() const {
  if (signal != 0) {
    const char* name = sigabbrev_np(signal);
    return std::string("killed by SIG") + (name ? name : std::to_string(signal));
  }
  return "exit code " + std::to_string(exit_code);
}

StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::spawn(const ChildSpec& spec,
                                                            const LaunchPolicy& policy) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    return Status::IoError(std::string("pipe: ") + strerror(errno));
  }
  ShellLaunch launch;
  launch.command = spec.command;
  launch.env = spec.env;
  launch.workdir = spec.workdir;
  launch.output_fd = pipefd[1];
  auto pid = spawnShell(launch, policy);
  close(pipefd[1]);
  if (!pid.ok()) {
    close(pipefd[0]);
    return pid.status();
  }
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = *pid;
  child->out_fd_ = pipefd[0];
  fcntl(child->out_fd_, F_SETFL, fcntl(child->out_fd_, F_GETFL) | O_NONBLOCK);
  // Through syscall(): glibc 2.36 declares pidfd_open without C linkage for C++.
  child->pid_fd_ = static_cast<int>(syscall(SYS_pidfd_open, *pid, 0));
  if (child->pid_fd_ < 0) {
    int err = errno;
    child->signalGroup(SIGKILL);
    return Status::IoError(std::string("pidfd_open: ") + strerror(err));
  }
  return child;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_) {
    signalGroup(SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  closeOutput();
  if (pid_fd_ >= 0) close(pid_fd_);
}

void ChildProcess::closeOutput() {
  if (out_fd_ >= 0) {
    close(out_fd_);
    out_fd_ = -1;
  }
}

bool ChildProcess::readOutput(std::vector<std::string>& lines) {
  if (out_fd_ < 0) return false;
  char buf[8192];
  while (true) {
    ssize_t n = read(out_fd_, buf, sizeof(buf));
    if (n > 0) {
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] == '\n') {
          lines.push_back(std::move(partial_));
          partial_.clear();
        } else if (partial_.size() < kMaxLine) {
          partial_.push_back(buf[i]);
        }
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    closeOutput();  // EOF or a read error: nothing more will come
    return false;
  }
}

std::string ChildProcess::takePartialLine() {
  std::string out = std::move(partial_);
  partial_.clear();
  return out;
}

std::optional<ChildExit> ChildProcess::tryReap() {
  if (exit_ || pid_ <= 0) return std::nullopt;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r != pid_) return std::nullopt;
  ChildExit e;
  if (WIFEXITED(status)) e.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    e.signal = WTERMSIG(status);
    e.exit_code = 128 + e.signal;
  }
  exit_ = e;
  return e;
}

namespace {

struct ProcStatFields {
  pid_t pgrp = 0;
  uint64_t start_ticks = 0;
};

std::optional<ProcStatFields> readStatFields(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name may hold spaces and parentheses: fields resume after the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  std::string field;
  while (rest >> field) fields.push_back(field);
  // fields[0] is field 3 (state): the group is field 5, the start time field 22.
  if (fields.size() < 20) return std::nullopt;
  try {
    return ProcStatFields{static_cast<pid_t>(std::stol(fields[2])), std::stoull(fields[19])};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

StatusOr<uint64_t> processStartTicks(pid_t pid) {
  auto stat = readStatFields("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return Status::NotFound("no process " + std::to_string(pid));
  return stat->start_ticks;
}

int killLeftoverGroup(pid_t pgid, uint64_t leader_start_ticks) {
  if (pgid <= 1) return 0;
  int killed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto stat = readStatFields(entry.path().string() + "/stat");
    if (!stat || stat->pgrp != pgid || stat->start_ticks < leader_start_ticks) continue;
    if (kill(static_cast<pid_t>(std::stol(name)), SIGKILL) == 0) ++killed;
  }
  return killed;
}

void ChildProcess::signalGroup(int sig) {
  if (pid_ > 0) kill(-pid_, sig);
}

}  // namespace flotilla::agent
