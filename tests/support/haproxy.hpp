// Test support, a real HAProxy (Debian's /usr/sbin/haproxy, 2.6) for one test: its config,
// runtime admin socket and log in the test's directory, started in the foreground and owned by
// its PID, so that it is stopped even when the test fails.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace flotilla::support {

// One row of `show servers state BACKEND`.
struct HaproxyServer {
  std::string name;  // srvN
  std::string address;
  int port = 0;
  int op_state = 0;          // 2 = running
  uint32_t admin_state = 0;  // bits: 0x01/0x02/0x20 maintenance, 0x08/0x10 drain
  int weight = 0;            // srv_uweight

  // Takes new requests: not in maintenance, not draining, weight above 0.
  bool serving() const;
};

// haproxy -f <dir>/haproxy-<name>.cfg -db:
//   stats socket <dir>/<name>.sock (mode 600, level admin)
//   frontend on a free 127.0.0.1 port -> backend `backend` (roundrobin, `slots` empty
//   server-template slots srv1..srvN at 127.0.0.1:1, disabled, no health checks: Flotilla runs
//   those); retries 3 + redispatch on connection failures only (never on an HTTP 5xx, so the
//   test sees every bad answer); every request logged to <dir>/haproxy-<name>.log.
// Redispatch::kOff leaves a connection failure on the server it chose: a client sees every
// request sent to a replica that was stopped before it was drained (the driver's own tests).
class Haproxy {
 public:
  static constexpr int kDefaultSlots = 16;
  enum class Redispatch { kOn, kOff };

  // Writes the config and starts it; waits until the stats socket and the frontend answer.
  // Records a test failure and returns nullptr when it does not come up.
  static std::unique_ptr<Haproxy> start(const std::string& dir, const std::string& name,
                                        const std::string& backend, int slots = kDefaultSlots,
                                        Redispatch redispatch = Redispatch::kOn);
  ~Haproxy();
  Haproxy(const Haproxy&) = delete;
  Haproxy& operator=(const Haproxy&) = delete;

  const std::string& name() const { return name_; }
  const std::string& socketPath() const { return socket_path_; }
  const std::string& logPath() const { return process_->logPath(); }
  int port() const { return port_; }
  // http://127.0.0.1:PORT/
  std::string url() const;
  pid_t pid() const { return process_->pid(); }

  // One runtime API command (a fresh connection each time); the answer, or nullopt with
  // `error` set when the socket did not answer.
  std::optional<std::string> command(const std::string& line, std::string* error = nullptr);
  // `show servers state BACKEND`, parsed; nullopt when the socket did not answer.
  std::optional<std::vector<HaproxyServer>> servers();
  // The backend's servers, one line each, for a failure message.
  std::string describeServers();

  // SIGTERM by PID (SIGKILL after a grace period), reaped.
  void stop();

 private:
  Haproxy(std::string name, std::string backend, std::string socket_path, int port,
          std::unique_ptr<Process> process);

  std::string name_;
  std::string backend_;
  std::string socket_path_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace flotilla::support
