// The coordinator's durable state in RocksDB.
//
// Key layout (every key prefix the coordinator writes):
//
//   meta/epoch                        -> decimal; +1 at every coordinator start
//   meta/deployment_seq               -> decimal; last deployment number handed out
//   deployment/<id>                   -> JSON deployment header: plan, submitted_by,
//                                        plan_sha256, state, waves (each with its approvals and
//                                        cluster_count), not the clusters
//   cluster/<id>/<wave, 4 digits>/<position, 7 digits>
//                                     -> cluster record (coordinator/records.hpp: Cap'n Proto
//                                        ClusterRecord; JSON from earlier builds)
//   event/<id>/<seq, 16 digits>       -> event record (coordinator/records.hpp: Cap'n Proto
//                                        EventRecord; JSON from older coordinators)
//   agent/<cluster>                   -> JSON {labels, agent_version}
//   release/<service>/<cluster>       -> version live on that cluster (absent = unknown)
//   releases/<service>/<version>      -> JSON release record: the checks CI reported about it
//                                        (coordinator/releases.hpp)
//   trust/agentkey/<cluster>          -> JSON {key (Z85 CURVE public key), enrolled_at, by}:
//                                        the one key that may speak as that cluster
//   trust/enroll/<sha256 of token>    -> JSON {cluster, expires_at, created_by}: an unused
//                                        enrollment token (deleted when used or revoked)
//   trust/token/<name>                -> JSON {hash (sha256 of the token), role, envs,
//                                        created_at, created_by}: an API token
//   trust/session/<sha256 of id>      -> JSON {token, token_hash, csrf, created_ms, expires_ms}:
//                                        a dashboard session (coordinator/sessions.hpp)
//   trust/nonce-secret                -> 64 hex digits: the key of command nonces
//                                        (coordinator/stage_nonce.hpp), made once
//   audit/<seq, 16 digits>            -> JSON audit record; each carries the SHA-256 of the
//                                        one before it (coordinator/audit.hpp)
//   freeze/<seq, 16 digits>           -> JSON incident freeze "freeze-<seq>" {seq, reason,
//                                        environment ("" = the whole fleet), by, at_ms,
//                                        lifted_by, lifted_ms (0 while active), notes [{text,
//                                        by, at_ms}]} (coordinator/freeze.hpp); never deleted
//
// Every deployment change is one WriteBatch (header + the cluster records that changed + its
// events + release changes) written with sync=true before anyone is told about it. The store
// remembers the last form it wrote of each deployment (until forget()) to tell which cluster
// records changed: a result from one cluster of 10,000 rewrites one record, not 10,000.
//
// Group commit (setGroupCommit(true), what the coordinator's loop uses): commit()
// and putAgent() gather their changes in memory instead, and flush() writes
// everything gathered since the last flush as one synced WriteBatch, so one
// fsync covers every change a loop iteration made, across deployments. A
// deployment changed several times before a flush is serialised and written
// once, in its last state. Nothing gathered is visible to readers until the
// flush, and the caller holds back every consequence (messages to agents,
// HTTP answers, stream wake-ups) until flush() succeeds: a crash before it
// loses only changes nobody heard of.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.hpp"
#include "coordinator/deployment.hpp"
#include "coordinator/records.hpp"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace flotilla::coordinator {

struct StoredAgent {
  std::string cluster;
  std::map<std::string, std::string> labels;
  std::string agent_version;
};

class Store {
 public:
  static common::StatusOr<std::unique_ptr<Store>> open(const std::string& dir);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Increments and returns the persisted epoch.
  common::StatusOr<uint64_t> bumpEpoch();
  // Reserves the next deployment number (synced, so an id is never handed out twice).
  common::StatusOr<uint64_t> nextDeploymentSeq();

  // Writes the deployment, its new events (seq assigned from d.last_event_seq,
  // which is advanced) and release changes in one synced batch.
  common::Status commit(Deployment& d, const std::vector<Event>& events,
                        const std::vector<ReleaseChange>& releases, int64_t now_ms,
                        std::vector<StoredEvent>* written = nullptr);

