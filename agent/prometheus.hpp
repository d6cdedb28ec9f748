// Canary analysis through a Prometheus server (health.metrics.source: prometheus): the plan's
// PromQL queries, filled in for one set of replicas, asked of the HTTP query API
// (GET /api/v1/query), and turned into the same WindowStats the direct scrape gives, so one
// set of rules (analysis.hpp) decides either way.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/analysis.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

struct PrometheusSource {
  std::string url;  // base URL, e.g. http://127.0.0.1:9090
  std::string request_rate;
  std::string error_rate;
  std::string latency_p95;
};

// The `instance` label values of replicas on these loopback ports, as an anchored PromQL
// regex alternative: "127.0.0.1:18001|127.0.0.1:18002". Dots are left unescaped: in a label
// regex they also match themselves, and no other instance looks like a loopback address.
std::string instancesPattern(const std::vector<int>& ports);

// Fills {instances}, {window} (as milliseconds, "30000ms"), {version} and {cluster} in a query
// template. Versions and cluster names hold no quote or backslash (common/rules.hpp), so they
// stand inside a PromQL string as they are.
std::string expandQuery(const std::string& query, const std::string& instances,
                        std::chrono::milliseconds window, const std::string& version,
                        const std::string& cluster = "");

// Which series one set is: the process driver's replicas ({instances}), or, for the script
// driver, the version (and the cluster) its queries are written with.
struct QueryScope {
  std::string instances;
  std::string version;
  std::string cluster;
};

// Reads the single number out of a /api/v1/query answer. An empty vector, or NaN (0/0 with no
// traffic), is no data (nullopt); more than one series, an error status or anything else
// malformed is an error naming what was wrong. The body is untrusted and never echoed.
common::StatusOr<std::optional<double>> parseQueryResponse(std::string_view body);

// One instant query, bounded by `timeout`.
common::StatusOr<std::optional<double>> queryPrometheus(const std::string& base_url,
                                                        const std::string& promql,
                                                        std::chrono::milliseconds timeout);

// The three queries for one set over the last `window`, as window statistics: request and
// error counts are the rates times the window (rounded), p95 is absent when the query had no
// data. Errors are the first failed query's.
common::StatusOr<WindowStats> queryWindow(const PrometheusSource& source, const QueryScope& scope,
                                          std::chrono::milliseconds window,
                                          std::chrono::milliseconds timeout);
// The process driver's replicas on `ports`.
common::StatusOr<WindowStats> queryWindow(const PrometheusSource& source,
                                          const std::vector<int>& ports, const std::string& version,
                                          std::chrono::milliseconds window,
                                          std::chrono::milliseconds timeout);

}  // namespace flotilla::agent
