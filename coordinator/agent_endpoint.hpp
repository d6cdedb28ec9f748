// The coordinator's ZeroMQ ROUTER for agents: receives, validates and decodes
// frames, and sends envelopes to agents by cluster name (each agent's DEALER
// uses its cluster name as routing id).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "common/codec.hpp"
#include "common/status.hpp"
#include "coordinator/engine.hpp"
#include "coordinator/metrics.hpp"

namespace flotilla::coordinator {

class AgentEndpoint : public Outbox {
 public:
  using Handler = std::function<void(const std::string& identity, schema::Envelope::Reader)>;

  AgentEndpoint(zmq::context_t& context, Metrics& metrics);

  common::Status bind(const std::string& address);
  // The address actually bound (resolves a `*` port).
  std::string boundAddress() const;

  // Waits up to `timeout` for agent frames or for `wake_fd` to become
  // readable; hands every valid envelope to `handler`. Returns true if
  // wake_fd is readable.
  bool poll(std::chrono::milliseconds timeout, int wake_fd, const Handler& handler);

  // Group commit: while holding, send() queues frames instead of sending them;
  // release() sends what was queued, in order, once the changes they announce
  // are durable.
  void setHolding(bool on) { holding_ = on; }
  void release();
  size_t held() const { return held_.size(); }

  // Interface
  void send(const std::string& cluster, capnp::MessageBuilder& message) override;

 private:
  // Receives and handles one message; false when none was waiting.
  bool receiveOne(const Handler& handler);
  void sendNow(const std::string& cluster, zmq::message_t body);

  zmq::socket_t socket_;
  Metrics& metrics_;
  bool holding_ = false;
  std::vector<std::pair<std::string, zmq::message_t>> held_;
};

}  // namespace flotilla::coordinator
