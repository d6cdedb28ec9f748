// An in-memory load balancer (agent/process/traffic.hpp) for unit tests: backends of slots that
// behave like HAProxy's server-template slots under Flotilla's commands, and the list of
// commands in the order they came. Header-only: only agent tests include it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/process/traffic.hpp"

namespace flotilla::support {

class FakeTraffic : public agent::TrafficSwitch {
 public:
  // `count` free slots srv1..srvN: in maintenance at the placeholder, weight 1.
  void addFreeSlots(const std::string& backend, int count) {
    for (int i = 1; i <= count; ++i) {
      agent::ServerInfo s;
      s.name = "srv" + std::to_string(i);
      s.address = agent::kFreeSlotAddress;
      s.port = agent::kFreeSlotPort;
      s.admin_state = agent::kAdminForcedMaint;
      s.weight = 1;
      backends[backend].push_back(s);
    }
  }
  agent::ServerInfo* find(const std::string& backend, const std::string& server) {
    for (auto& s : backends[backend]) {
      if (s.name == server) return &s;
    }
    return nullptr;
  }

  common::StatusOr<std::vector<agent::ServerInfo>> showServers(
      const std::string& backend) override {
    if (!backends.count(backend)) return common::Status::NotFound("no backend " + backend);
    return backends[backend];
  }
  common::Status setServerAddress(const std::string& backend, const std::string& server,
                                  const std::string& address, int port) override {
    auto* s = find(backend, server);
    if (!s) return common::Status::NotFound("no server " + server);
    calls.push_back("addr " + server + " " + address + ":" + std::to_string(port));
    s->address = address;
    s->port = port;
    return common::Status::Ok();
  }
  common::Status setServerState(const std::string& backend, const std::string& server,
                                agent::ServerState state) override {
    auto* s = find(backend, server);
    if (!s) return common::Status::NotFound("no server " + server);
    calls.push_back("state " + server + " " + agent::serverStateName(state));
    s->admin_state = state == agent::ServerState::kMaint   ? agent::kAdminForcedMaint
                     : state == agent::ServerState::kDrain ? agent::kAdminForcedDrain
                                                           : 0;
    s->op_state =
        state == agent::ServerState::kMaint ? agent::OpState::kStopped : agent::OpState::kRunning;
    return common::Status::Ok();
  }
  common::Status setWeight(const std::string& backend, const std::string& server,
                           int weight) override {
    auto* s = find(backend, server);
    if (!s) return common::Status::NotFound("no server " + server);
    calls.push_back("weight " + server + " " + std::to_string(weight));
    s->weight = weight;
    return common::Status::Ok();
  }
  common::Status releaseServer(const std::string& backend, const std::string& server) override {
    auto* s = find(backend, server);
    if (!s) return common::Status::NotFound("no server " + server);
    calls.push_back("release " + server);
    s->admin_state = agent::kAdminForcedMaint;
    s->address = agent::kFreeSlotAddress;
    s->port = agent::kFreeSlotPort;
    s->weight = 1;
    return common::Status::Ok();
  }

  // A factory handing out this one switch (owned by the test) to ServiceOps.
  agent::TrafficFactory factory() {
    return [this](const agent::TrafficSpec&) -> std::unique_ptr<agent::TrafficSwitch> {
      return std::make_unique<Handle>(*this);
    };
  }

  std::map<std::string, std::vector<agent::ServerInfo>> backends;
  std::vector<std::string> calls;

 private:
  // Forwards to the test's switch, so the test keeps it after ServiceOps drops its handle.
  class Handle : public agent::TrafficSwitch {
   public:
    explicit Handle(FakeTraffic& to) : to_(to) {}
    common::StatusOr<std::vector<agent::ServerInfo>> showServers(const std::string& b) override {
      return to_.showServers(b);
    }
    common::Status setServerAddress(const std::string& b, const std::string& s,
                                    const std::string& a, int p) override {
      return to_.setServerAddress(b, s, a, p);
    }
    common::Status setServerState(const std::string& b, const std::string& s,
                                  agent::ServerState st) override {
      return to_.setServerState(b, s, st);
    }
    common::Status setWeight(const std::string& b, const std::string& s, int w) override {
      return to_.setWeight(b, s, w);
    }
    common::Status releaseServer(const std::string& b, const std::string& s) override {
      return to_.releaseServer(b, s);
    }

   private:
    FakeTraffic& to_;
  };
};

}  // namespace flotilla::support
