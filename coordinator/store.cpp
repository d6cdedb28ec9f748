// The coordinator's durable state in RocksDB.
#include "coordinator/store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <cinttypes>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/time_format.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using nlohmann::json;

namespace {

Status fromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsNotFound()) return Status::NotFound(what);
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  return Status::IoError(what + ": " + s.ToString());
}

rocksdb::WriteOptions syncWrite() {
  rocksdb::WriteOptions w;
  w.sync = true;
  return w;
}

std::string eventKey(const std::string& id, uint64_t seq) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%016" PRIu64, seq);
  return "event/" + id + "/" + buf;
}

json eventJson(const StoredEvent& e) {
  return json{{"seq", e.seq},
              {"time_ms", e.time_ms},
              {"type", e.event.type},
              {"wave", e.event.wave},
              {"cluster", e.event.cluster},
              {"step", e.event.step},
              {"message", e.event.message}};
}

}  // namespace

std::string eventToJson(const StoredEvent& e) { return eventJson(e).dump(); }

Store::Store(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
Store::~Store() = default;

StatusOr<std::unique_ptr<Store>> Store::open(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  // Every transition is written with sync=true, so the WAL holds only
  // complete, synced batches; a torn tail can only be a batch nobody was told
  // about. kPointInTimeRecovery drops such a tail and keeps everything before
  // it, instead of refusing to open (kAbsoluteConsistency) or risking a hole
  // in the middle (kSkipAnyCorruptedRecords).
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  options.paranoid_checks = true;
  options.keep_log_file_num = 5;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) return Status::IoError("cannot open the store in " + dir + ": " + s.ToString());
  return std::unique_ptr<Store>(new Store(std::unique_ptr<rocksdb::DB>(raw)));
}

StatusOr<uint64_t> Store::bumpCounter(const std::string& key) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
  uint64_t n = 0;
  if (s.ok()) {
    try {
      n = std::stoull(value);
    } catch (const std::exception&) {
      return Status::Corruption(key + " holds \"" + value + "\", not a number");
    }
  } else if (!s.IsNotFound()) {
    return fromRocks(s, "read " + key);
  }
  ++n;
  Status w = fromRocks(db_->Put(syncWrite(), key, std::to_string(n)), "write " + key);
  if (!w.ok()) return w;
  return n;
}

StatusOr<uint64_t> Store::bumpEpoch() { return bumpCounter("meta/epoch"); }
StatusOr<uint64_t> Store::nextDeploymentSeq() { return bumpCounter("meta/deployment_seq"); }

Status Store::commit(Deployment& d, const std::vector<Event>& events,
                     const std::vector<ReleaseChange>& releases, int64_t now_ms,
                     std::vector<StoredEvent>* written) {
  rocksdb::WriteBatch batch;
  uint64_t seq = d.last_event_seq;
  std::vector<StoredEvent> out;
  for (const auto& e : events) {
    StoredEvent se{++seq, now_ms, e};
    batch.Put(eventKey(d.id, se.seq), eventToJson(se));
    out.push_back(std::move(se));
  }
  for (const auto& r : releases) {
    std::string key = "release/" + r.service + "/" + r.cluster;
    if (r.version.empty()) {
      batch.Delete(key);
    } else {
      batch.Put(key, r.version);
    }
  }
  Deployment copy = d;
  copy.last_event_seq = seq;
  copy.updated_ms = now_ms;
  batch.Put("deployment/" + d.id, deploymentToJson(copy));
  Status s = fromRocks(db_->Write(syncWrite(), &batch), "write deployment " + d.id);
  if (!s.ok()) return s;
  d.last_event_seq = seq;
  d.updated_ms = now_ms;
  if (written) *written = std::move(out);
  return Status::Ok();
}

StatusOr<std::vector<std::string>> Store::listDeploymentJson() {
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix = "deployment/";
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    out.push_back(it->value().ToString());
  }
  Status s = fromRocks(it->status(), "scan deployments");
  if (!s.ok()) return s;
  return out;
}

StatusOr<std::vector<Deployment>> Store::loadDeployments() {
  auto raw = listDeploymentJson();
  if (!raw.ok()) return raw.status();
  std::vector<Deployment> out;
  for (const auto& j : *raw) {
    auto d = deploymentFromJson(j);
    if (!d.ok()) return d.status();
    out.push_back(std::move(d).value());
  }
  return out;
}

StatusOr<std::string> Store::deploymentJson(const std::string& id) {
  std::string value;
  Status s = fromRocks(db_->Get(rocksdb::ReadOptions(), "deployment/" + id, &value),
                       "no deployment named " + id);
  if (!s.ok()) return s;
  return value;
}

StatusOr<Deployment> Store::loadDeployment(const std::string& id) {
  auto raw = deploymentJson(id);
  if (!raw.ok()) return raw.status();
  return deploymentFromJson(*raw);
}

StatusOr<std::vector<StoredEvent>> Store::events(const std::string& id, uint64_t after_seq,
                                                 size_t limit) {
  std::vector<StoredEvent> out;
  if (after_seq == std::numeric_limits<uint64_t>::max()) return out;  // nothing can follow
  const std::string prefix = "event/" + id + "/";
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(eventKey(id, after_seq + 1)); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    if (out.size() >= limit) break;
    try {
      json j = json::parse(it->value().ToString());
      StoredEvent e;
      e.seq = j.at("seq").get<uint64_t>();
      e.time_ms = j.at("time_ms").get<int64_t>();
      e.event = Event{j.at("type").get<std::string>(), j.at("wave").get<std::string>(),
                      j.at("cluster").get<std::string>(), j.at("step").get<std::string>(),
                      j.at("message").get<std::string>()};
      out.push_back(std::move(e));
    } catch (const std::exception& ex) {
      return Status::Corruption("event " + it->key().ToString() + " does not decode: " + ex.what());
    }
  }
  Status s = fromRocks(it->status(), "scan events of " + id);
  if (!s.ok()) return s;
  return out;
}

Status Store::putAgent(const StoredAgent& a) {
  json j = {{"labels", a.labels}, {"agent_version", a.agent_version}};
  return fromRocks(db_->Put(syncWrite(), "agent/" + a.cluster, j.dump()),
                   "write agent " + a.cluster);
}

StatusOr<std::vector<StoredAgent>> Store::loadAgents() {
  std::vector<StoredAgent> out;
  const std::string prefix = "agent/";
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    try {
      json j = json::parse(it->value().ToString());
      StoredAgent a;
      a.cluster = it->key().ToString().substr(prefix.size());
      a.labels = j.at("labels").get<std::map<std::string, std::string>>();
      a.agent_version = j.at("agent_version").get<std::string>();
      out.push_back(std::move(a));
    } catch (const std::exception& ex) {
      return Status::Corruption("agent " + it->key().ToString() + " does not decode: " + ex.what());
    }
  }
  Status s = fromRocks(it->status(), "scan agents");
  if (!s.ok()) return s;
  return out;
}

StatusOr<std::map<std::string, std::string>> Store::releases(const std::string& service) {
  std::map<std::string, std::string> out;
  const std::string prefix = "release/" + service + "/";
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    out[it->key().ToString().substr(prefix.size())] = it->value().ToString();
  }
  Status s = fromRocks(it->status(), "scan releases of " + service);
  if (!s.ok()) return s;
  return out;
}

}  // namespace flotilla::coordinator
