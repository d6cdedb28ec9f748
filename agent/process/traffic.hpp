// The load balancer as the process driver sees it: the slots of a backend, their addresses,
// weights and states. HAProxy's runtime API (agent/haproxy.hpp) is the real one; unit tests
// use an in-memory one (tests/support/fake_traffic.hpp), so the rules that move traffic
// (which slot a replica takes, which weights change first) are tested without HAProxy.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/haproxy.hpp"
#include "agent/process/spec.hpp"
#include "common/status.hpp"

namespace flotilla::agent {

class TrafficSwitch {
 public:
  virtual ~TrafficSwitch() = default;
  virtual common::StatusOr<std::vector<ServerInfo>> showServers(const std::string& backend) = 0;
  virtual common::Status setServerAddress(const std::string& backend, const std::string& server,
                                          const std::string& address, int port) = 0;
  virtual common::Status setServerState(const std::string& backend, const std::string& server,
                                        ServerState state) = 0;
  virtual common::Status setWeight(const std::string& backend, const std::string& server,
                                   int weight) = 0;
  // Back to a free slot: maintenance, the placeholder address, weight 1.
  virtual common::Status releaseServer(const std::string& backend, const std::string& server) = 0;
};

// Opens the switch a service's traffic spec names.
using TrafficFactory = std::function<std::unique_ptr<TrafficSwitch>(const TrafficSpec& traffic)>;

// HAProxy's runtime API at the spec's socket, each command bounded by `timeout`.
TrafficFactory haproxyTraffic(std::chrono::milliseconds timeout);

}  // namespace flotilla::agent
