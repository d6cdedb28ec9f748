// Enrolled agent keys and enrollment tokens.
#include "coordinator/trust.hpp"

#include <nlohmann/json.hpp>

#include "common/crypto.hpp"
#include "common/rules.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using nlohmann::json;

namespace {
constexpr const char* kKeyPrefix = "trust/agentkey/";
constexpr const char* kTokenPrefix = "trust/enroll/";
constexpr const char* kNonceSecretKey = "trust/nonce-secret";
}  // namespace

Status Trust::load() {
  auto keys = store_.scanRecords(kKeyPrefix);
  if (!keys.ok()) return keys.status();
  for (const auto& [k, v] : *keys) {
    try {
      json j = json::parse(v);
      EnrolledKey e;
      e.cluster = k.substr(std::string(kKeyPrefix).size());
      e.key = j.at("key").get<std::string>();
      e.environment = j.value("environment", "");
      e.enrolled_ms = j.value("enrolled_ms", int64_t{0});
      e.enrolled_by = j.value("enrolled_by", "");
      cluster_of_key_[e.key] = e.cluster;
      by_cluster_[e.cluster] = std::move(e);
    } catch (const std::exception& ex) {
      return Status::Corruption(k + " does not decode: " + ex.what());
    }
  }
  auto secret = store_.getRecord(kNonceSecretKey);
  if (!secret.ok()) return secret.status();
  if (*secret && secret->value().size() == 64) {
    nonce_secret_ = secret->value();
  } else if (*secret) {
    return Status::Corruption(std::string(kNonceSecretKey) + " is not 64 hex digits");
  } else {
    nonce_secret_ = common::randomHex(32);
    Status s = store_.putRecord(kNonceSecretKey, nonce_secret_);
    if (!s.ok()) return s;
  }
  auto tokens = store_.scanRecords(kTokenPrefix);
  if (!tokens.ok()) return tokens.status();
  for (const auto& [k, v] : *tokens) {
    try {
      json j = json::parse(v);
      tokens_[k.substr(std::string(kTokenPrefix).size())] =
          OpenToken{j.at("cluster").get<std::string>(), j.at("expires_ms").get<int64_t>(),
                    j.value("created_by", "")};
    } catch (const std::exception& ex) {
      return Status::Corruption(k + " does not decode: " + ex.what());
    }
  }
  return Status::Ok();
}

const EnrolledKey* Trust::findKey(const std::string& key) const {
  auto it = cluster_of_key_.find(key);
  if (it == cluster_of_key_.end()) return nullptr;
  return findCluster(it->second);
}

const EnrolledKey* Trust::findCluster(const std::string& cluster) const {
  auto it = by_cluster_.find(cluster);
  return it == by_cluster_.end() ? nullptr : &it->second;
}

bool Trust::enrollmentOpen(int64_t now_ms) const {
  for (const auto& [hash, t] : tokens_) {
    if (t.expires_ms > now_ms) return true;
  }
  return false;
}

void Trust::dropExpired(int64_t now_ms) {
  for (auto it = tokens_.begin(); it != tokens_.end();) {
    if (it->second.expires_ms <= now_ms) {
      store_.deleteRecord(kTokenPrefix + it->first).ignoreError();  // retried at the next sweep
      it = tokens_.erase(it);
    } else {
      ++it;
    }
  }
}

StatusOr<Enrollment> Trust::createEnrollment(const std::string& cluster, int64_t ttl_ms,
                                             const std::string& by, int64_t now_ms) {
  if (!common::isValidName(cluster)) {
    return Status::InvalidArgument("\"" + cluster.substr(0, 80) +
                                   "\" is not a cluster name: " + common::kNameRule);
  }
  if (ttl_ms <= 0 || ttl_ms > kMaxEnrollmentTtlMs) {
    return Status::InvalidArgument("an enrollment token lives between 1 s and 7 days");
  }
  dropExpired(now_ms);
  if (tokens_.size() >= kMaxOpenEnrollments) {
    return Status::ResourceExhausted(std::to_string(kMaxOpenEnrollments) +
                                     " enrollment tokens are open: let some expire");
  }
  Enrollment e{common::newSecret("fle"), cluster, now_ms + ttl_ms};
  const std::string hash = common::sha256Hex(e.token);
  json j = {{"cluster", cluster}, {"expires_ms", e.expires_ms}, {"created_by", by}};
  Status s = store_.putRecord(kTokenPrefix + hash, j.dump());
  if (!s.ok()) return s;
  tokens_[hash] = OpenToken{cluster, e.expires_ms, by};
  return e;
}

StatusOr<EnrolledKey> Trust::enroll(const std::string& token, const std::string& cluster,
                                    const std::string& key, const std::string& environment,
                                    int64_t now_ms) {
  const std::string hash = common::sha256Hex(token);
  auto it = tokens_.find(hash);
  if (it == tokens_.end()) {
    return Status::PermissionDenied("the enrollment token is not valid (unknown or already used)");
  }
  if (it->second.expires_ms <= now_ms) {
    return Status::PermissionDenied("the enrollment token has expired");
  }
  if (it->second.cluster != cluster) {
    return Status::PermissionDenied("the enrollment token is for cluster \"" + it->second.cluster +
                                    "\", not this one");
  }
  if (const EnrolledKey* other = findKey(key); other != nullptr && other->cluster != cluster) {
    return Status::PermissionDenied("this key is already enrolled as cluster \"" + other->cluster +
                                    "\"");
  }
  EnrolledKey e{cluster, key, environment, now_ms, it->second.created_by};
  Status s = store_.deleteRecord(kTokenPrefix + hash);
  if (s.ok()) s = putKey(e);
  if (!s.ok()) return s;
  tokens_.erase(it);
  return e;
}

Status Trust::putKey(const EnrolledKey& e) {
  json j = {{"key", e.key},
            {"environment", e.environment},
            {"enrolled_ms", e.enrolled_ms},
            {"enrolled_by", e.enrolled_by}};
  Status s = store_.putRecord(kKeyPrefix + e.cluster, j.dump());
  if (!s.ok()) return s;
  if (auto old = by_cluster_.find(e.cluster); old != by_cluster_.end()) {
    cluster_of_key_.erase(old->second.key);
  }
  cluster_of_key_[e.key] = e.cluster;
  by_cluster_[e.cluster] = e;
  return Status::Ok();
}

Status Trust::revoke(const std::string& cluster) {
  bool found = false;
  for (auto it = tokens_.begin(); it != tokens_.end();) {
    if (it->second.cluster == cluster) {
      Status s = store_.deleteRecord(kTokenPrefix + it->first);
      if (!s.ok()) return s;
      it = tokens_.erase(it);
      found = true;
    } else {
      ++it;
    }
  }
  auto k = by_cluster_.find(cluster);
  if (k != by_cluster_.end()) {
    Status s = store_.deleteRecord(kKeyPrefix + cluster);
    if (!s.ok()) return s;
    cluster_of_key_.erase(k->second.key);
    by_cluster_.erase(k);
    found = true;
  }
  if (!found) return Status::NotFound("cluster \"" + cluster + "\" has no key and no open token");
  return Status::Ok();
}

}  // namespace flotilla::coordinator
