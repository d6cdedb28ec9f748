// HAProxy runtime API over the stats socket: one connection per command, answers classified.
#include "agent/haproxy.hpp"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <string_view>
#include <utility>

namespace flotilla::agent {

using common::Status;
using common::StatusOr;
using Clock = std::chrono::steady_clock;

namespace {

// Far above any answer Flotilla asks for; a bound so a confused peer cannot eat memory.
constexpr size_t kMaxAnswer = 16 << 20;
// How often a connect refused for a full listen backlog is retried.
constexpr int kBacklogRetryMs = 5;

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() { close(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

std::string errnoText(int err) { return std::strerror(err); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// HAProxy 2.6 has no status code on the CLI, only text. `set severity-output` would not help:
// it needs a second command on the line and tags `set server ... addr` failures as warnings.
// So the known error answers are listed here, matched on the answer's first line.
struct ErrorAnswer {
  std::string_view prefix;
  Status::Code code;
};
constexpr ErrorAnswer kErrorAnswers[] = {
    {"No such server.", Status::Code::kNotFound},
    {"No such backend.", Status::Code::kNotFound},
    {"Can't find backend.", Status::Code::kNotFound},  // show servers state
    {"Unknown command", Status::Code::kFailedPrecondition},
    {"Require ", Status::Code::kFailedPrecondition},  // "Require 'backend/server'."
    {"Permission denied", Status::Code::kFailedPrecondition},
    {"Absolute weight can only be", Status::Code::kFailedPrecondition},
    {"Relative weight", Status::Code::kFailedPrecondition},
    {"Empty weight string", Status::Code::kFailedPrecondition},
    {"Invalid addr", Status::Code::kFailedPrecondition},
};

Status errorFor(Status::Code code, std::string msg) {
  return code == Status::Code::kNotFound ? Status::NotFound(std::move(msg))
                                         : Status::FailedPrecondition(std::move(msg));
}

// OK, or the error HAProxy's answer stands for.
Status classifyAnswer(const std::string& cmd, std::string_view answer) {
  std::string_view text = trim(answer);
  std::string_view first = text.substr(0, text.find('\n'));
  auto refused = [&] { return "haproxy refused '" + cmd + "': " + std::string(text); };
  for (const auto& known : kErrorAnswers) {
    if (first.starts_with(known.prefix)) return errorFor(known.code, refused());
  }
  // Usage errors read "'set server <srv> state' expects 'ready', 'drain' and 'maint'."
  if (first.starts_with('\'') && first.find(" expects ") != std::string_view::npos) {
    return Status::FailedPrecondition(refused());
  }
  return Status::Ok();
}

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

Status validateName(const char* kind, const std::string& name) {
  if (name.empty()) return Status::InvalidArgument(std::string("empty haproxy ") + kind + " name");
  if (!std::all_of(name.begin(), name.end(), isNameChar)) {
    return Status::InvalidArgument(std::string("haproxy ") + kind + " name '" + name +
                                   "' has characters outside [A-Za-z0-9_.-]");
  }
  return Status::Ok();
}

StatusOr<std::string> serverRef(const std::string& backend, const std::string& server) {
  if (auto s = validateName("backend", backend); !s.ok()) return s;
  if (auto s = validateName("server", server); !s.ok()) return s;
  return backend + "/" + server;
}

// For commands whose success is an empty answer; anything else is a refusal we did not list.
Status expectEmpty(const std::string& cmd, const StatusOr<std::string>& answer) {
  if (!answer.ok()) return answer.status();
  std::string_view text = trim(*answer);
  if (!text.empty()) {
    return Status::FailedPrecondition("haproxy refused '" + cmd + "': " + std::string(text));
  }
  return Status::Ok();
}

std::vector<std::string_view> splitSpaces(std::string_view line) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t end = line.find(' ', pos);
    if (end == std::string_view::npos) end = line.size();
    if (end > pos) out.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

template <typename Int>
bool parseInt(std::string_view text, Int& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

}  // namespace

const char* serverStateName(ServerState state) {
  switch (state) {
    case ServerState::kReady:
      return "ready";
    case ServerState::kDrain:
      return "drain";
    case ServerState::kMaint:
      return "maint";
  }
  std::abort();  // every enumerator is handled above
}

ServerState ServerInfo::state() const {
  if (inMaintenance()) return ServerState::kMaint;
  if (draining()) return ServerState::kDrain;
  return ServerState::kReady;
}

bool ServerInfo::isFreeSlot() const {
  return inMaintenance() && address == kFreeSlotAddress && port == kFreeSlotPort;
}

HaproxyAdmin::HaproxyAdmin(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

StatusOr<std::string> HaproxyAdmin::command(const std::string& cmd) {
  if (trim(cmd).empty()) return Status::InvalidArgument("empty haproxy command");
  for (unsigned char c : cmd) {
    // HAProxy runs ';'-separated and line-separated commands one after the other, so either
    // would let a caller's string smuggle in a second command.
    if (c == ';' || c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument("haproxy command refused (';' or control character): '" + cmd +
                                     "'");
    }
  }
  auto answer = exchange(cmd);
  if (!answer.ok()) return answer.status();
  if (auto s = classifyAnswer(cmd, *answer); !s.ok()) return s;
  return answer;
}

StatusOr<std::string> HaproxyAdmin::exchange(const std::string& cmd) {
  const auto deadline = Clock::now() + timeout_;
  const std::string where = "haproxy socket " + socket_path_;

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.empty() || socket_path_.size() >= sizeof(addr.sun_path)) {
    return Status::InvalidArgument(where + ": path empty or longer than " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(where + ": socket: " + errnoText(errno));
  FdCloser closer(fd);

  // Waits until `fd` is ready for `events` or the command's deadline passes.
  auto waitFor = [&](short events, const char* what) -> Status {
    while (true) {
      pollfd p{fd, events, 0};
      int n = poll(&p, 1, remainingMs(deadline));
      if (n > 0) return Status::Ok();  // errors and hang-ups surface in the next call
      if (n == 0) {
        return Status::Unavailable(where + ": no " + what + " within " +
                                   std::to_string(timeout_.count()) + " ms");
      }
      if (errno != EINTR) return Status::IoError(where + ": poll: " + errnoText(errno));
    }
  };
  auto connectError = [&](int err) -> Status {
    // Missing, or a file nobody listens on: HAProxy is not running (yet, or any more).
    if (err == ENOENT || err == ECONNREFUSED) {
      return Status::Unavailable(where + ": connect: " + errnoText(err) + " (is haproxy running?)");
    }
    return Status::IoError(where + ": connect: " + errnoText(err));
  };

  while (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN) {
      // A unix socket says EAGAIN, not EINPROGRESS, when the listen backlog is full; it
      // cannot be polled for, so it is retried until the deadline.
      if (remainingMs(deadline) == 0) {
        return Status::Unavailable(where + ": connect: backlog full until the timeout");
      }
      poll(nullptr, 0, std::min(kBacklogRetryMs, remainingMs(deadline)));
      continue;
    }
    if (err == EINPROGRESS) {
      if (auto s = waitFor(POLLOUT, "connection"); !s.ok()) return s;
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
      if (so_error != 0) return connectError(so_error);
      break;
    }
    return connectError(err);
  }

  const std::string line = cmd + "\n";
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto s = waitFor(POLLOUT, "room to send"); !s.ok()) return s;
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      return Status::Unavailable(where + ": closed while sending: " + errnoText(errno));
    }
    return Status::IoError(where + ": send: " + errnoText(errno));
  }

  // Without `prompt`, HAProxy answers one command line and closes: EOF ends the answer.
  std::string answer;
  char buf[8192];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      answer.append(buf, static_cast<size_t>(n));
      if (answer.size() > kMaxAnswer) {
        std::string msg = where;
        msg += ": answer to '" + cmd + "' exceeds " + std::to_string(kMaxAnswer) + " bytes";
        return Status::IoError(std::move(msg));
      }
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto s = waitFor(POLLIN, "complete answer"); !s.ok()) return s;
      continue;
    }
    if (errno == ECONNRESET) {
      return Status::Unavailable(where + ": reset while reading: " + errnoText(errno));
    }
    return Status::IoError(where + ": recv: " + errnoText(errno));
  }
  return answer;
}

