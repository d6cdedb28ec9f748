// HaproxyAdmin: the agent's client for HAProxy's runtime API (the admin stats socket), used to
// steer a cluster's traffic between replicas by server address, state and weight.
//
// The backend contract Flotilla relies on (HAProxy 2.6, see tests/agent/haproxy_test.cpp):
//
//   backend checkout
//     balance roundrobin                           # dynamic weights; static-rr only takes 0/100%
//     server-template srv 1-16 127.0.0.1:1 disabled  # no `check`: health is Flotilla's job
//
// Every srvN is a slot. A free slot is parked in maintenance at the placeholder address
// 127.0.0.1:1 (see isFreeSlot). Filling a slot: setServerAddress, setWeight, then
// setServerState(kReady); emptying it: releaseServer. Under roundrobin a ready server gets
// weight / (sum of the weights of all ready servers) of the new requests.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.hpp"

namespace flotilla::agent {

// The administrative states Flotilla sets (`set server BE/SRV state ...`).
enum class ServerState {
  kReady,  // takes new requests in proportion to its weight
  kDrain,  // takes no new requests; requests in flight (and sticky sessions) finish
  kMaint,  // out of the backend: no traffic at all; where free and retired slots live
};

const char* serverStateName(ServerState state);  // "ready", "drain", "maint"

// HAProxy's operational state (srv_op_state). Without `check` it follows the admin state.
enum class OpState {
  kStopped = 0,   // down (every server in maintenance reports this)
  kStarting = 1,  // up but warming up (slowstart)
  kRunning = 2,   // fully up (ready or draining)
  kStopping = 3,  // up but soft-stopping
};

// The srv_admin_state bits from HAProxy's management guide, "show servers state".
inline constexpr uint32_t kAdminForcedMaint = 0x01;      // set by `state maint`
inline constexpr uint32_t kAdminInheritedMaint = 0x02;   // from a tracked server
inline constexpr uint32_t kAdminConfigMaint = 0x04;      // `disabled` in the config; stays set
                                                         // after `state ready`, so not a maint bit
inline constexpr uint32_t kAdminForcedDrain = 0x08;      // set by `state drain`
inline constexpr uint32_t kAdminInheritedDrain = 0x10;   // from a tracked server
inline constexpr uint32_t kAdminResolutionMaint = 0x20;  // DNS resolution failed
// HAProxy's own SRV_ADMF_MAINT / SRV_ADMF_DRAIN masks.
inline constexpr uint32_t kAdminMaintMask =
    kAdminForcedMaint | kAdminInheritedMaint | kAdminResolutionMaint;
inline constexpr uint32_t kAdminDrainMask = kAdminForcedDrain | kAdminInheritedDrain;

// The placeholder a free slot points at: port 1 (tcpmux) is never a replica's port.
inline constexpr char kFreeSlotAddress[] = "127.0.0.1";
inline constexpr int kFreeSlotPort = 1;

// One row of `show servers state BE`.
struct ServerInfo {
  std::string name;     // srv_name, e.g. "srv3"
  std::string address;  // srv_addr, a numeric IPv4 or IPv6 address
  int port = 0;         // srv_port
  OpState op_state = OpState::kStopped;
  uint32_t admin_state = 0;  // srv_admin_state, the raw kAdmin* bits
  int weight = 0;            // srv_uweight: the weight set by `set weight` (kept while draining)

  bool inMaintenance() const { return (admin_state & kAdminMaintMask) != 0; }
  bool draining() const { return !inMaintenance() && (admin_state & kAdminDrainMask) != 0; }
  // The admin state Flotilla would have set to get here.
  ServerState state() const;
  // In maintenance at the placeholder address: nobody's replica, safe to fill. A server in
  // maintenance at a real address is a parked replica (an old blue-green set, a rolled-back
  // canary) and is deliberately not free.
  bool isFreeSlot() const;
};

class HaproxyAdmin {
 public:
  // `timeout` bounds each whole command: connect, send and reading the answer.
  explicit HaproxyAdmin(std::string socket_path, std::chrono::milliseconds timeout);

  // Sends one command and returns HAProxy's answer. Refuses a command holding ';' or a control
  // character (InvalidArgument): HAProxy would run what follows as further commands. A socket
  // that is missing, refuses or times out gives Unavailable; other socket failures IoError.
  // Answers HAProxy 2.6 uses for errors become NotFound (unknown backend or server) or
  // FailedPrecondition (any other refusal), with HAProxy's text.
  common::StatusOr<std::string> command(const std::string& cmd);

  // `set server BE/SRV addr A port P`. `address` must be a numeric IPv4/IPv6 address (HAProxy
  // does not resolve names here) and `port` 1..65535 (HAProxy silently wraps larger ports).
  common::Status setServerAddress(const std::string& backend, const std::string& server,
                                  const std::string& address, int port);
  // `set server BE/SRV state ready|drain|maint`.
  common::Status setServerState(const std::string& backend, const std::string& server,
                                ServerState state);
  // `set weight BE/SRV W`, absolute, 0..256. (A relative `W%` is a share of the initial
  // weight, 1 for a server-template, so it is not offered.)
  common::Status setWeight(const std::string& backend, const std::string& server, int weight);
  // Puts a slot back to free: maintenance first (so no request meets the placeholder), then
  // the placeholder address, then weight 1.
  common::Status releaseServer(const std::string& backend, const std::string& server);

  // `show servers state BE`, parsed by the header's column names.
  common::StatusOr<std::vector<ServerInfo>> showServers(const std::string& backend);
  // Names of the backend's free slots (ServerInfo::isFreeSlot), in HAProxy's order.
  common::StatusOr<std::vector<std::string>> freeServers(const std::string& backend);

  const std::string& socketPath() const { return socket_path_; }

 private:
  // Connects, sends `cmd` + "\n", reads to EOF; no interpretation of the answer.
  common::StatusOr<std::string> exchange(const std::string& cmd);

  std::string socket_path_;
  std::chrono::milliseconds timeout_;
};

}  // namespace flotilla::agent
