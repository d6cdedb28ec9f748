// Test support, HTTP traffic through a load balancer: every answer with the version that gave
// it (a flotilla-demo-service body "checkout <version>", else the X-Version header), counts over
// answers, and clients that keep requests going while a rollout runs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/events.hpp"

namespace flotilla::support {

// One request and what came back.
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
  std::map<long, size_t> by_status;          // by HTTP status (0: no answer)
  std::vector<std::string> first_failures;   // up to 5, described
  size_t of(const std::string& version) const;
  size_t withStatus(long status) const;
  // Share of the answers that came from `version` (0 with no answers).
  double share(const std::string& version) const;
  std::string describe() const;
};

Tally tally(const std::vector<Answer>& answers);
// Only the answers sent strictly inside (from, to).
Tally tallyBetween(const std::vector<Answer>& answers, SystemTime from, SystemTime to);

// `count` sequential requests to `url` on one keep-alive connection (HAProxy in HTTP mode
// balances every request, not every connection, so reuse does not skew the shares).
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

}  // namespace flotilla::support
