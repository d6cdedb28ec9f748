// Test support, processes.
#include "tests/support/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <thread>

#include "tests/support/files.hpp"

extern char** environ;

namespace flotilla::support {

namespace {

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

int exitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// fork + exec with stdin from /dev/null and stdout/stderr to the given fds. Everything is
// prepared before fork(): the test may run threads (HTTP servers, traffic). The child dies with
// this process (PR_SET_PDEATHSIG), so a test killed by ctest's timeout leaves nothing behind.
pid_t forkExec(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
               int out_fd, int err_fd) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::syscall(SYS_close_range, 3U, ~0U, 0U);
    ::execve(argp[0], argp.data(), envp.data());
    ::_exit(127);
  }
  if (null_fd >= 0) ::close(null_fd);
  return pid;
}

int openLog(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    ADD_FAILURE() << "cannot open " << path << ": " << std::strerror(errno);
  }
  return fd;
}

// The fields of /proc/PID/stat after "(comm)", from field 3 (state) on; comm may hold spaces
// and parentheses. Empty when the process is gone.
std::vector<std::string> statFields(const std::string& pid) {
  const std::string stat = readFile("/proc/" + pid + "/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return {};
  std::istringstream rest(stat.substr(close + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

}  // namespace

// ---- Process ----------------------------------------------------------------------------------

Process::Process(std::string name, pid_t pid, std::string log_path)
    : name_(std::move(name)), pid_(pid), log_path_(std::move(log_path)) {}

Process::~Process() { stop(); }

std::unique_ptr<Process> Process::spawn(std::string name, std::vector<std::string> argv,
                                        const std::map<std::string, std::string>& env,
                                        const std::string& log_path) {
  int log_fd = openLog(log_path);
  if (log_fd < 0) return nullptr;
  // A header line makes the log self-describing when a failure prints it.
  std::string header = "# " + joined(argv) + "\n";
  if (::write(log_fd, header.data(), header.size()) < 0) {
    ADD_FAILURE() << "cannot write " << log_path;
  }
  pid_t pid = forkExec(argv, env, log_fd, log_fd);
  ::close(log_fd);
  if (pid < 0) {
    ADD_FAILURE() << "fork failed for " << name << ": " << std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<Process>(new Process(std::move(name), pid, log_path));
}

void Process::reaped(int status) {
  reaped_ = true;
  exit_code_ = exitCodeOf(status);
}

bool Process::running() {
  if (reaped_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped(status);
    return false;
  }
  return true;
}

int Process::stop(std::chrono::milliseconds grace) {
  if (reaped_) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped(status);
      return status;
    }
    std::this_thread::sleep_for(10ms);
  }
  std::cerr << "[support] " << name_ << " ignored SIGTERM for " << grace.count()
            << " ms; sending SIGKILL\n";
  ::kill(pid_, SIGKILL);
  if (::waitpid(pid_, &status, 0) == pid_) reaped(status);
  return status;
}

void Process::kill() {
  if (reaped_) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  if (::waitpid(pid_, &status, 0) == pid_) reaped(status);
}

CommandResult runCommand(const std::vector<std::string>& argv, const std::string& scratch_dir,
                         std::chrono::milliseconds timeout,
                         const std::map<std::string, std::string>& env) {
  static int counter = 0;
  const std::string base = scratch_dir + "/cmd-" + std::to_string(++counter);
  CommandResult result;
  int out_fd = openLog(base + ".out");
  int err_fd = openLog(base + ".err");
  if (out_fd < 0 || err_fd < 0) return result;
  pid_t pid = forkExec(argv, env, out_fd, err_fd);
  ::close(out_fd);
  ::close(err_fd);
  if (pid < 0) {
    ADD_FAILURE() << "fork failed: " << std::strerror(errno);
    return result;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    if (::waitpid(pid, &status, WNOHANG) == pid) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ADD_FAILURE() << "command timed out after " << timeout.count() << " ms: " << joined(argv);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  result.exit_code = exitCodeOf(status);
  result.out = readFile(base + ".out");
  result.err = readFile(base + ".err");
  return result;
}

// ---- /proc ------------------------------------------------------------------------------------

std::vector<pid_t> allPids() {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (pid > 0 && *end == '\0') out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(proc);
  return out;
}

std::vector<ProcessInfo> allProcesses() {
  std::vector<ProcessInfo> out;
  for (pid_t pid : allPids()) {
    const std::vector<std::string> fields = statFields(std::to_string(pid));
    if (fields.size() < 3 || fields[0].empty()) continue;
    ProcessInfo p;
    p.pid = pid;
    p.state = fields[0][0];
    p.ppid = static_cast<pid_t>(std::strtol(fields[1].c_str(), nullptr, 10));
    p.pgid = static_cast<pid_t>(std::strtol(fields[2].c_str(), nullptr, 10));
    out.push_back(p);
  }
  return out;
}

bool groupAlive(pid_t pgid) {
  for (const auto& p : allProcesses()) {
    if (p.pgid == pgid && p.state != 'Z') return true;
  }
  return false;
}

std::optional<uint64_t> startTicksOf(pid_t pid) {
  const std::vector<std::string> fields = statFields(std::to_string(pid));
  if (fields.size() < 20 || fields[0] == "Z" || fields[0] == "X") return std::nullopt;
  return std::stoull(fields[19]);  // field 22, starttime
}

std::vector<std::string> commandLineOf(pid_t pid) {
  std::vector<std::string> argv;
  std::istringstream cmdline(readFile("/proc/" + std::to_string(pid) + "/cmdline"));
  for (std::string arg; std::getline(cmdline, arg, '\0');) argv.push_back(arg);
  return argv;
}

}  // namespace flotilla::support
