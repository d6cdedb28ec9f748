#include "agent/process/traffic.hpp"

namespace flotilla::agent {

namespace {

class HaproxyTraffic : public TrafficSwitch {
 public:
  HaproxyTraffic(const std::string& socket, std::chrono::milliseconds timeout)
      : admin_(socket, timeout) {}
  common::StatusOr<std::vector<ServerInfo>> showServers(const std::string& backend) override {
    return admin_.showServers(backend);
  }
  common::Status setServerAddress(const std::string& backend, const std::string& server,
                                  const std::string& address, int port) override {
    return admin_.setServerAddress(backend, server, address, port);
  }
  common::Status setServerState(const std::string& backend, const std::string& server,
                                ServerState state) override {
    return admin_.setServerState(backend, server, state);
  }
  common::Status setWeight(const std::string& backend, const std::string& server,
                           int weight) override {
    return admin_.setWeight(backend, server, weight);
  }
  common::Status releaseServer(const std::string& backend, const std::string& server) override {
    return admin_.releaseServer(backend, server);
  }

 private:
  HaproxyAdmin admin_;
};

}  // namespace

TrafficFactory haproxyTraffic(std::chrono::milliseconds timeout) {
  return [timeout](const TrafficSpec& traffic) -> std::unique_ptr<TrafficSwitch> {
    return std::make_unique<HaproxyTraffic>(traffic.socket, timeout);
  };
}

}  // namespace flotilla::agent