Status HaproxyAdmin::setServerAddress(const std::string& backend, const std::string& server,
                                      const std::string& address, int port) {
  auto ref = serverRef(backend, server);
  if (!ref.ok()) return ref.status();
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, address.c_str(), &v4) != 1 &&
      inet_pton(AF_INET6, address.c_str(), &v6) != 1) {
    return Status::InvalidArgument("haproxy server address '" + address +
                                   "' is not a numeric IPv4 or IPv6 address");
  }
  if (port < 1 || port > 65535) {
    return Status::InvalidArgument("haproxy server port " + std::to_string(port) +
                                   " is outside 1..65535");
  }
  const std::string cmd =
      "set server " + *ref + " addr " + address + " port " + std::to_string(port);
  auto answer = command(cmd);
  if (!answer.ok()) return answer.status();
  // Success is a report such as "IP changed from '127.0.0.1' to '::1', port changed from '1' to
  // '80' by 'stats socket command'" or "no need to change the addr, ...". Failures share the
  // sentence ("..., problem converting port ..."), so both halves are checked.
  std::string_view text = trim(*answer);
  bool reported = text.starts_with("IP changed from") || text.starts_with("no need to change");
  bool complained = text.find("problem") != std::string_view::npos ||
                    text.find("can't") != std::string_view::npos ||
                    text.find("Invalid") != std::string_view::npos;
  if (!reported || complained) {
    return Status::FailedPrecondition("haproxy refused '" + cmd + "': " + std::string(text));
  }
  return Status::Ok();
}

