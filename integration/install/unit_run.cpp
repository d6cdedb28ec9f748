// unit_run: starts, stops and shows an installed systemd service unit the way systemd would, for
// machines where systemd is not PID 1 (CI containers). It reads the INSTALLED unit file, its
// drop-ins and environment files (tests/support/systemd_unit.hpp), creates StateDirectory=,
// drops to User=/Group= with the unit's UMask= and NoNewPrivileges=, hides InaccessiblePaths= in
// a mount namespace of its own, and runs ExecStart with exactly the environment systemd would
// give it. Other sandboxing (ProtectSystem=, PrivateTmp=, system call filters...) is not applied.
// Test support, not shipped; it is the Ansible roles' service-command seam
// (flotilla_*_service_command):
//
//   unit_run --run-dir DIR [--unit-dir D] [--dropin-dir D] start|stop|restart|show UNIT
//
//   start    prints "active" when UNIT already runs, else starts it and prints "started" (exit
//            1 with its log's tail when it exits within 0.5 s)
//   stop     SIGTERM (to the main process with KillMode=process, else to its process group),
//            SIGKILL after TimeoutStopSec=; nothing when it is not running
//   restart  stop, then start (also starts a stopped unit)
//   show     MainPID=N (0 when not running) and ActiveState=active|inactive
//
// DIR/UNIT.pid holds "PID STARTTICKS" (a reused PID has another start time); DIR/logs/UNIT.log
// gets the process's stdout and stderr, appended.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/systemd_unit.hpp"

namespace {

namespace fs = std::filesystem;
using flotilla::common::Status;
using flotilla::common::StatusOr;
using flotilla::support::ServiceUnit;
using flotilla::support::UnitDirs;
using namespace std::chrono_literals;

constexpr auto kStartCheck = 500ms;  // a process still running after this counts as started
constexpr auto kKillWait = 5s;       // after SIGKILL

struct Options {
  std::string run_dir;
  UnitDirs dirs;
  std::string command;
  std::string unit;
};

// The process a pidfile names, when it still runs (same start time, not a zombie).
struct MainProcess {
  pid_t pid = 0;
  uint64_t start_ticks = 0;
};

std::string pidFile(const Options& o) { return o.run_dir + "/" + o.unit + ".pid"; }
std::string logFile(const Options& o) { return o.run_dir + "/logs/" + o.unit + ".log"; }

std::optional<MainProcess> runningMain(const Options& o) {
  std::istringstream in(flotilla::support::readFile(pidFile(o)));
  MainProcess main;
  if (!(in >> main.pid >> main.start_ticks) || main.pid <= 0) return std::nullopt;
  const std::optional<uint64_t> now = flotilla::support::startTicksOf(main.pid);
  if (!now || *now != main.start_ticks) return std::nullopt;
  return main;
}

bool alive(const MainProcess& main) {
  const std::optional<uint64_t> now = flotilla::support::startTicksOf(main.pid);
  return now && *now == main.start_ticks;
}

// The user and group the unit runs as.
struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::optional<flotilla::support::Account> account;  // set with User=
};

StatusOr<Credentials> credentialsOf(const ServiceUnit& unit) {
  Credentials out;
  const std::string user = unit.user.empty() ? "root" : unit.user;
  const passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr) return Status::NotFound(unit.name.full + ": User=" + user + " does not exist");
  out.uid = pw->pw_uid;
  out.gid = pw->pw_gid;
  if (!unit.user.empty())
    out.account = flotilla::support::Account{pw->pw_name, pw->pw_dir, pw->pw_shell};
  if (!unit.group.empty()) {
    const group* gr = getgrnam(unit.group.c_str());
    if (gr == nullptr) {
      return Status::NotFound(unit.name.full + ": Group=" + unit.group + " does not exist");
    }
    out.gid = gr->gr_gid;
  }
  return out;
}

