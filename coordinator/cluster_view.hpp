// What the on-call sees of one cluster beyond its state: where it is in its wave's strategy
// (step 2/3), the traffic weight the coordinator sent it, and the versions it moves between.
// Derived from the deployment alone (pure), for the HTTP API's deployment detail.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "coordinator/deployment.hpp"

namespace flotilla::coordinator {

struct ClusterView {
  // The strategy step the cluster is at, 1-based among its wave's traffic shifts (0: deployed,
  // no traffic yet); nothing when the wave has no shifts (script driver, rolling) or the cluster
  // is not on its forward path (pending, rolling back).
  std::optional<int> strategy_step;
  int strategy_steps = 0;          // shifts in the wave's sequence
  std::optional<uint32_t> weight;  // percent of traffic on the new version, with strategy_step
  std::string from_version;        // what it ran before ("" = nothing known)
  std::string to_version;          // the deployment's version
};

ClusterView viewCluster(const Deployment& d, size_t wave, const ClusterProgress& c);

}  // namespace flotilla::coordinator
