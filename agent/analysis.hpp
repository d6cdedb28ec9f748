// Metric analysis core: Prometheus text parsing, window statistics, canary verdicts, alerts,
// health-check failure counting. (/proc readings: agent/proc_stat.hpp.)
//
// Everything here is pure (no I/O, no clock), so the
// rules that decide a rollback are unit-tested on exact numbers. Scraped text is untrusted:
// the parser bounds what it accepts and reports a bad line instead of throwing.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/analysis_figures.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

// ---------------------------------------------------------------------------------------------
// Prometheus text exposition format 0.0.4

// A scrape larger than this is refused unread: a replica's /metrics is a few KiB, and the agent
// must not let one replica make it allocate without bound.
constexpr std::size_t kMaxExpositionBytes = 8u << 20;
constexpr std::size_t kMaxSamples = 100'000;
// A label pair costs ~110 bytes as a map node, so 8 MiB of `a="",` would expand twentyfold;
// these caps keep the parsed form within a few tens of MiB (five labels a sample on average).
constexpr std::size_t kMaxLabelsPerSample = 64;
constexpr std::size_t kMaxLabelPairs = 500'000;

using Labels = std::map<std::string, std::string>;

struct MetricSample {
  std::string name;
  Labels labels;
  double value = 0;                     // +Inf, -Inf and NaN are legal sample values
  std::optional<int64_t> timestamp_ms;  // present only when the line carries one
};
using MetricSamples = std::vector<MetricSample>;

// Parses a whole exposition. Comments, HELP/TYPE lines and blank lines are skipped (HELP/TYPE
// are checked for shape). Errors are InvalidArgument with "line N, column C: reason"; the
// offending text is never echoed back, since it is attacker-controlled.
common::StatusOr<MetricSamples> parsePrometheusText(std::string_view text);

// ---------------------------------------------------------------------------------------------
// Window statistics

// Which series carry requests and latency; the defaults are the Prometheus client conventions.
struct MetricNames {
  std::string requests_total = "http_requests_total";              // counter, one series per code
  std::string duration_seconds = "http_request_duration_seconds";  // histogram base name
  std::string code_label = "code";                                 // "500", "503", "5xx" = error
};

struct WindowStats {
  uint64_t requests = 0;                     // requests completed in the window, all codes
  uint64_t errors = 0;                       // of which 5xx
  double error_rate = 0;                     // errors / requests; 0 when there were no requests
  double request_rate = 0;                   // requests per second over the window
  std::optional<double> latency_p95;         // seconds; absent when the histogram saw nothing
  std::map<double, double> latency_buckets;  // upper bound (le) -> cumulative count in window
  std::chrono::nanoseconds window{0};
  int restarts = 0;  // replicas whose counters went backwards during the window
};

// Statistics of one replica between two scrapes taken `window` apart. A counter that went
// backwards means the process restarted, so every series of that replica counts its after
// value as the delta (not only the series that happened to decrease). Series that first
// appear in `after` count in full: client libraries create a code="500" series on the first
// error. Non-finite or negative counter values and duplicate series are Corruption.
common::StatusOr<WindowStats> computeWindowStats(const MetricSamples& before,
                                                 const MetricSamples& after,
                                                 std::chrono::nanoseconds window,
                                                 const MetricNames& names = {});

// Several replicas of one version over the same window: counts and bucket deltas are summed
// (p95 is recomputed from the merged buckets, never averaged), rates are summed, the window is
// the longest one. Assumes the replicas share one bucket layout, as Prometheus does.
WindowStats aggregate(const std::vector<WindowStats>& replicas);

// The q-quantile of a cumulative histogram, interpolated linearly inside the bucket the rank
// falls into, as Prometheus' histogram_quantile(). Absent without a +Inf bucket, with fewer
// than two buckets or with no observations; a rank in the +Inf bucket yields the highest
// finite bound.
std::optional<double> histogramQuantile(double q, const std::map<double, double>& buckets);

// ---------------------------------------------------------------------------------------------
// Canary analysis and alerts

enum class Verdict {
  kPass,          // enough data on both sides and no rule crossed
  kFail,          // at least one rule crossed: a rollback trigger
  kInconclusive,  // not enough data to judge; never treated as a pass
};
const char* verdictName(Verdict v);