  common::StatusOr<std::vector<Deployment>> loadDeployments();
  common::StatusOr<Deployment> loadDeployment(const std::string& id);
  // Every deployment without its clusters (their waves are empty), in key order: what a
  // listing needs, without reading every cluster record.
  common::StatusOr<std::vector<Deployment>> loadDeploymentSummaries();
  // The engine no longer holds the deployment: drop the store's copy of its last written form
  // (the next commit of it then rewrites every cluster record). Not while a change of it is
  // gathered (hasPending): the engine keeps such a deployment until the flush.
  void forget(const std::string& id);
  bool hasPending(const std::string& id) const { return pending_records_.count(id) > 0; }
  common::StatusOr<std::vector<StoredEvent>> events(const std::string& id, uint64_t after_seq,
                                                    size_t limit);

  common::Status putAgent(const StoredAgent& a);

  // See "Group commit" above. Off by default (every change synced on its own).
  void setGroupCommit(bool on) { group_commit_ = on; }
  // Writes what was gathered in one synced batch. On failure everything stays
  // gathered, and the next flush() tries again.
  [[nodiscard]] common::Status flush();
  // Bytes of records written since the store was opened (successful writes only).
  uint64_t bytesWritten() const { return bytes_written_; }
  // Changes gathered and not yet flushed (deployment records count once).
  size_t pendingChanges() const { return pending_changes_; }
  // The last write failed (disk full, I/O error) and none has succeeded since; why.
  // Thread-safe (the HTTP API refuses new deployments meanwhile).
  bool failing() const { return broken_.load(); }
  std::string failure() const;

  // Writes are refused (before RocksDB sees them) while the data dir's file system has less
  // free space than this: see "A failed write" in store.cpp.
  static constexpr uint64_t kDefaultMinFreeBytes = 64ull << 20;
  void setMinFreeBytes(uint64_t bytes) { min_free_bytes_ = bytes; }
  common::StatusOr<std::vector<StoredAgent>> loadAgents();

  // Plain records for the keys above that are not deployments (trust/, audit/): gathered
  // under group commit like everything else (so callers on the engine thread only), written
  // at once otherwise (offline tools such as bootstrap-admin).
  common::Status putRecord(const std::string& key, const std::string& value);
  common::Status deleteRecord(const std::string& key);
  // Reads see only what is durable. Thread-safe.
  common::StatusOr<std::optional<std::string>> getRecord(const std::string& key) const;
  // Every key under `prefix` with its value, in key order (at most `limit`).
  common::StatusOr<std::vector<std::pair<std::string, std::string>>> scanRecords(
      const std::string& prefix, size_t limit = SIZE_MAX) const;
  // The last key under `prefix`, or nothing ("" prefix not allowed).
  common::StatusOr<std::optional<std::pair<std::string, std::string>>> lastRecord(
      const std::string& prefix) const;
  // Deletes an agent that is gone: its record and its key binding.
  common::Status removeAgent(const std::string& cluster);

  // Versions live for a service, by cluster.
  common::StatusOr<std::map<std::string, std::string>> releases(const std::string& service);

 private:
  explicit Store(std::unique_ptr<rocksdb::DB> db);
  // Puts the header and every cluster record that differs from written_'s.
  void putDeployment(rocksdb::WriteBatch& batch, const Deployment& d) const;
  common::StatusOr<uint64_t> bumpCounter(const std::string& key);
  // Every write goes through here: see "A failed write" in store.cpp.
  common::Status write(rocksdb::WriteBatch* batch, const std::string& what);
  common::Status fail(common::Status why);
  std::unique_ptr<rocksdb::DB> db_;
  std::string dir_;
  uint64_t min_free_bytes_ = kDefaultMinFreeBytes;
  std::atomic<bool> broken_{false};  // the last write failed: recover before writing again
  mutable std::mutex failure_mu_;
  std::string failure_;  // guarded by failure_mu_

  // Group commit: events, releases and agents gathered in `pending_`, deployment
  // records (latest state per id) in `pending_records_`, serialised at flush().
  bool group_commit_ = false;
  std::unique_ptr<rocksdb::WriteBatch> pending_;
  std::unordered_map<std::string, Deployment> pending_records_;
  // The last form of each deployment written (durable), to find the cluster records that changed.
  std::unordered_map<std::string, Deployment> written_;
  uint64_t bytes_written_ = 0;
  size_t pending_changes_ = 0;
};

}  // namespace flotilla::coordinator