// StateDirectory= as systemd makes it: missing parents root-owned 0755, the directory itself
// with StateDirectoryMode= when missing, and owned by the unit's user (fixed recursively when
// it is not).
Status makeStateDirectories(const ServiceUnit& unit, const Credentials& creds) {
  for (const std::string& relative : unit.state_directories) {
    const fs::path dir = fs::path("/var/lib") / relative;
    std::error_code ec;
    fs::create_directories(dir.parent_path(), ec);
    if (ec)
      return Status::IoError("cannot create " + dir.parent_path().string() + ": " + ec.message());
    if (!fs::exists(dir)) {
      if (mkdir(dir.c_str(), unit.state_directory_mode) != 0 ||
          chmod(dir.c_str(), unit.state_directory_mode) != 0) {
        return Status::IoError("cannot create " + dir.string() + ": " + std::strerror(errno));
      }
    }
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) return Status::IoError("cannot stat " + dir.string());
    if (st.st_uid == creds.uid && st.st_gid == creds.gid) continue;
    if (lchown(dir.c_str(), creds.uid, creds.gid) != 0) {
      return Status::IoError("cannot chown " + dir.string() + ": " + std::strerror(errno));
    }
    for (const auto& entry : fs::recursive_directory_iterator(dir, ec)) {
      if (lchown(entry.path().c_str(), creds.uid, creds.gid) != 0) {
        return Status::IoError("cannot chown " + entry.path().string() + ": " +
                               std::strerror(errno));
      }
    }
  }
  return Status::Ok();
}

// In the child, before exec: the error goes to the log (stderr), exit 127 as a failed exec.
[[noreturn]] void die(const std::string& what) {
  const std::string line = "unit_run: " + what + ": " + std::strerror(errno) + "\n";
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, line.data(), line.size());
  _exit(127);
}

// The nodes bound over InaccessiblePaths=, as systemd's /run/systemd/inaccessible/: a directory
// and a file with mode 0000, owned by root.
struct InaccessibleNodes {
  std::string dir;
  std::string file;
};

StatusOr<InaccessibleNodes> makeInaccessibleNodes(const std::string& run_dir) {
  InaccessibleNodes nodes{run_dir + "/inaccessible/dir", run_dir + "/inaccessible/reg"};
  std::error_code ec;
  fs::create_directories(nodes.dir, ec);
  if (!ec && !fs::exists(nodes.file)) std::ofstream(nodes.file).close();
  if (ec || chmod(nodes.dir.c_str(), 0) != 0 || chmod(nodes.file.c_str(), 0) != 0) {
    return Status::IoError("cannot make the inaccessible nodes under " + run_dir);
  }
  return nodes;
}

// In the child: a mount namespace of its own where each path is covered by an empty node with
// mode 0000, read-only (systemd's InaccessiblePaths=). Mounts do not leak to the host.
void hidePaths(const ServiceUnit& unit, const InaccessibleNodes& nodes) {
  if (unit.inaccessible_paths.empty()) return;
  if (unshare(CLONE_NEWNS) != 0) die("unshare(CLONE_NEWNS) for InaccessiblePaths=");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    die("mount --make-rprivate /");
  for (const flotilla::support::OptionalPath& path : unit.inaccessible_paths) {
    struct stat st {};
    if (lstat(path.path.c_str(), &st) != 0) {
      if (path.optional && errno == ENOENT) continue;
      die("InaccessiblePaths=" + path.path);
    }
    const std::string& node = S_ISDIR(st.st_mode) ? nodes.dir : nodes.file;
    if (mount(node.c_str(), path.path.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
        mount(nullptr, path.path.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) !=
            0) {
      die("hiding " + path.path);
    }
  }
}

// In the child: never returns.
[[noreturn]] void execUnit(const ServiceUnit& unit, const Credentials& creds,
                           const std::string& workdir, const std::vector<std::string>& argv,
                           const flotilla::support::Environment& env, int log_fd,
                           const InaccessibleNodes& nodes) {
  if (setsid() < 0) die("setsid");
  const int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
      dup2(log_fd, STDERR_FILENO) < 0) {
    die("redirecting stdin/stdout/stderr");
  }
  // Nothing else of ours leaks into the service (systemd passes no other descriptors).
  if (close_range(3, ~0U, 0) != 0) die("close_range");
  hidePaths(unit, nodes);
  umask(unit.umask);
  if (creds.account) {
    if (initgroups(creds.account->name.c_str(), creds.gid) != 0) die("initgroups");
  } else if (setgroups(0, nullptr) != 0) {
    die("setgroups");
  }
  if (setgid(creds.gid) != 0) die("setgid");
  if (setuid(creds.uid) != 0) die("setuid");
  if (chdir(workdir.c_str()) != 0) die("chdir " + workdir);
  if (unit.no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    die("PR_SET_NO_NEW_PRIVS");
  }
  std::vector<std::string> env_strings;
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (std::string& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);
  execve(argp[0], argp.data(), envp.data());
  die("execve " + argv[0]);
}

