// The coordinator's ZeroMQ ROUTER for agents: CurveZMQ server with a ZAP handler (only keys
// the engine admits complete the handshake), receives, validates and decodes frames, and
// sends envelopes to agents by cluster through the connection each cluster is bound to.
//
// Connections are named by the ROUTER's own routing ids (agents set none), so a peer cannot
// pick the name of another's connection. A socket monitor tells which connections closed.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "common/codec.hpp"
#include "common/status.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/outbox.hpp"

namespace flotilla::coordinator {

struct EndpointSecurity {
  // Empty: the NULL mechanism (--insecure), no authentication at all.
  std::string secret_key;  // the coordinator's CURVE secret key, Z85
  // A dead peer's connection is closed by the kernel: TCP keepalive probes an idle connection
  // after `keepalive_idle` (then every 5 s, 3 times), and data unacknowledged for
  // `unacked_timeout` ends it (TCP_USER_TIMEOUT). Not ZMTP heartbeats on this side: libzmq
  // 4.3.4 cancels a heartbeat timer by scanning every timer of the I/O thread, which at 10,000
  // agents took 45% of the coordinator's CPU and kept a fleet from registering. The agents
  // send ZMTP pings (they notice a dead coordinator), and the engine closes the connection of
  // an agent it declares lost, so that its cluster can come back on a new one.
  std::chrono::seconds keepalive_idle{10};
  std::chrono::milliseconds unacked_timeout{30000};
};

class AgentEndpoint : public Outbox {
 public:
  using Handler = std::function<void(const Peer& peer, schema::Envelope::Reader)>;
  // ZAP: may a connection authenticated with this CURVE key (Z85) from `address` complete its
  // handshake? The User-Id of its messages becomes the key.
  using KeyCheck = std::function<bool(const std::string& key, const std::string& address)>;

  AgentEndpoint(zmq::context_t& context, Metrics& metrics, EndpointSecurity security = {});
  ~AgentEndpoint() override;

  // With CURVE, `check` decides every handshake; it runs on the thread that calls poll().
  common::Status bind(const std::string& address, KeyCheck check = nullptr);
  // The address actually bound (resolves a `*` port).
  std::string boundAddress() const;
  bool curve() const { return !security_.secret_key.empty(); }

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
  void sendTo(const std::string& connection, capnp::MessageBuilder& message) override;
  void bindCluster(const std::string& cluster, const std::string& connection) override;
  bool connectionOpen(const std::string& connection) const override;
  void dropConnection(const std::string& connection) override;

 private:
  struct Connection {
    int fd = -1;
  };
  // Receives and handles one message; false when none was waiting.
  bool receiveOne(const Handler& handler);
  void answerZap();
  void drainMonitor();
  void sendNow(const std::string& connection, zmq::message_t body);
  void dropped(const char* reason, const std::string& peer, const std::string& why);

  zmq::context_t& context_;
  EndpointSecurity security_;
  zmq::socket_t socket_;
  zmq::socket_t zap_;      // REP on inproc://zeromq.zap.01 (CURVE only)
  zmq::socket_t monitor_;  // PAIR fed by zmq_socket_monitor
  KeyCheck check_;
  Metrics& metrics_;
  bool holding_ = false;
  // (connection or "" when the cluster was not bound, cluster, body)
  std::vector<std::pair<std::string, zmq::message_t>> held_;
  std::map<std::string, std::string> bound_;  // cluster -> connection
  std::map<std::string, Connection> open_;    // connection -> what we know of it
  std::map<int, std::string> by_fd_;          // fd -> connection
  // Connections seen closed (routing ids are never reused): a late frame of one is not taken
  // for a live connection. Bounded, oldest forgotten first.
  std::set<std::string> closed_;
  std::deque<std::string> closed_order_;
};

}  // namespace flotilla::coordinator