Status HaproxyAdmin::setServerState(const std::string& backend, const std::string& server,
                                    ServerState state) {
  auto ref = serverRef(backend, server);
  if (!ref.ok()) return ref.status();
  const std::string cmd = "set server " + *ref + " state " + serverStateName(state);
  return expectEmpty(cmd, command(cmd));
}

Status HaproxyAdmin::setWeight(const std::string& backend, const std::string& server, int weight) {
  auto ref = serverRef(backend, server);
  if (!ref.ok()) return ref.status();
  if (weight < 0 || weight > 256) {
    return Status::InvalidArgument("haproxy weight " + std::to_string(weight) +
                                   " is outside 0..256");
  }
  const std::string cmd = "set weight " + *ref + " " + std::to_string(weight);
  return expectEmpty(cmd, command(cmd));
}

Status HaproxyAdmin::releaseServer(const std::string& backend, const std::string& server) {
  if (auto s = setServerState(backend, server, ServerState::kMaint); !s.ok()) return s;
  if (auto s = setServerAddress(backend, server, kFreeSlotAddress, kFreeSlotPort); !s.ok()) {
    return s;
  }
  return setWeight(backend, server, 1);
}

StatusOr<std::vector<ServerInfo>> HaproxyAdmin::showServers(const std::string& backend) {
  if (auto s = validateName("backend", backend); !s.ok()) return s;
  const std::string cmd = "show servers state " + backend;
  auto answer = command(cmd);
  if (!answer.ok()) return answer.status();
  auto corrupt = [&](const std::string& why) {
    return Status::Corruption("haproxy '" + cmd + "': " + why);
  };

  std::string_view rest = *answer;
  auto nextLine = [&rest]() {
    size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    return line;
  };
  int version = 0;
  if (!parseInt(nextLine(), version)) return corrupt("no format version line");
  std::string_view header = nextLine();
  if (!header.starts_with('#')) return corrupt("no header line");
  // Columns are found by name: the format version may add or move columns.
  std::vector<std::string_view> names = splitSpaces(header.substr(1));
  std::map<std::string_view, size_t> column;
  for (size_t i = 0; i < names.size(); ++i) column.emplace(names[i], i);
  const char* kNeeded[] = {"srv_name",     "srv_addr",        "srv_port",
                           "srv_op_state", "srv_admin_state", "srv_uweight"};
  for (const char* name : kNeeded) {
    if (!column.contains(name)) return corrupt(std::string("no column ") + name);
  }

  std::vector<ServerInfo> servers;
  while (!rest.empty()) {
    std::string_view line = nextLine();
    if (trim(line).empty() || line.starts_with('#')) continue;  // '#' lines are comments
    std::vector<std::string_view> fields = splitSpaces(line);
    if (fields.size() != names.size()) {
      return corrupt("row has " + std::to_string(fields.size()) + " fields, header " +
                     std::to_string(names.size()) + ": " + std::string(line));
    }
    auto field = [&](const char* name) { return fields[column.at(name)]; };
    ServerInfo info;
    info.name = field("srv_name");
    info.address = field("srv_addr");
    int op_state = 0;
    if (!parseInt(field("srv_port"), info.port) || !parseInt(field("srv_op_state"), op_state) ||
        !parseInt(field("srv_admin_state"), info.admin_state) ||
        !parseInt(field("srv_uweight"), info.weight)) {
      return corrupt("non-numeric field in row: " + std::string(line));
    }
    if (op_state < 0 || op_state > static_cast<int>(OpState::kStopping)) {
      return corrupt("unknown srv_op_state " + std::to_string(op_state));
    }
    info.op_state = static_cast<OpState>(op_state);
    servers.push_back(std::move(info));
  }
  return servers;
}

StatusOr<std::vector<std::string>> HaproxyAdmin::freeServers(const std::string& backend) {
  auto servers = showServers(backend);
  if (!servers.ok()) return servers.status();
  std::vector<std::string> free;
  for (const auto& server : *servers) {
    if (server.isFreeSlot()) free.push_back(server.name);
  }
  return free;
}

}  // namespace flotilla::agent
