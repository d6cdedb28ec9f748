// What the process driver is asked to do: the step, and the service spec the coordinator sends
// with it (schema ProcessSpec), read and checked once into plain structs.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "agent/analysis.hpp"
#include "agent/driver.hpp"
#include "agent/prometheus.hpp"
#include "common/status.hpp"
#include "common/steps.hpp"
#include "flotilla.capnp.h"

namespace flotilla::agent {

using common::Step;
using common::stepName;

// Replicas beyond this are refused: HAProxy slots are the real bound.
constexpr int kMaxReplicas = 256;

struct ProcessSpec {
  std::string command;  // {version}, {port}, {cluster} are filled in at each start
  int replicas = 1;
  int port_min = 0;
  int port_max = 0;
  std::string health_path;  // readiness after a start
  // Not on the wire (tests set it): overrides the readiness deadline computed from the health
  // check's interval and threshold.
  std::optional<std::chrono::milliseconds> start_timeout;
};

struct TrafficSpec {
  std::string socket;  // {cluster} already substituted
  std::string backend;
  bool operator==(const TrafficSpec& o) const { return socket == o.socket && backend == o.backend; }
};

struct HealthSpec {
  std::string path = "/health";  // on each replica (process driver)
  std::string url;               // the script driver's watch: with {cluster}, {version},
                                 // {environment} still in it ("" = no health checks)
  std::chrono::milliseconds interval{2000};
  std::chrono::milliseconds timeout{1000};
  int failure_threshold = 3;
};

struct MetricsSpec {
  AnalysisConfig config;
  bool wait_when_inconclusive = true;
  std::optional<PrometheusSource> prometheus;  // absent: scrape the replicas' /metrics
};

// The bounds of a rolling update (and of its rollback).
struct RollingSpec {
  int max_unavailable = 1;  // serving replicas may drop to `replicas - max_unavailable`
  int max_surge = 1;        // running replicas may rise to `replicas + max_surge`
};

struct Spec {
  std::string service;
  std::string version;
  std::string previous_version;
  std::string cluster;
  std::string deployment;
  std::optional<ProcessSpec> process;
  std::optional<TrafficSpec> traffic;
  HealthSpec health;
  std::optional<MetricsSpec> metrics;
  std::optional<AlertConfig> alerts;
  std::optional<RollingSpec> rolling;     // always set for a roll step (the defaults when absent)
  int weight = 0;                         // shift
  std::chrono::milliseconds duration{0};  // analyze, bake
  // The command's FLOTILLA_* variables (and FLOTILLA_ENVIRONMENT): every replica started for the
  // step gets them, under its own FLOTILLA_VERSION and FLOTILLA_PORT.
  std::map<std::string, std::string> env;
};

// Checks the spec for `step` and reads it, naming every problem at once ("bad spec: a; b").
// Also reads the script driver's `watch` (no process, no traffic).
// `default_cluster` stands in for an empty cluster.
common::StatusOr<Spec> readSpec(Step step, schema::ProcessSpec::Reader wire,
                                const std::string& default_cluster);

// Which of a command's specs a driver reads: the process driver's `process`, or the script
// driver's `watch` (analyze and bake).
enum class SpecField { kProcess, kWatch };

// The command's spec (readSpec), for this command's deployment only, with the command's
// variables in `env`. Read while the message lives; a bad or missing spec is an error naming it.
common::StatusOr<Spec> readCommandSpec(const StepCommand& command, SpecField field,
                                       const std::string& default_cluster);

}  // namespace flotilla::agent
