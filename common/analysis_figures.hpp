// The figures of one analysis window (or bake slice) of one cluster: what the agent measured,
// the thresholds it held them against, the window's verdict and the health streak. The agent
// sends them (schema Figures), the coordinator checks them, keeps the last per cluster and logs
// each window as a `cluster.analysis` event, the CLI shows them. The checks, the JSON form and
// the one-line summary are here, once, for all three.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "common/status.hpp"

namespace flotilla::common {

// Bounds of what a peer may say (the agent's own figures stay far within them).
// Windows in one step: a day's bake in 30 s slices is 2,880; the bound also caps the
// cluster.analysis events one stage can cause (a stage's windows only go forward).
constexpr uint32_t kMaxFiguresWindow = 10'000;
constexpr double kMaxFiguresSeconds = 86'400;  // a p95 or a limit over a day is nonsense

// One replica set over the window.
struct SetFigures {
  std::string version;
  uint64_t requests = 0;              // completed in the window, all codes
  double request_rate = 0;            // requests per second
  double error_rate = 0;              // 5xx share of the requests, 0..1
  std::optional<double> latency_p95;  // seconds; absent when the histogram saw nothing
  uint32_t replicas = 0;              // replicas measured

  bool operator==(const SetFigures&) const = default;
};

enum class WindowVerdict {
  kNone,          // a bake slice without analysis (health and alerts only)
  kPass,          // enough data on both sides and no rule crossed
  kFail,          // a rule crossed
  kInconclusive,  // too few requests or no latency data: never a pass
};
const char* windowVerdictName(WindowVerdict v);
std::optional<WindowVerdict> windowVerdictFromName(const std::string& name);

struct AnalysisFigures {
  bool bake = false;                 // false: a window of an analyze step; true: a slice of a bake
  uint32_t window = 0;               // 1-based within the step
  uint64_t window_ms = 0;            // its length
  SetFigures candidate;              // the new version
  std::optional<SetFigures> stable;  // the old set; absent when there is none to compare with
  // The thresholds in force, as the analysis rules compute them from the stable set.
  std::optional<double> error_rate_limit;   // share; absent when no analysis rule applied
  std::optional<double> latency_p95_limit;  // seconds; absent when not known
  uint64_t min_requests = 0;                // per set and window
  WindowVerdict verdict = WindowVerdict::kNone;
  uint32_t health_checks = 0;     // checks so far in the step
  uint32_t health_failing = 0;    // consecutive failures now (the worst replica's)
  uint32_t health_threshold = 0;  // failures in a row tolerated
  // Not on the wire: the coordinator's strategy step of the stage (1-based among the wave's
  // traffic shifts; 0 = none), so that "analysis 2/3" survives the cluster moving on.
  int strategy_step = 0;
  int strategy_steps = 0;

  bool operator==(const AnalysisFigures&) const = default;
};

// InvalidArgument naming the first field that is not acceptable from a peer: a version that
// common/rules refuses, a rate or a latency that is not finite or is negative, a share over 1,
// a window count or a time past the bounds above, a failure count over the checks made.
Status checkFigures(const AnalysisFigures& f);

// The stored and API form (an object; see README "Deployment detail").
nlohmann::json figuresToJson(const AnalysisFigures& f);
// The same checks as checkFigures; InvalidArgument on a missing or mistyped field.
StatusOr<AnalysisFigures> figuresFromJson(const nlohmann::json& j);

// For people, one line:
// "analysis 2/3: 2.1.0 err 0.8% p95 12 ms (420 req) vs 2.0.0 err 0.5% p95 10 ms (400 req);
//  limits err 1.0%, p95 20 ms; pass · health 0/3 failing"
std::string figuresSummary(const AnalysisFigures& f);

}  // namespace flotilla::common
