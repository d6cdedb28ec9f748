// The coordinator's durable state in RocksDB.
//
// Key layout (every key prefix the coordinator writes):
//
//   meta/epoch                        -> decimal; +1 at every coordinator start
//   meta/deployment_seq               -> decimal; last deployment number handed out
//   deployment/<id>                   -> JSON Deployment (plan, state, per-cluster progress)
//   event/<id>/<seq, 16 digits>       -> JSON event {seq, time_ms, type, wave, cluster, step,
//   message} agent/<cluster>                   -> JSON {labels, agent_version}
//   release/<service>/<cluster>       -> version live on that cluster (absent = unknown)
//
// Every deployment change is one WriteBatch (record + its events + release
// changes) written with sync=true before anyone is told about it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "coordinator/deployment.hpp"

namespace rocksdb {
class DB;
}

namespace flotilla::coordinator {

struct StoredEvent {
  uint64_t seq = 0;
  int64_t time_ms = 0;
  Event event;
};

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
  // Raw JSON of every deployment, in key order (callers sort).
  common::StatusOr<std::vector<std::string>> listDeploymentJson();
  common::StatusOr<std::string> deploymentJson(const std::string& id);
  common::StatusOr<std::vector<StoredEvent>> events(const std::string& id, uint64_t after_seq,
                                                    size_t limit);

  common::Status putAgent(const StoredAgent& a);
  common::StatusOr<std::vector<StoredAgent>> loadAgents();

  // Versions live for a service, by cluster.
  common::StatusOr<std::map<std::string, std::string>> releases(const std::string& service);

 private:
  explicit Store(std::unique_ptr<rocksdb::DB> db);
  common::StatusOr<uint64_t> bumpCounter(const std::string& key);
  std::unique_ptr<rocksdb::DB> db_;
};

std::string eventToJson(const StoredEvent& e);

}  // namespace flotilla::coordinator
