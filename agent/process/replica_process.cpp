#include "agent/process/replica_process.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <vector>

#include "agent/child_process.hpp"

namespace flotilla::agent {

namespace fs = std::filesystem;

std::string endpoint(int port) { return std::string(kLoopback) + ":" + std::to_string(port); }

std::string url(int port, const std::string& path) { return "http://" + endpoint(port) + path; }

std::optional<char> procState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The name in parentheses may hold anything, ')' included: the state follows the last one.
  const size_t close = content.rfind(')');
  if (close == std::string::npos || close + 2 >= content.size()) return std::nullopt;
  return content[close + 2];
}

// The recorded process still runs: same pid, same start time, not a zombie. A zombie that is
// our child (a replica started by this agent process) is reaped here; the start-time check
// comes first so a reused pid that belongs to another child of the agent is never reaped.
bool alive(const Replica& r) {
  if (r.pid <= 1) return false;
  auto ticks = processStartTicks(r.pid);
  if (!ticks.ok() || *ticks != r.start_ticks) return false;
  auto state = procState(r.pid);
  if (!state || *state == 'Z' || *state == 'X') {
    int status = 0;
    ::waitpid(r.pid, &status, WNOHANG);
    return false;
  }
  return true;
}

void signalReplica(const Replica& r, int sig) {
  if (!alive(r)) return;
  // The replica leads its own session and group; its helpers, if any, go with it.
  if (::kill(-r.pid, sig) != 0) ::kill(r.pid, sig);
}

bool portFree(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  // Like the servers we start: a port in TIME_WAIT is usable, a listening one is not.
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

std::string lastLines(const fs::path& path, size_t n) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > 300) line = line.substr(0, 300) + "...";
    lines.push_back(line);
    if (lines.size() > n) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) out += (out.empty() ? "" : " | ") + l;
  return out;
}

}  // namespace flotilla::agent
