// Integration helpers for the process driver: one real HAProxy per cluster (config, stats socket
// and log in the test's dir), real HTTP traffic through it, and a free block of replica ports.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "integration/harness.hpp"

namespace flotilla::integration {

using SystemTime = std::chrono::system_clock::time_point;

// "2026-11-27T01:02:03.456Z" (the coordinator's event times) -> a time point; nullopt when the
// text is not in that form.
std::optional<SystemTime> parseRfc3339(const std::string& text);

// The first of `count` consecutive TCP ports on 127.0.0.1 that were all free a moment ago,
// from a random base below the kernel's ephemeral range (so that no outgoing connection takes
// one of them meanwhile); 0 when none was found.
int freePortBlock(int count);

// ---- HAProxy --------------------------------------------------------------------------------

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

// haproxy -f CFG -db for one cluster:
//   stats socket <dir>/<cluster>.sock (mode 600, level admin)
//   frontend on a free 127.0.0.1 port -> backend `backend` (roundrobin, 16 empty
//   server-template slots, no health checks); retries 3 + redispatch on connection failures
//   only (never on an HTTP 5xx); every request logged to <dir>/haproxy-<cluster>.log.
class Haproxy {
 public:
  // Writes the config and starts it; waits until the stats socket and the frontend answer.
  // Records a test failure and returns nullptr when it does not come up.
  static std::unique_ptr<Haproxy> start(const std::string& dir, const std::string& cluster,
                                        const std::string& backend);
  ~Haproxy();
  Haproxy(const Haproxy&) = delete;
  Haproxy& operator=(const Haproxy&) = delete;

  const std::string& cluster() const { return cluster_; }
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

  // SIGTERM by PID (SIGKILL after a grace period), reaped.
  void stop();

 private:
  Haproxy(std::string cluster, std::string backend, std::string socket_path, int port,
          std::unique_ptr<Process> process);

  std::string cluster_;
  std::string backend_;
  std::string socket_path_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

// ---- Traffic --------------------------------------------------------------------------------

// One request through a load balancer and what came back.
struct Answer {
  SystemTime sent;      // when the request was started (wall clock, to compare with events)
  long status = 0;      // 0: no HTTP answer at all (`error` says why)
  std::string version;  // from the body "checkout <version>" of a 200, else the X-Version header
  std::string error;    // transport error
  bool failed() const { return status != 200; }
  std::string describe() const;
};

// Counts over a set of answers.
struct Tally {
  size_t total = 0;
  size_t failed = 0;
  std::map<std::string, size_t> by_version;  // answered (any status) by each version
  std::vector<std::string> first_failures;   // up to 5, described
  size_t of(const std::string& version) const;
  // Share of the answers that came from `version` (0 with no answers).
  double share(const std::string& version) const;
  std::string describe() const;
};

Tally tally(const std::vector<Answer>& answers);
// Only the answers sent strictly inside (from, to).
Tally tallyBetween(const std::vector<Answer>& answers, SystemTime from, SystemTime to);

// `count` sequential requests to `url` on one connection.
std::vector<Answer> sendRequests(const std::string& url, int count);

// Keeps requests going to `url` from `workers` threads (each on its own keep-alive connection,
// at most one request per `pace`), recording every answer, until stop().
class TrafficGenerator {
 public:
  TrafficGenerator(std::string url, int workers, std::chrono::milliseconds pace);
  ~TrafficGenerator();
  TrafficGenerator(const TrafficGenerator&) = delete;
  TrafficGenerator& operator=(const TrafficGenerator&) = delete;

  void start();
  void stop();
  bool running() const { return !threads_.empty(); }
  // Every answer so far, ordered by sending time.
  std::vector<Answer> answers() const;
  size_t count() const;

 private:
  void work();

  const std::string url_;
  const int workers_;
  const std::chrono::milliseconds pace_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  std::vector<Answer> answers_;
};

}  // namespace flotilla::integration
