// Who may speak as which cluster on the agent channel.
#include "coordinator/agent_gate.hpp"

#include <capnp/message.h>
#include <spdlog/spdlog.h>

#include "common/logging.hpp"
#include "common/rules.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using common::toStd;

std::string checkLabels(const std::map<std::string, std::string>& labels) {
  if (labels.size() > kMaxLabels) {
    return std::to_string(labels.size()) + " labels, over the limit of " +
           std::to_string(kMaxLabels);
  }
  for (const auto& [k, v] : labels) {
    if (!common::isValidLabelKey(k)) {
      return "label key " + common::loggable(k, 80) + " is not 1 to 63 of [A-Za-z0-9._/-]";
    }
    if (!common::isValidLabelValue(v)) {
      return "label " + k + " has a value that is not 0 to 128 printable characters";
    }
  }
  return "";
}

AgentGate::AgentGate(Trust& trust, Outbox& outbox, Metrics& metrics, const common::Clock& clock,
                     bool insecure)
    : trust_(trust), outbox_(outbox), metrics_(metrics), clock_(clock), insecure_(insecure) {}

int64_t AgentGate::nowMs() const { return common::toUnixMillis(clock_.wallNow()); }

std::string AgentGate::who(const Peer& peer) const {
  std::string out = peer.address.empty() ? "a peer" : peer.address;
  if (!peer.key.empty()) out += " key " + peer.key.substr(0, 8) + "...";
  return common::loggable(out, 120);
}

void AgentGate::audit(const AuditEntry& entry, const std::string& limit_key) {
  if (audit_ == nullptr) return;
  uint64_t suppressed = 0;
  if (!limit_key.empty() && !audit_limit_.allow(limit_key, clock_.now(), &suppressed)) return;
  AuditEntry e = entry;
  if (suppressed > 0) e.detail += " (" + std::to_string(suppressed) + " more like it not recorded)";
  Status s = audit_->append(e, nowMs());
  if (!s.ok()) spdlog::error("audit: {}", s.toString());
}

bool AgentGate::admitKey(const std::string& key, const std::string& address) {
  if (trust_.findKey(key) != nullptr) return true;
  if (trust_.enrollmentOpen(nowMs())) return true;  // only `register` with a token is handled
  metrics_.frameDropped("unknown_key");
  uint64_t suppressed = 0;
  if (log_limit_.allow("unknown_key", clock_.now(), &suppressed)) {
    spdlog::warn("refused a connection from {} with key {}: not enrolled{}",
                 common::loggable(address, 64), key,
                 suppressed ? " (and " + std::to_string(suppressed) + " more since)" : "");
  }
  audit({"peer:" + key, "", "agent.connection_refused", "", "refused", address, "key not enrolled"},
        "connection_refused");
  return false;
}

void AgentGate::refuseRegister(const Peer& peer, const std::string& cluster,
                               const std::string& reason, const std::string& why, bool retryable) {
  metrics_.frameDropped(reason);
  uint64_t suppressed = 0;
  if (log_limit_.allow(reason, clock_.now(), &suppressed)) {
    spdlog::warn("refused register as {} from {}: {}{}", common::loggable(cluster, 64), who(peer),
                 why, suppressed ? " (and " + std::to_string(suppressed) + " more since)" : "");
  }
  if (!retryable) {
    audit({peer.key.empty() ? "peer:" + peer.address : "peer:" + peer.key, "",
           "agent.register_refused", common::loggable(cluster, 64), "refused", peer.address, why},
          reason);
  }
  capnp::MallocMessageBuilder message;
  auto r = message.initRoot<schema::Envelope>().initRefused();
  r.setReason(why);
  r.setRetryable(retryable);
  outbox_.sendTo(peer.connection, message);
}

