// Which agent keys may speak as which cluster: enrolled CURVE public keys and the one-time
// enrollment tokens that bind them. Durable (store keys trust/agentkey/ and trust/enroll/),
// kept in memory for the engine thread, which alone reads and changes it.
//
// Enrollment: an admin creates a token bound to a cluster name (createEnrollment); an agent
// presents it once in its Register; enroll() binds the agent's key to the cluster, pins the
// cluster's `environment` label as it was at enrollment, and burns the token. A key speaks
// only as its own cluster; revoke() removes the binding (and the cluster's unused tokens).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/status.hpp"
#include "coordinator/store.hpp"

namespace flotilla::coordinator {

struct EnrolledKey {
  std::string cluster;
  std::string key;          // Z85 CURVE public key
  std::string environment;  // the `environment` label at enrollment ("" = none)
  int64_t enrolled_ms = 0;
  std::string enrolled_by;  // who created the token
};

struct Enrollment {
  std::string token;  // shown once; only its SHA-256 is stored
  std::string cluster;
  int64_t expires_ms = 0;
};

class Trust {
 public:
  static constexpr int64_t kMaxEnrollmentTtlMs = 7 * 24 * 3600 * 1000ll;
  // Open (unspent, unexpired) enrollment tokens at once: a fleet of 10,000 clusters enrolled in
  // one go, and then some; each is a small record, kept in memory too.
  static constexpr size_t kMaxOpenEnrollments = 100000;

  explicit Trust(Store& store) : store_(store) {}
  common::Status load();

  // The cluster a key is enrolled for, or nullptr.
  const EnrolledKey* findKey(const std::string& key) const;
  const EnrolledKey* findCluster(const std::string& cluster) const;
  // Clusters enrolled plus open enrollment tokens (some may have expired): the fleet to expect.
  size_t expectedClusters() const { return by_cluster_.size() + tokens_.size(); }
  // Whether an unused, unexpired enrollment token exists (only then may an unknown key connect).
  bool enrollmentOpen(int64_t now_ms) const;

  common::StatusOr<Enrollment> createEnrollment(const std::string& cluster, int64_t ttl_ms,
                                                const std::string& by, int64_t now_ms);
  // Binds `key` to `cluster` if `token` is an unused, unexpired token for that cluster. A key
  // already enrolled for another cluster is refused; a cluster that had another key gets this
  // one instead (the admin issued the token for it).
  common::StatusOr<EnrolledKey> enroll(const std::string& token, const std::string& cluster,
                                       const std::string& key, const std::string& environment,
                                       int64_t now_ms);
  // Removes the cluster's key and its unused tokens; NotFound when there was neither.
  common::Status revoke(const std::string& cluster);
  // The secret of command nonces (stage_nonce.hpp): made by the first load() of a store
  // (trust/nonce-secret), the same ever after.
  const std::string& nonceSecret() const { return nonce_secret_; }

 private:
  struct OpenToken {
    std::string cluster;
    int64_t expires_ms = 0;
    std::string created_by;
  };
  common::Status putKey(const EnrolledKey& k);
  void dropExpired(int64_t now_ms);

  Store& store_;
  std::map<std::string, EnrolledKey> by_cluster_;
  std::map<std::string, std::string> cluster_of_key_;
  std::map<std::string, OpenToken> tokens_;  // by SHA-256 of the token
  std::string nonce_secret_;
};

}  // namespace flotilla::coordinator
