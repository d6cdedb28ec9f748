// Test support, a real HAProxy for one test.
#include "tests/support/haproxy.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>

#include "tests/support/files.hpp"
#include "tests/support/net.hpp"
#include "tests/support/wait.hpp"

#ifndef FLOTILLA_HAPROXY_BIN
#error "FLOTILLA_HAPROXY_BIN must be defined by CMake"
#endif

namespace flotilla::support {

namespace {

constexpr auto kStartDeadline = 10s;
constexpr auto kSocketTimeout = 2s;

std::string haproxyConfig(const std::string& socket_path, int port, const std::string& backend,
                          int slots, Haproxy::Redispatch redispatch) {
  std::ostringstream cfg;
  cfg << "global\n"
      << "  stats socket " << socket_path << " mode 600 level admin\n"
      << "  stats timeout 10s\n"
      << "  log stdout format raw local0 info\n"
      << "defaults\n"
      << "  mode http\n"
      << "  log global\n"
      << "  option httplog\n"
      << "  timeout connect 1s\n"
      << "  timeout client 10s\n"
      << "  timeout server 10s\n"
      << "  timeout http-keep-alive 5s\n"
      << "  # Connection failures are retried (and sent elsewhere unless the test asked not to);\n"
      << "  # an HTTP 5xx is never retried, so the test sees every bad answer.\n"
      << "  retries 3\n"
      << (redispatch == Haproxy::Redispatch::kOn ? "  option redispatch\n" : "") << "frontend fe\n"
      << "  bind 127.0.0.1:" << port << "\n"
      << "  default_backend " << backend << "\n"
      << "backend " << backend << "\n"
      << "  balance roundrobin\n"
      << "  server-template srv 1-" << slots << " 127.0.0.1:1 disabled\n";
  return cfg.str();
}

}  // namespace

bool HaproxyServer::serving() const {
  constexpr uint32_t kMaint = 0x01 | 0x02 | 0x20;
  constexpr uint32_t kDrain = 0x08 | 0x10;
  return (admin_state & (kMaint | kDrain)) == 0 && weight > 0;
}

Haproxy::Haproxy(std::string name, std::string backend, std::string socket_path, int port,
                 std::unique_ptr<Process> process)
    : name_(std::move(name)),
      backend_(std::move(backend)),
      socket_path_(std::move(socket_path)),
      port_(port),
      process_(std::move(process)) {}

Haproxy::~Haproxy() { stop(); }

std::unique_ptr<Haproxy> Haproxy::start(const std::string& dir, const std::string& name,
                                        const std::string& backend, int slots,
                                        Redispatch redispatch) {
  if (::access(FLOTILLA_HAPROXY_BIN, X_OK) != 0) {
    ADD_FAILURE() << FLOTILLA_HAPROXY_BIN << " is missing (" << std::strerror(errno)
                  << "): HAProxy is a test dependency; run scripts/setup to install it "
                     "(Debian: haproxy)";
    return nullptr;
  }
  const std::string socket_path = dir + "/" + name + ".sock";
  const std::string config_path = dir + "/haproxy-" + name + ".cfg";
  // The frontend port must be written into the config; another test may take it between
  // freePort() and HAProxy's bind, so a start that fails is tried again on a fresh port.
  for (int attempt = 1; attempt <= 3; ++attempt) {
    const int port = freePort();
    if (port == 0) break;
    writeFile(config_path, haproxyConfig(socket_path, port, backend, slots, redispatch));
    std::string log_path = dir + "/haproxy-" + name;
    if (attempt > 1) log_path += "." + std::to_string(attempt);
    log_path += ".log";
    auto process = Process::spawn("haproxy " + name,
                                  {FLOTILLA_HAPROXY_BIN, "-f", config_path, "-db"}, {}, log_path);
    if (process == nullptr) return nullptr;
    std::unique_ptr<Haproxy> haproxy(
        new Haproxy(name, backend, socket_path, port, std::move(process)));
    const bool up = pollUntil(
        [&] {
          return !haproxy->process_->running() ||
                 (haproxy->command("show info").has_value() && tcpConnects(port));
        },
        kStartDeadline, 20ms);
    const bool exited = !haproxy->process_->running();
    if (up && !exited) return haproxy;
    std::cerr << "[haproxy] " << name << " did not come up on port " << port
              << (exited ? " (exited)" : "") << ":\n"
              << tailOf(haproxy->logPath(), 10);
    if (!exited) break;  // running but not answering: trying again would not help
  }
  ADD_FAILURE() << "HAProxy " << name << " did not come up (" << FLOTILLA_HAPROXY_BIN << " -f "
                << config_path << " -db)";
  return nullptr;
}

std::string Haproxy::url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }

std::optional<std::string> Haproxy::command(const std::string& line, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<std::string> {
    if (error != nullptr) *error = why + ": " + std::strerror(errno);
    return std::nullopt;
  };
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(addr.sun_path)) {
    ::close(fd);
    if (error != nullptr) *error = "socket path too long: " + socket_path_;
    return std::nullopt;
  }
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  timeval tv{};
  tv.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(kSocketTimeout).count();
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    auto r = fail("connect " + socket_path_);
    ::close(fd);
    return r;
  }
  const std::string out = line + "\n";
  if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
    auto r = fail("send");
    ::close(fd);
    return r;
  }
  // Without `prompt`, HAProxy answers one command and closes the connection.
  std::string answer;
  char buf[4096];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      auto r = fail("recv");
      ::close(fd);
      return r;
    }
    answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return answer;
}

std::optional<std::vector<HaproxyServer>> Haproxy::servers() {
  auto answer = command("show servers state " + backend_);
  if (!answer) return std::nullopt;
  std::vector<HaproxyServer> out;
  std::map<std::string, size_t> column;
  std::istringstream lines(*answer);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> fields;
    for (std::string w; words >> w;) fields.push_back(w);
    if (fields.empty()) continue;
    if (fields[0] == "#") {
      for (size_t i = 1; i < fields.size(); ++i) column[fields[i]] = i - 1;
      continue;
    }
    if (column.empty() || fields.size() < column.size()) continue;
    auto field = [&](const char* name) { return fields.at(column.at(name)); };
    HaproxyServer s;
    s.name = field("srv_name");
    s.address = field("srv_addr");
    s.port = std::stoi(field("srv_port"));
    s.op_state = std::stoi(field("srv_op_state"));
    s.admin_state = static_cast<uint32_t>(std::stoul(field("srv_admin_state")));
    s.weight = std::stoi(field("srv_uweight"));
    out.push_back(s);
  }
  return out;
}

std::string Haproxy::describeServers() {
  auto all = servers();
  if (!all) return "  (no answer from " + socket_path_ + ")\n";
  std::string table;
  for (const auto& s : *all) {
    table += "  " + s.name + " " + s.address + ":" + std::to_string(s.port) + " admin " +
             std::to_string(s.admin_state) + " weight " + std::to_string(s.weight) + "\n";
  }
  return table;
}

void Haproxy::stop() {
  if (process_) process_->stop(5s);
}

}  // namespace flotilla::support
