// flotilla-demo-service behaviour: per-version fault injection (errors, latency, failing health)
// and the Prometheus metrics it exposes, kept free of HTTP so tests can drive it directly.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.hpp"

namespace flotilla::demo {

using common::Status;
using common::StatusOr;
using Milliseconds = std::chrono::milliseconds;
using Nanoseconds = std::chrono::nanoseconds;
using SteadyTime = std::chrono::steady_clock::time_point;
using SystemTime = std::chrono::system_clock::time_point;

// "Health never fails": the default of --health-fail-after.
inline constexpr Milliseconds kNever = Milliseconds::max();
// Upper bound for every configured delay, so a typo cannot park a request for days.
inline constexpr Milliseconds kMaxDelay = std::chrono::hours(1);

// How one version misbehaves. The defaults are a healthy service.
struct Behaviour {
  double error_rate = 0.0;                 // share of `/` requests answered 500, in [0, 1]
  Milliseconds latency{0};                 // added to every `/` request
  Milliseconds latency_jitter{0};          // +- around `latency`, deterministic per request
  Milliseconds health_fail_after{kNever};  // since start; 0 = failing from the start
};

// A partial Behaviour: what a manifest or the command line sets. Unset fields fall through.
struct BehaviourOverrides {
  std::optional<double> error_rate;
  std::optional<Milliseconds> latency;
  std::optional<Milliseconds> latency_jitter;
  std::optional<Milliseconds> health_fail_after;  // kNever allowed
};

// "500ms", "5s", "2m", "1h": a non-negative integer and a unit, nothing else.
StatusOr<Milliseconds> parseDuration(std::string_view text);
// parseDuration, plus "never" (kNever).
StatusOr<Milliseconds> parseFailAfter(std::string_view text);

// The manifest is a JSON object with any of: error_rate (number), latency_ms,
// latency_jitter_ms (integers), health_fail_after_ms (integer, or null for never).
// Unknown keys are rejected: a misspelt key would otherwise ship a "bad" version that behaves
// well, and the test using it would pass for the wrong reason.
StatusOr<BehaviourOverrides> parseManifest(std::string_view json_text);
StatusOr<BehaviourOverrides> loadManifest(const std::string& path);

// Defaults, then the manifest, then the flags: the last one that sets a field wins.
Behaviour resolveBehaviour(const BehaviourOverrides& manifest, const BehaviourOverrides& flags);
Status validateBehaviour(const Behaviour& behaviour);
// 1..128 characters of [A-Za-z0-9._+-] (the plan's rule): it goes into a header, a JSON body and a
// metric label.
Status validateVersion(std::string_view version);

// Decides which `/` requests fail, from the request's index alone (0, 1, 2, ...). The rate is
// held in parts per million and the decision is integer arithmetic: after n requests exactly
// floor(n * rate) have failed, so 0.2 fails exactly 20 of every 100 (requests 4, 9, 14, ...)
// and any window of n consecutive requests fails floor or ceil of n * rate. Deterministic, so a
// test can assert exact counts where a random draw could only be checked statistically.
class ErrorSpreader {
 public:
  explicit ErrorSpreader(double rate);
  bool fails(uint64_t index) const { return failuresBefore(index + 1) > failuresBefore(index); }
  // How many of the requests 0..n-1 fail.
  uint64_t failuresBefore(uint64_t n) const;

 private:
  static constexpr uint64_t kPartsPerMillion = 1'000'000;
  uint64_t ppm_;
};

// The delay for request `index`: latency plus a jitter in [-jitter, +jitter] drawn from a hash
// of the index (same index, same delay; no shared random state between threads), never
// negative.
Nanoseconds delayFor(const Behaviour& behaviour, uint64_t index);

// Request durations in the Prometheus histogram layout. Bounds are whole microseconds and
// compared as integers, so a duration of exactly 5ms lands in le="0.005" (le is inclusive).
class LatencyHistogram {
 public:
  static constexpr std::array<int64_t, 10> kBoundsMicros = {
      5'000, 10'000, 25'000, 50'000, 100'000, 250'000, 500'000, 1'000'000, 2'500'000, 5'000'000};
  // One label per finite bound, then +Inf.
  static constexpr std::array<const char*, 11> kBoundLabels = {
      "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"};

  void observe(Nanoseconds duration);
  // Cumulative count for bucket i (kBoundLabels[i]); the last one equals count().
  uint64_t cumulative(std::size_t bucket) const;
  uint64_t count() const { return count_; }
  double sumSeconds() const { return static_cast<double>(sum_ns_) / 1e9; }

 private:
  std::array<uint64_t, 11> per_bucket_{};  // not cumulative; the last is (5s, +Inf)
  uint64_t count_ = 0;
  int64_t sum_ns_ = 0;
};

// Time seam: tests advance a fake clock instead of sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime now() const = 0;
  virtual SystemTime wallNow() const = 0;
  virtual void sleepFor(Nanoseconds duration) const = 0;
};

class RealClock : public Clock {
 public:
  // Interface
  SteadyTime now() const override;
  SystemTime wallNow() const override;
  void sleepFor(Nanoseconds duration) const override;
};

// What a handler answers; the HTTP layer copies it out and adds the X-Version header.
struct Response {
  int status = 200;
  std::string content_type;
  std::string body;
};

inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// One running service. Thread-safe: the HTTP server calls the handlers from its thread pool.
class Service {
 public:
  // `start` for health-fail-after and process_start_time_seconds is the construction time.
  Service(std::string version, Behaviour behaviour, const Clock& clock);

  const std::string& version() const { return version_; }
  const Behaviour& behaviour() const { return behaviour_; }

  // GET /: sleeps the configured delay, then 200 "checkout <version>\n" or an injected 500.
  Response handleRoot();
  // GET /health: 200 {"status":"ok",...} until health_fail_after has passed, then 503.
  Response handleHealth() const;
  // GET /metrics: Prometheus text format 0.0.4.
  Response handleMetrics() const;
  std::string metricsText() const;

 private:
  const std::string version_;
  const Behaviour behaviour_;
  const Clock& clock_;
  const SteadyTime started_;
  const SystemTime started_wall_;
  const ErrorSpreader spreader_;
  std::atomic<uint64_t> next_index_{0};

  mutable std::mutex mu_;  // guards the metrics below, so a scrape sees one consistent state
  uint64_t ok_total_ = 0;
  uint64_t error_total_ = 0;
  LatencyHistogram histogram_;
};

}  // namespace flotilla::demo
