// A set's metrics over an analysis window: each replica's /metrics scrape (unless Prometheus
// does it) and /proc counters at both ends, made into one window for the set.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "agent/analysis.hpp"
#include "agent/proc_stat.hpp"
#include "agent/process/service_record.hpp"
#include "agent/process/step_context.hpp"

namespace flotilla::agent {

struct Reading {
  std::optional<MetricSamples> samples;
  std::optional<ProcStat> proc;
  std::chrono::steady_clock::time_point at;
};

using SetReading = std::map<int, Reading>;  // by port

// Scrapes every replica's /metrics (unless `scrape` is false: Prometheus does it) and reads its
// /proc counters.
SetReading readSet(StepContext& ops, const ReplicaSet& set, std::chrono::milliseconds timeout,
                   bool scrape = true);

struct SetWindow {
  WindowStats stats;
  size_t replicas = 0;  // with both scrapes
  std::optional<double> cpu;
  uint64_t rss_bytes = 0;
};

SetWindow windowOf(StepContext& ops, const SetReading& before, const SetReading& after);
// "2.0.0: 120 requests (4.0/s) on 2 replicas, error rate 0.008, p95 12.0 ms, cpu ..."
std::string describe(const std::string& version, const SetWindow& w);

}  // namespace flotilla::agent