std::string now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

int start(const Options& o) {
  if (runningMain(o)) {
    std::cout << "active\n";
    return 0;
  }
  StatusOr<ServiceUnit> unit = flotilla::support::loadServiceUnit(o.unit, o.dirs);
  if (!unit.ok()) {
    std::cerr << "unit_run: " << unit.status().message() << "\n";
    return 1;
  }
  StatusOr<flotilla::support::Environment> own = flotilla::support::unitEnvironment(*unit);
  StatusOr<Credentials> creds = own.ok() ? credentialsOf(*unit) : own.status();
  if (!creds.ok()) {
    std::cerr << "unit_run: " << creds.status().message() << "\n";
    return 1;
  }
  const char* lang = std::getenv("LANG");
  const flotilla::support::Environment env = flotilla::support::execEnvironment(
      *unit, *own, creds->account, lang ? std::optional<std::string>(lang) : std::nullopt);
  // systemd expands ExecStart with the whole environment (USER, HOME... too).
  StatusOr<std::vector<std::string>> argv =
      flotilla::support::expandExecStart(unit->exec_start, env);
  if (!argv.ok()) {
    std::cerr << "unit_run: " << o.unit << ": " << argv.status().message() << "\n";
    return 1;
  }
  if (Status s = makeStateDirectories(*unit, *creds); !s.ok()) {
    std::cerr << "unit_run: " << o.unit << ": " << s.message() << "\n";
    return 1;
  }
  std::string workdir = unit->working_directory.empty() ? "/" : unit->working_directory;
  if (workdir == "~") workdir = creds->account ? creds->account->home : "/root";
  if (!fs::is_directory(workdir)) {
    if (!unit->working_directory_optional) {
      std::cerr << "unit_run: " << o.unit << ": WorkingDirectory=" << workdir << " is missing\n";
      return 1;
    }
    workdir = "/";
  }

  StatusOr<InaccessibleNodes> nodes = makeInaccessibleNodes(o.run_dir);
  if (!nodes.ok()) {
    std::cerr << "unit_run: " << nodes.status().message() << "\n";
    return 1;
  }
  std::error_code ec;
  fs::create_directories(o.run_dir + "/logs", ec);
  const int log_fd = open(logFile(o).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (ec || log_fd < 0) {
    std::cerr << "unit_run: cannot open " << logFile(o) << "\n";
    return 1;
  }
  std::string header =
      "== " + now() + " unit_run start " + o.unit + " (" + unit->files.front() + "):";
  for (const std::string& arg : *argv) header += " " + arg;
  header += "\n";
  [[maybe_unused]] ssize_t written = write(log_fd, header.data(), header.size());

  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = fork();
  if (pid < 0) {
    std::cerr << "unit_run: fork: " << std::strerror(errno) << "\n";
    return 1;
  }
  if (pid == 0) execUnit(*unit, *creds, workdir, *argv, env, log_fd, *nodes);
  close(log_fd);

  const std::optional<uint64_t> ticks = flotilla::support::startTicksOf(pid);
  {
    std::ofstream out(pidFile(o), std::ios::trunc);
    out << pid << " " << (ticks ? *ticks : 0) << "\n";
  }
  const auto deadline = std::chrono::steady_clock::now() + kStartCheck;
  int status = 0;
  pid_t reaped = 0;
  while (std::chrono::steady_clock::now() < deadline && reaped == 0) {
    std::this_thread::sleep_for(20ms);
    reaped = waitpid(pid, &status, WNOHANG);
  }
  if (reaped == pid || !ticks) {
    fs::remove(pidFile(o), ec);
    std::cerr << "unit_run: " << o.unit << " exited at once ("
              << (WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status))
                                    : "signal " + std::to_string(WTERMSIG(status)))
              << "); the end of " << logFile(o) << ":\n"
              << flotilla::support::tailOf(logFile(o), 20);
    return 1;
  }
  std::cout << "started\n";
  return 0;
}