struct Finding {
  std::string rule;      // "error_rate", "latency_p95", "min_requests", "cpu", "memory"
  double canary = 0;     // the measured value (for alerts: the watched version's)
  double baseline = 0;   // 0 when the rule has no baseline (cpu, memory, absolute error rate)
  double threshold = 0;  // the value `canary` was compared against
  bool crossed = false;
  std::string message;  // for people: "error rate 0.200 vs baseline 0.000: over the +50% limit"
};

struct AnalysisResult {
  Verdict verdict = Verdict::kInconclusive;
  std::vector<Finding> findings;  // every rule evaluated, crossed or not
};

struct AnalysisConfig {
  // Relative: fail when canary_rate > baseline_rate * (1 + error_rate_increase) ...
  double error_rate_increase = 0.5;
  // ... and canary_rate > min_error_rate. Without this floor a baseline with no errors would
  // make a single canary error a rollback; at or under 1% errors the relative rule never fails.
  double min_error_rate = 0.01;
  double latency_p95_ratio = 2.0;  // fail when canary_p95 > ratio * baseline_p95
  uint64_t min_requests = 20;      // per side; fewer makes the verdict inconclusive
};

// The thresholds analyze() holds the canary to, from the baseline's figures: the error rate
// over which it fails, and the p95 (seconds) over which it fails (absent without latency data
// on the baseline).
double errorRateLimit(const WindowStats& baseline, const AnalysisConfig& cfg);
std::optional<double> latencyP95Limit(const WindowStats& baseline, const AnalysisConfig& cfg);

// Compares the canary with the baseline over the same window. With too few requests only the
// "min_requests" finding is returned: rates from a handful of requests would mislead. A crossed
// rule wins over missing latency data (kFail); missing latency data alone is kInconclusive.
AnalysisResult analyze(const WindowStats& canary, const WindowStats& baseline,
                       const AnalysisConfig& cfg);

// The rules a failed analysis crossed, "; "-separated, for the step's message.
std::string crossedRules(const AnalysisResult& result);

// One measured set of a window, for the figures the agent reports.
struct MeasuredSet {
  std::string version;
  const WindowStats* stats = nullptr;
  size_t replicas = 0;  // measured; 0 when the figures come from Prometheus by version
};

// One analysis window's (bake slice's) figures for the coordinator (common/analysis_figures):
// the candidate's and, when there is one, the stable set's; the limits the analysis held them
// to and its verdict when `result` is given (a judged window), else none. The health streak is
// the caller's to add.
common::AnalysisFigures windowFigures(bool bake, int window, std::chrono::nanoseconds length,
                                      const MeasuredSet& candidate, const MeasuredSet* stable,
                                      const AnalysisConfig* config, const AnalysisResult* result);

// A rule is absent when the plan turned it off.
struct AlertConfig {
  std::optional<double> error_rate = 0.05;        // absolute
  std::optional<double> latency_p95_ratio = 2.0;  // against the baseline, when there is one
  std::optional<double> cpu = 0.9;                // share, as passed to checkAlerts
  std::optional<double> memory = 0.9;             // share of the host's memory
  // Error-rate and latency alerts need this many requests, so one failed request out of two
  // does not page anyone.
  uint64_t min_requests = 20;
};

// Only crossed thresholds are returned. `baseline` may be null (no stable version running);
// cpu and memory are shares in [0, 1], absent when they could not be read.
std::vector<Finding> checkAlerts(const WindowStats& stats, const WindowStats* baseline,
                                 const AlertConfig& cfg, std::optional<double> cpu,
                                 std::optional<double> memory);

// ---------------------------------------------------------------------------------------------
// Health checks

// Counts consecutive failed checks. The rule is "more than threshold": with threshold 3, three
// failures in a row are tolerated and the fourth triggers.
class ConsecutiveFailures {
 public:
  explicit ConsecutiveFailures(int threshold = 3);

  // Returns true exactly once per run of failures: on the failure that crosses the threshold.
  // A success ends the run.
  bool record(bool ok);
  int current() const { return current_; }
  void reset() { current_ = 0; }

 private:
  int threshold_;
  int current_ = 0;
};

}  // namespace flotilla::agent
