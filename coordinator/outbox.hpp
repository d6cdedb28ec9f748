// The engine's view of the agent transport: who sent a frame, and where frames go.
#pragma once

#include <capnp/message.h>

#include <string>

namespace flotilla::coordinator {

// Who sent a frame: the connection it came on (the ROUTER's own routing id for it, never one
// the peer chose) and the CURVE public key that connection authenticated with.
struct Peer {
  std::string connection;
  std::string key;      // Z85; "" with --insecure (NULL mechanism)
  std::string address;  // the peer's IP address, for logs and the audit trail
};

// Where the engine's messages to agents go (the ZeroMQ endpoint, or a test double).
class Outbox {
 public:
  virtual ~Outbox() = default;
  // To the connection the cluster is bound to (dropped when it has none).
  virtual void send(const std::string& cluster, capnp::MessageBuilder& message) = 0;
  // To one connection, bound or not (answers to a register, requests to register again).
  virtual void sendTo(const std::string& connection, capnp::MessageBuilder& message) = 0;
  // From now on the cluster's messages go to `connection` ("" = nowhere).
  virtual void bindCluster(const std::string& cluster, const std::string& connection) = 0;
  // Whether the connection is still open (false once the transport saw it close).
  virtual bool connectionOpen(const std::string& connection) const = 0;
  // Closes the connection (a revoked or replaced agent).
  virtual void dropConnection(const std::string& connection) = 0;
};

}  // namespace flotilla::coordinator