int stop(const Options& o) {
  const std::optional<MainProcess> main = runningMain(o);
  std::error_code ec;
  if (!main) {
    fs::remove(pidFile(o), ec);
    std::cout << "inactive\n";
    return 0;
  }
  // The unit file may already be gone (a purge): systemd would still stop it, with defaults.
  flotilla::support::KillMode mode = flotilla::support::KillMode::kControlGroup;
  std::chrono::milliseconds timeout = 90s;
  StatusOr<ServiceUnit> unit = flotilla::support::loadServiceUnit(o.unit, o.dirs);
  if (unit.ok()) {
    mode = unit->kill_mode;
    timeout = unit->timeout_stop;
  } else {
    std::cerr << "unit_run: " << unit.status().message() << " (stopping with the defaults)\n";
  }
  // The main process leads its own session and process group (setsid at start).
  const pid_t group = -main->pid;
  const bool whole_group = mode == flotilla::support::KillMode::kControlGroup;
  auto gone = [&] {
    return !alive(*main) && (!whole_group || !flotilla::support::groupAlive(main->pid));
  };
  kill(whole_group ? group : main->pid, SIGTERM);
  const auto started = std::chrono::steady_clock::now();
  while (!gone() && std::chrono::steady_clock::now() - started < timeout) {
    std::this_thread::sleep_for(50ms);
  }
  if (!gone()) {
    std::cerr << "unit_run: " << o.unit << " did not stop within TimeoutStopSec: SIGKILL\n";
    kill(mode == flotilla::support::KillMode::kProcess ? main->pid : group, SIGKILL);
    const auto killed = std::chrono::steady_clock::now();
    while (!gone() && std::chrono::steady_clock::now() - killed < kKillWait) {
      std::this_thread::sleep_for(50ms);
    }
  }
  fs::remove(pidFile(o), ec);
  if (!gone()) {
    std::cerr << "unit_run: " << o.unit << " (pid " << main->pid << ") survived SIGKILL\n";
    return 1;
  }
  std::cout << "stopped\n";
  return 0;
}

int show(const Options& o) {
  const std::optional<MainProcess> main = runningMain(o);
  std::cout << "MainPID=" << (main ? main->pid : 0) << "\n"
            << "ActiveState=" << (main ? "active" : "inactive") << "\n";
  return 0;
}

int usage() {
  std::cerr << "usage: unit_run --run-dir DIR [--unit-dir /lib/systemd/system] "
               "[--dropin-dir /etc/systemd/system] start|stop|restart|show UNIT\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    std::optional<std::string> v;
    if (arg == "--run-dir" && (v = value())) {
      o.run_dir = *v;
    } else if (arg == "--unit-dir" && (v = value())) {
      o.dirs.unit_dir = *v;
    } else if (arg == "--dropin-dir" && (v = value())) {
      o.dirs.dropin_dir = *v;
    } else if (!arg.empty() && arg[0] == '-') {
      return usage();
    } else {
      positional.push_back(arg);
    }
  }
  if (o.run_dir.empty() || positional.size() != 2) return usage();
  o.command = positional[0];
  o.unit = positional[1];
  if (!flotilla::support::parseUnitName(o.unit).ok() || o.unit.find('/') != std::string::npos) {
    std::cerr << "unit_run: " << o.unit << " is not a NAME.service unit\n";
    return 2;
  }
  std::error_code ec;
  fs::create_directories(o.run_dir, ec);
  // One unit_run at a time per unit (a restart is a stop and a start).
  const std::string lock_path = o.run_dir + "/" + o.unit + ".lock";
  const int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX) != 0) {
    std::cerr << "unit_run: cannot lock " << lock_path << "\n";
    return 1;
  }
  if (o.command == "start") return start(o);
  if (o.command == "stop") return stop(o);
  if (o.command == "show") return show(o);
  if (o.command == "restart") {
    const int stopped = stop(o);
    return stopped != 0 ? stopped : start(o);
  }
  return usage();
}
