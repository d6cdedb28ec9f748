// The audit trail: every mutating request, enrollment, revocation and refused agent frame,
// appended to the store as a hash chain (each record carries the SHA-256 of the one before),
// so that a record changed or removed afterwards is found by verify().
//
// Record (store key audit/<seq, 16 digits>, JSON): {seq, time (RFC 3339), time_ms, actor, role,
// action, target, outcome, client, detail, prev, hash}; `prev` is the SHA-256 (hex) of the
// previous record's stored bytes ("" for the first), so the chain head is the hash of the last
// record; `hash` is the SHA-256 of the record without `hash`, so that an edited record is
// named by its own seq (coordinator/audit.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "coordinator/store.hpp"

namespace flotilla::coordinator {

struct AuditEntry {
  std::string actor;    // token name, "agent:<cluster>", "peer:<key>", or "coordinator"
  std::string role;     // the token's role; "" for agents and the system
  std::string action;   // "POST /api/v1/deployments", "agent.enrolled", "agent.frame_refused"
  std::string target;   // deployment id, cluster, token name, ...
  std::string outcome;  // "ok", "denied", "refused", or the HTTP status ("403")
  std::string client;   // peer address
  std::string detail;   // free text (already bounded and escaped by the caller)
};

struct AuditRecord {
  uint64_t seq = 0;
  int64_t time_ms = 0;
  AuditEntry entry;
  std::string prev;  // SHA-256 of the previous record's stored bytes
};

struct AuditVerdict {
  bool ok = true;
  uint64_t records = 0;               // records checked
  std::optional<uint64_t> first_bad;  // seq of the first record that does not match
  std::string problem;                // why, for people
};

class AuditLog {
 public:
  explicit AuditLog(Store& store) : store_(store) {}
  // Reads the chain's head (last seq and its hash). Call once before append().
  common::Status load();
  // Engine thread only: the record is gathered with the loop turn's group commit.
  common::Status append(const AuditEntry& entry, int64_t now_ms);
  // Thread-safe reads of what is durable. list: the newest `limit` records whose time is at or
  // after `since_ms`, oldest first.
  common::StatusOr<std::vector<AuditRecord>> list(int64_t since_ms, size_t limit) const;
  common::StatusOr<AuditVerdict> verify() const;

 private:
  Store& store_;
  uint64_t last_seq_ = 0;
  std::string last_hash_;
};

}  // namespace flotilla::coordinator
