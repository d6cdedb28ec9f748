// Who may speak as which cluster on the agent channel (engine thread only).
//
// A connection is let in (ZAP) only with an enrolled key, or while an enrollment token is open.
// A register is admitted when the connection's key is enrolled for the cluster it names (or
// it brings a valid enrollment token for that cluster), its labels are within bounds, and its
// `environment` label is the one pinned at enrollment; the cluster is then bound to that
// connection. Every other frame is accepted only from the connection its cluster is bound to,
// and only while the key is still enrolled. A second connection for a bound cluster takes
// over only once the first one is closed. Refusals are counted, logged (rate-limited, peer
// text escaped), audited (rate-limited) and, for registers, answered with the reason.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "common/codec.hpp"
#include "common/status.hpp"
#include "common/time_format.hpp"
#include "coordinator/actor.hpp"
#include "coordinator/audit.hpp"
#include "coordinator/log_limit.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/outbox.hpp"
#include "coordinator/trust.hpp"

namespace flotilla::coordinator {

inline constexpr size_t kMaxLabels = 32;

// An agent's labels: at most kMaxLabels, each key and value by common/rules.hpp
// (isValidLabelKey, isValidLabelValue). Returns what is wrong, or "" when fine.
std::string checkLabels(const std::map<std::string, std::string>& labels);

class AgentGate {
 public:
  AgentGate(Trust& trust, Outbox& outbox, Metrics& metrics, const common::Clock& clock,
            bool insecure);
  void setAuditLog(AuditLog* audit) { audit_ = audit; }
  bool insecure() const { return insecure_; }

  // ZAP: may a connection authenticated with `key` complete its handshake?
  bool admitKey(const std::string& key, const std::string& address);

  // A register from `peer`. On success the cluster is bound to the peer's connection and its
  // name returned; on refusal the peer has been answered and nothing is returned.
  std::optional<std::string> admitRegister(const Peer& peer, schema::Register::Reader msg,
                                           const std::map<std::string, std::string>& labels);
  // The cluster a non-register frame speaks for, when its connection is bound and its key still
  // enrolled; nothing otherwise (the caller then calls refuseFrame or asks it to register).
  std::optional<std::string> clusterOf(const Peer& peer) const;
  void refuseFrame(const Peer& peer, const std::string& reason, const std::string& detail);

  common::StatusOr<Enrollment> createEnrollment(const std::string& cluster, int64_t ttl_ms,
                                                const Actor& actor);
  // Removes the cluster's key and open tokens, unbinds it and closes its connection.
  common::Status revoke(const std::string& cluster, const Actor& actor);
  // Unbinds the cluster and closes its connection (it is removed, revoked or lost).
  void disconnect(const std::string& cluster);
  void recordRemoval(const std::string& cluster, const Actor& actor);

 private:
  void refuseRegister(const Peer& peer, const std::string& cluster, const std::string& reason,
                      const std::string& why, bool retryable);
  void audit(const AuditEntry& entry, const std::string& limit_key);
  std::string who(const Peer& peer) const;
  int64_t nowMs() const;

  Trust& trust_;
  Outbox& outbox_;
  Metrics& metrics_;
  const common::Clock& clock_;
  bool insecure_;
  AuditLog* audit_ = nullptr;
  std::map<std::string, std::string> cluster_of_connection_;
  std::map<std::string, std::string> connection_of_cluster_;
  LogLimiter log_limit_;
  LogLimiter audit_limit_{std::chrono::seconds(60)};
};

}  // namespace flotilla::coordinator
