// Child processes for steps.
#include "agent/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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

std::string ChildExit::describe() const {
  if (signal != 0) {
    const char* name = sigabbrev_np(signal);
    return std::string("killed by SIG") + (name ? name : std::to_string(signal));
  }
  return "exit code " + std::to_string(exit_code);
}

StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::spawn(const ChildSpec& spec) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    return Status::IoError(std::string("pipe: ") + strerror(errno));
  }
  // Environment: the agent's own, then the step's variables over it.
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : spec.env) env[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  std::string sh = "/bin/sh", dash_c = "-c", command = spec.command;
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull >= 0) posix_spawn_file_actions_adddup2(&actions, devnull, 0);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
  if (!spec.workdir.empty()) posix_spawn_file_actions_addchdir_np(&actions, spec.workdir.c_str());

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own process group: a timeout or abort kills everything the step started.
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  pid_t pid = -1;
  int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (devnull >= 0) close(devnull);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    return Status::IoError(std::string("cannot start /bin/sh: ") + strerror(rc));
  }
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = pid;
  child->out_fd_ = pipefd[0];
  fcntl(child->out_fd_, F_SETFL, fcntl(child->out_fd_, F_GETFL) | O_NONBLOCK);
  // Through syscall(): glibc 2.36 declares pidfd_open without C linkage for C++.
  child->pid_fd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
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
