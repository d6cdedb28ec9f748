// Abuse limits of the HTTP API: what keeps slow, idle, streaming or greedy clients from
// starving everyone else (issue 10, "Abuse limits").
//
// cpp-httplib 0.11 serves a connection on one task-queue thread from accept() to close, and
// gives no hook between the two: a client that connects and sends nothing, or sends its
// headers a byte at a time, holds its thread. So:
//   - HttpWorkers: one thread per connection, grown on demand up to a hard cap and shrunk
//     when idle (a fixed pool of 16 was stopped by 16 idle sockets).
//   - ConnectionWatch: a watchdog that lists the API's open connections (the process's
//     sockets whose local port is the API's), and shuts down those that have not delivered
//     a whole request head within the header deadline (TLS handshake included) and those
//     over the per-client cap. A request whose head arrived is marked by the pre-routing
//     handler (markRouted) and is then the route's business.
//   - StreamSlots: event streams, the only long requests, are counted and capped (503).
//   - RateLimiter: per-token token bucket (429).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/log_limit.hpp"
#include "coordinator/metrics.hpp"

namespace httplib {
class TaskQueue;
}

namespace flotilla::coordinator {

struct HttpLimits {
  int min_threads = 8;        // kept even when idle
  int max_connections = 512;  // threads, so connections served at once; more wait
  int per_client = 64;        // connections without a request head yet, per client address
  std::chrono::milliseconds header_deadline{10000};   // connect -> whole request head
  std::chrono::milliseconds request_deadline{60000};  // head -> answered (event streams: none)
  int keep_alive_seconds = 2;                         // wait for a request's first byte
  int max_streams = 256;                              // event streams open at once
  int streams_per_token = 16;                         // event streams open at once per API token
  double rate_per_second = 100;                       // requests per token; 0 = no limit
  double rate_burst = 200;
};

// cpp-httplib 0.11 listens with a backlog of 5: a burst of connections (300 idle sockets)
// fills it, and every later client, authorised or not, waits for SYN-ACK retransmissions
// (seconds). This sets the backlog of the listening socket on `port` (found among the
// process's sockets) to `backlog`; false when there is none.
bool widenListenBacklog(int port, int backlog);

// A TaskQueue for httplib::Server::new_task_queue: each job (a connection) gets a thread.
// Threads above `min_threads` exit after 30 s without work; at `max_threads` jobs wait.
std::unique_ptr<httplib::TaskQueue> makeHttpWorkers(int min_threads, int max_threads);

// Counts open event streams; acquire() fails (answer 503) over the total or per-key cap.
class StreamSlots {
 public:
  StreamSlots(int total, int per_key) : total_(total), per_key_(per_key) {}
  class Slot {
   public:
    Slot(StreamSlots* owner, std::string key) : owner_(owner), key_(std::move(key)) {}
    ~Slot();
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    StreamSlots* owner_;
    std::string key_;
  };
  // A held slot, or nullptr when the caps are reached.
  std::shared_ptr<Slot> acquire(const std::string& key);
  int open() const;

 private:
  mutable std::mutex mu_;
  int total_;
  int per_key_;
  int open_ = 0;
  std::map<std::string, int> by_key_;
};

// Token bucket per key (an API token's name). allow() is false when the key's bucket is
// empty; `retry_after` then says when one request will be allowed again.
class RateLimiter {
 public:
  RateLimiter(double per_second, double burst) : rate_(per_second), burst_(burst) {}
  static constexpr size_t kMaxBuckets = 4096;
  bool allow(const std::string& key, std::chrono::steady_clock::time_point now,
             std::chrono::milliseconds* retry_after);

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point at;
  };
  std::mutex mu_;
  double rate_;
  double burst_;
  std::map<std::string, Bucket> buckets_;
};

// The watchdog over the API's open connections (see the top of this file).
class ConnectionWatch {
 public:
  ConnectionWatch(Metrics& metrics, const HttpLimits& limits);
  ~ConnectionWatch();
  ConnectionWatch(const ConnectionWatch&) = delete;
  ConnectionWatch& operator=(const ConnectionWatch&) = delete;

  // Starts watching the sockets whose local port is `port` (once bound).
  void start(int port);
  void stop();
  // The pre-routing handler saw a whole request head from this peer ("ip", port): the header
  // deadline no longer applies, the request deadline does.
  void markRouted(const std::string& ip, int port);
  // The request became an event stream (capped by StreamSlots): no deadline.
  void markStreaming(const std::string& ip, int port);
  // One pass (the watchdog runs it every second); public for tests.
  void sweep(std::chrono::steady_clock::time_point now);

 private:
  struct Seen {
    std::chrono::steady_clock::time_point since;  // first seen by a sweep
    std::chrono::steady_clock::time_point routed_at{};
    bool routed = false;
    bool streaming = false;
    bool cut = false;
  };
  struct Mark {
    bool routed = false;
    bool streaming = false;
    uint64_t sweep = 0;  // the first sweep that found no connection for it
  };
  void loop();

  Metrics& metrics_;
  HttpLimits limits_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::map<ino_t, Seen> seen_;         // by socket inode
  std::map<std::string, Mark> marks_;  // by peer "ip|port", until a sweep applies them
  uint64_t sweeps_ = 0;
  LogLimiter log_limit_{std::chrono::seconds(60)};  // the sweep's thread only
  std::thread thread_;
};

}  // namespace flotilla::coordinator
