// The process driver's spec for one step (schema ProcessSpec), built from the plan when the
// command goes out: the one place that decides what of a plan reaches the agent. The script
// driver's analyze and bake get the same struct as their `watch` (health, metrics, alerts and
// the step's duration; no replicas, no traffic).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/plan.hpp"
#include "flotilla.capnp.h"

namespace flotilla::coordinator {

// What a process step needs beyond the plan.
struct ProcessStepParams {
  std::string deployment;
  std::string cluster;
  std::string previous_version;           // what the cluster ran before ("" = nothing known)
  size_t wave = 0;                        // whose strategy applies
  uint32_t weight = 100;                  // shift: percent of traffic for the new set
  std::chrono::milliseconds duration{0};  // analyze, bake, watch
  // watch: the tier's interval, sent as health.intervalMs in place of the plan's (0: the plan's)
  std::chrono::milliseconds interval{0};

  bool operator==(const ProcessStepParams& o) const {
    return deployment == o.deployment && cluster == o.cluster &&
           previous_version == o.previous_version && wave == o.wave && weight == o.weight &&
           duration == o.duration && interval == o.interval;
  }
};

void buildProcessSpec(schema::ProcessSpec::Builder out, const common::Plan& plan,
                      const ProcessStepParams& step);

}  // namespace flotilla::coordinator