std::optional<std::string> AgentGate::admitRegister(
    const Peer& peer, schema::Register::Reader msg,
    const std::map<std::string, std::string>& labels) {
  const std::string cluster = toStd(msg.getCluster());
  if (!common::isValidName(cluster)) {
    refuseRegister(peer, cluster, "bad_register", "the cluster name is not valid", false);
    return std::nullopt;
  }
  if (std::string problem = checkLabels(labels); !problem.empty()) {
    refuseRegister(peer, cluster, "bad_labels", problem, false);
    return std::nullopt;
  }
  if (auto own = cluster_of_connection_.find(peer.connection);
      own != cluster_of_connection_.end() && own->second != cluster) {
    refuseRegister(peer, cluster, "identity_mismatch",
                   "this connection speaks as cluster " + own->second + ", not " + cluster, false);
    return std::nullopt;
  }
  auto env = labels.find("environment");
  const std::string environment = env == labels.end() ? "" : env->second;
  if (!insecure_) {
    const EnrolledKey* enrolled = trust_.findKey(peer.key);
    const std::string token = toStd(msg.getEnrollToken());
    if (enrolled != nullptr && enrolled->cluster != cluster) {
      refuseRegister(peer, cluster, "identity_mismatch",
                     "this key is enrolled as cluster " + enrolled->cluster + ", not " + cluster,
                     false);
      return std::nullopt;
    }
    if (enrolled == nullptr) {
      if (token.empty()) {
        refuseRegister(peer, cluster, "not_enrolled",
                       "this key is not enrolled: start the agent with --enroll-token (from "
                       "`flotilla agents enroll " +
                           cluster + "`)",
                       false);
        return std::nullopt;
      }
      auto done = trust_.enroll(token, cluster, peer.key, environment, nowMs());
      if (!done.ok()) {
        refuseRegister(peer, cluster, "bad_enrollment", done.status().message(), false);
        return std::nullopt;
      }
      // A cluster that had another key: that key's connection goes.
      disconnect(cluster);
      spdlog::info("agent {} enrolled from {} with key {}", cluster, who(peer), peer.key);
      audit({"agent:" + cluster, "", "agent.enrolled", cluster, "ok", peer.address,
             "key " + peer.key + ", token created by " + done->enrolled_by},
            "");
      enrolled = trust_.findKey(peer.key);
    }
    if (enrolled != nullptr && enrolled->environment != environment) {
      refuseRegister(peer, cluster, "environment_changed",
                     "the environment label is pinned to \"" + enrolled->environment +
                         "\" since enrollment; re-enroll the agent to change it",
                     false);
      return std::nullopt;
    }
  }
  auto bound = connection_of_cluster_.find(cluster);
  if (bound != connection_of_cluster_.end() && bound->second != peer.connection) {
    if (outbox_.connectionOpen(bound->second)) {
      refuseRegister(peer, cluster, "connection_in_use",
                     "cluster " + cluster +
                         " is connected on another connection; this one is "
                         "taken once that one closes",
                     true);
      return std::nullopt;
    }
    cluster_of_connection_.erase(bound->second);
  }
  cluster_of_connection_[peer.connection] = cluster;
  connection_of_cluster_[cluster] = peer.connection;
  outbox_.bindCluster(cluster, peer.connection);
  return cluster;
}

std::optional<std::string> AgentGate::clusterOf(const Peer& peer) const {
  auto it = cluster_of_connection_.find(peer.connection);
  if (it == cluster_of_connection_.end()) return std::nullopt;
  if (!insecure_) {
    const EnrolledKey* k = trust_.findKey(peer.key);
    if (k == nullptr || k->cluster != it->second) return std::nullopt;
  }
  return it->second;
}

void AgentGate::refuseFrame(const Peer& peer, const std::string& reason,
                            const std::string& detail) {
  metrics_.frameDropped(reason);
  uint64_t suppressed = 0;
  if (log_limit_.allow(reason, clock_.now(), &suppressed)) {
    spdlog::warn("dropped a frame from {}: {}{}", who(peer), common::loggable(detail),
                 suppressed ? " (and " + std::to_string(suppressed) + " more since)" : "");
  }
  audit({peer.key.empty() ? "peer:" + peer.address : "peer:" + peer.key, "", "agent.frame_refused",
         "", "refused", peer.address, reason + ": " + detail},
        reason);
}

StatusOr<Enrollment> AgentGate::createEnrollment(const std::string& cluster, int64_t ttl_ms,
                                                 const Actor& actor) {
  auto e = trust_.createEnrollment(cluster, ttl_ms, actor.name, nowMs());
  if (!e.ok()) return e.status();
  audit({actor.name, actor.role, "agent.enrollment_created", cluster, "ok", actor.client,
         "expires " + common::formatRfc3339(common::fromUnixMillis(e->expires_ms))},
        "");
  return e;
}

Status AgentGate::revoke(const std::string& cluster, const Actor& actor) {
  Status s = trust_.revoke(cluster);
  if (!s.ok()) return s;
  disconnect(cluster);
  spdlog::warn("agent {} revoked by {}", cluster, common::loggable(actor.name, 64));
  audit({actor.name, actor.role, "agent.revoked", cluster, "ok", actor.client, ""}, "");
  return Status::Ok();
}

void AgentGate::recordRemoval(const std::string& cluster, const Actor& actor) {
  audit({actor.name, actor.role, "agent.removed", cluster, "ok", actor.client, ""}, "");
}

void AgentGate::disconnect(const std::string& cluster) {
  auto bound = connection_of_cluster_.find(cluster);
  if (bound == connection_of_cluster_.end()) return;
  outbox_.dropConnection(bound->second);
  outbox_.bindCluster(cluster, "");
  cluster_of_connection_.erase(bound->second);
  connection_of_cluster_.erase(bound);
}

}  // namespace flotilla::coordinator
