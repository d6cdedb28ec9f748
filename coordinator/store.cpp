// The coordinator's durable state in RocksDB.
#include "coordinator/store.hpp"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/private_dir.hpp"
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

std::string clusterPrefix(const std::string& id) { return "cluster/" + id + "/"; }

std::string clusterKey(const std::string& id, size_t wave, size_t position) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%04zu/%07zu", wave, position);
  return clusterPrefix(id) + buf;
}

// "<wave>/<position>" after the prefix; false when the key is not one of ours.
bool parseClusterKey(std::string_view rest, size_t* wave, size_t* position) {
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 >= rest.size()) return false;
  auto number = [](std::string_view digits, size_t* out) {
    if (digits.size() > 9) return false;
    size_t n = 0;
    for (char ch : digits) {
      if (ch < '0' || ch > '9') return false;
      n = n * 10 + static_cast<size_t>(ch - '0');
    }
    *out = n;
    return true;
  };
  return number(rest.substr(0, slash), wave) && number(rest.substr(slash + 1), position);
}

}  // namespace

Store::Store(std::unique_ptr<rocksdb::DB> db)
    : db_(std::move(db)), pending_(std::make_unique<rocksdb::WriteBatch>()) {}
Store::~Store() = default;

namespace {

// RocksDB's own log goes to ours instead of a LOG file in the data dir. Besides one log for
// operators, this matters on a full disk: a LOG file whose append once failed makes the next
// log line trip an assertion in Debian's RocksDB 7.8 (measured: DB::Resume logs, and aborts).
class RocksLogger : public rocksdb::Logger {
 public:
  RocksLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    char line[1024];
    std::vsnprintf(line, sizeof(line), format, ap);
    if (level >= rocksdb::InfoLogLevel::WARN_LEVEL) {
      spdlog::warn("rocksdb: {}", line);
    } else {
      spdlog::debug("rocksdb: {}", line);
    }
  }
};

// A key's "directory": everything up to its last '/' ("event/<id>/", "cluster/<id>/0000/").
// A turn appends runs of keys in order under a few such prefixes (a deployment's events, its
// cluster records), so the memtable remembers where it last inserted under each one and
// starts its search there (profiled: skiplist inserts were 15% of the engine thread during a
// 10,000-cluster abort).
class KeyDirectory : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "flotilla.KeyDirectory"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    std::string_view k(key.data(), key.size());
    return rocksdb::Slice(key.data(), k.rfind('/') + 1);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return std::string_view(key.data(), key.size()).find('/') != std::string_view::npos;
  }
};

}  // namespace

StatusOr<std::unique_ptr<Store>> Store::open(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.info_log = std::make_shared<RocksLogger>();
  // Every transition is written with sync=true, so the WAL holds only
  // complete, synced batches; a torn tail can only be a batch nobody was told
  // about. kPointInTimeRecovery drops such a tail and keeps everything before
  // it, instead of refusing to open (kAbsoluteConsistency) or risking a hole
  // in the middle (kSkipAnyCorruptedRecords).
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  options.paranoid_checks = true;
  options.keep_log_file_num = 5;
  // One writer (the engine thread): insert hints need the memtable written by one thread.
  options.allow_concurrent_memtable_write = false;
  options.memtable_insert_with_hint_prefix_extractor = std::make_shared<KeyDirectory>();
  // Plans, step output and credentials live here: owner-only, also when an older version left the
  // dir readable (RocksDB creates files through the umask, which main() sets to 077).
  Status made = common::createPrivateDirectories(dir);
  if (!made.ok()) return Status::IoError("cannot create the data dir: " + made.message());
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) return Status::IoError("cannot open the store in " + dir + ": " + s.ToString());
  std::unique_ptr<Store> store(new Store(std::unique_ptr<rocksdb::DB>(raw)));
  auto tightened = common::makePrivateTree(dir);
  if (!tightened.ok()) return tightened.status();
  if (*tightened > 0) {
    spdlog::warn("data dir {}: {} directories and files were readable by others; now 0700/0600",
                 dir, *tightened);
  }
  store->dir_ = dir;
  return store;
}

// Written and synced at once, also under group commit: the next call reads it back.
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
  rocksdb::WriteBatch batch;
  batch.Put(key, std::to_string(n));
  Status w = write(&batch, "write " + key);
  if (!w.ok()) return w;
  return n;
}

StatusOr<uint64_t> Store::bumpEpoch() { return bumpCounter("meta/epoch"); }
StatusOr<uint64_t> Store::nextDeploymentSeq() { return bumpCounter("meta/deployment_seq"); }

Status Store::commit(Deployment& d, const std::vector<Event>& events,
                     const std::vector<ReleaseChange>& releases, int64_t now_ms,
                     std::vector<StoredEvent>* written) {
  rocksdb::WriteBatch own;
  rocksdb::WriteBatch& batch = group_commit_ ? *pending_ : own;
  uint64_t seq = d.last_event_seq;
  std::vector<StoredEvent> out;
  for (const auto& e : events) {
    ++seq;
    batch.Put(eventKey(d.id, seq), encodeEventRecord(seq, now_ms, e));
    if (written) out.push_back(StoredEvent{seq, now_ms, e});  // only for callers who ask
  }
  for (const auto& r : releases) {
    std::string key = "release/" + r.service + "/" + r.cluster;
    if (r.version.empty()) {
      batch.Delete(key);
    } else {
      batch.Put(key, r.version);
    }
  }
  const uint64_t old_seq = d.last_event_seq;
  const int64_t old_updated = d.updated_ms;
  d.last_event_seq = seq;
  d.updated_ms = now_ms;
  if (group_commit_) {
    // Serialising a deployment costs time in proportion to its clusters: do it
    // once per flush, whatever the number of changes. Assigning over the
    // previous pending copy reuses its memory.
    auto [it, inserted] = pending_records_.try_emplace(d.id);
    it->second = d;
    pending_changes_ += events.size() + releases.size() + (inserted ? 1 : 0);
    if (written) *written = std::move(out);
    return Status::Ok();
  }
  putDeployment(batch, d);
  Status s = write(&batch, "write deployment " + d.id);
  if (!s.ok()) {
    written_.erase(d.id);  // as in flush(): rewritten whole next time
    d.last_event_seq = old_seq;
    d.updated_ms = old_updated;
    return s;
  }
  written_[d.id] = d;
  if (written) *written = std::move(out);
  return Status::Ok();
}

void Store::putDeployment(rocksdb::WriteBatch& batch, const Deployment& d) const {
  batch.Put("deployment/" + d.id, deploymentHeaderJson(d));
  auto before = written_.find(d.id);
  const Deployment* prev = before == written_.end() ? nullptr : &before->second;
  for (size_t w = 0; w < d.waves.size(); ++w) {
    const auto& clusters = d.waves[w].clusters;
    const auto* old =
        prev != nullptr && w < prev->waves.size() ? &prev->waves[w].clusters : nullptr;
    for (size_t k = 0; k < clusters.size(); ++k) {
      if (old != nullptr && k < old->size() && (*old)[k] == clusters[k]) continue;
      batch.Put(clusterKey(d.id, w, k), encodeClusterRecord(clusters[k]));
    }
    // Clusters are only appended; a record written with more is someone else's (tests).
    for (size_t k = clusters.size(); old != nullptr && k < old->size(); ++k) {
      batch.Delete(clusterKey(d.id, w, k));
    }
  }
}

void Store::forget(const std::string& id) { written_.erase(id); }

// A failed write. Debian's RocksDB 7.8 is built with assertions, and a synced write that
// meets a full disk aborts the process inside RocksDB (WritableFileWriter asserts on the
// sync after the failed append: measured with a full tmpfs). So the store refuses to write,
// before RocksDB sees the batch, while the data dir's file system has less than
// min_free_bytes free; the coordinator keeps the batch and tries again every turn, and
// refuses new deployments meanwhile (http_api). Other write errors mark the store failing
// too, and each later write first asks RocksDB to recover (DB::Resume). A refused or failed
// batch is all or nothing: what was written before stays intact.
Status Store::write(rocksdb::WriteBatch* batch, const std::string& what) {
  struct statvfs fs {};
  if (::statvfs(dir_.c_str(), &fs) == 0) {
    const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    if (free_bytes < min_free_bytes_) {
      return fail(Status::IoError(what + " refused: " + dir_ + " has " +
                                  std::to_string(free_bytes >> 20) + " MiB free, under the " +
                                  std::to_string(min_free_bytes_ >> 20) +
                                  " MiB the store keeps in reserve"));
    }
  }
  if (broken_) {
    rocksdb::Status r = db_->Resume();
    if (!r.ok()) return fail(fromRocks(r, what + " (store still failing)"));
  }
  Status s = fromRocks(db_->Write(syncWrite(), batch), what);
  if (!s.ok()) return fail(s);
  bytes_written_ += batch->GetDataSize();
  if (broken_.exchange(false)) {
    std::lock_guard lock(failure_mu_);
    failure_.clear();
  }
  return s;
}

Status Store::fail(Status why) {
  {
    std::lock_guard lock(failure_mu_);
    failure_ = why.message();
  }
  broken_ = true;
  return why;
}

std::string Store::failure() const {
  std::lock_guard lock(failure_mu_);
  return failure_;
}

Status Store::flush() {
  if (pending_changes_ == 0) return Status::Ok();
  // A copy, so that a failed write leaves everything gathered for the next try.
  rocksdb::WriteBatch batch(*pending_);
  for (const auto& [id, d] : pending_records_) putDeployment(batch, d);
  Status s = write(&batch, "group commit of " + std::to_string(pending_changes_) + " changes");
  if (!s.ok()) {
    // A failed write may still have reached the WAL (and come back at the next open): what is
    // durable is no longer known, so the retry rewrites these deployments whole.
    for (const auto& [id, d] : pending_records_) written_.erase(id);
    return s;
  }
  pending_->Clear();
  for (auto& [id, d] : pending_records_) written_[id] = std::move(d);
  pending_records_.clear();
  pending_changes_ = 0;
  return Status::Ok();
}

namespace {

// The cluster records of deployment `id`, by wave and position.
StatusOr<StoredClusters> readClusters(rocksdb::DB& db, const rocksdb::ReadOptions& read,
                                      const std::string& id) {
  StoredClusters out;
  const std::string prefix = clusterPrefix(id);
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    size_t wave = 0;
    size_t position = 0;
    std::string_view rest(it->key().data() + prefix.size(), it->key().size() - prefix.size());
    if (!parseClusterKey(rest, &wave, &position)) {
      return Status::Corruption("unexpected key " + it->key().ToString());
    }
    out.emplace(std::make_pair(static_cast<uint32_t>(wave), static_cast<uint32_t>(position)),
                it->value().ToString());
  }
  Status s = fromRocks(it->status(), "scan clusters of " + id);
  if (!s.ok()) return s;
  return out;
}

}  // namespace

StatusOr<std::vector<Deployment>> Store::loadDeploymentSummaries() {
  std::vector<Deployment> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix = "deployment/";
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    auto d = deploymentFromStored(it->value().ToString(), StoredClusters{}, true);
    if (!d.ok()) return d.status();
    out.push_back(std::move(d).value());
  }
  Status s = fromRocks(it->status(), "scan deployments");
  if (!s.ok()) return s;
  return out;
}

StatusOr<std::vector<Deployment>> Store::loadDeployments() {
  std::vector<std::string> ids;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    const std::string prefix = "deployment/";
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      ids.push_back(it->key().ToString().substr(prefix.size()));
    }
    Status s = fromRocks(it->status(), "scan deployments");
    if (!s.ok()) return s;
  }
  std::vector<Deployment> out;
  for (const auto& id : ids) {
    auto d = loadDeployment(id);
    if (!d.ok()) return d.status();
    out.push_back(std::move(d).value());
  }
  return out;
}

StatusOr<Deployment> Store::loadDeployment(const std::string& id) {
  // The header and the cluster records as of one moment (the HTTP threads read while the
  // engine writes).
  rocksdb::ReadOptions read;
  read.snapshot = db_->GetSnapshot();
  std::unique_ptr<const rocksdb::Snapshot, std::function<void(const rocksdb::Snapshot*)>> release(
      read.snapshot, [this](const rocksdb::Snapshot* s) { db_->ReleaseSnapshot(s); });
  std::string header;
  Status s = fromRocks(db_->Get(read, "deployment/" + id, &header), "no deployment named " + id);
  if (!s.ok()) return s;
  auto clusters = readClusters(*db_, read, id);
  if (!clusters.ok()) return clusters.status();
  return deploymentFromStored(header, *clusters);
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
    auto e = decodeEventRecord(std::string_view(it->value().data(), it->value().size()));
    if (!e.ok()) {
      return Status::Corruption("event " + it->key().ToString() + ": " + e.status().message());
    }
    out.push_back(std::move(e).value());
  }
  Status s = fromRocks(it->status(), "scan events of " + id);
  if (!s.ok()) return s;
  return out;
}

Status Store::putAgent(const StoredAgent& a) {
  json j = {{"labels", a.labels}, {"agent_version", a.agent_version}};
  if (group_commit_) {
    pending_->Put("agent/" + a.cluster, j.dump());
    ++pending_changes_;
    return Status::Ok();
  }
  rocksdb::WriteBatch batch;
  batch.Put("agent/" + a.cluster, j.dump());
  return write(&batch, "write agent " + a.cluster);
}

Status Store::putRecord(const std::string& key, const std::string& value) {
  if (group_commit_) {
    pending_->Put(key, value);
    ++pending_changes_;
    return Status::Ok();
  }
  rocksdb::WriteBatch batch;
  batch.Put(key, value);
  return write(&batch, "write " + key);
}

Status Store::deleteRecord(const std::string& key) {
  if (group_commit_) {
    pending_->Delete(key);
    ++pending_changes_;
    return Status::Ok();
  }
  rocksdb::WriteBatch batch;
  batch.Delete(key);
  return write(&batch, "delete " + key);
}

Status Store::removeAgent(const std::string& cluster) {
  Status s = deleteRecord("agent/" + cluster);
  if (!s.ok()) return s;
  return deleteRecord("trust/agentkey/" + cluster);
}

StatusOr<std::optional<std::string>> Store::getRecord(const std::string& key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return fromRocks(s, "read " + key);
  return std::optional<std::string>(std::move(value));
}

StatusOr<std::vector<std::pair<std::string, std::string>>> Store::scanRecords(
    const std::string& prefix, size_t limit) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && out.size() < limit;
       it->Next()) {
    out.emplace_back(it->key().ToString(), it->value().ToString());
  }
  Status s = fromRocks(it->status(), "scan " + prefix);
  if (!s.ok()) return s;
  return out;
}

StatusOr<std::optional<std::pair<std::string, std::string>>> Store::lastRecord(
    const std::string& prefix) const {
  if (prefix.empty()) return Status::InvalidArgument("lastRecord needs a prefix");
  // The first key after every key under `prefix`: its last byte incremented ('/' -> '0').
  std::string end = prefix;
  end.back() = static_cast<char>(end.back() + 1);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(end);
  if (it->Valid() && it->key().ToString() == end) it->Prev();
  std::optional<std::pair<std::string, std::string>> out;
  if (it->Valid() && it->key().starts_with(prefix)) {
    out.emplace(it->key().ToString(), it->value().ToString());
  }
  Status s = fromRocks(it->status(), "seek " + prefix);
  if (!s.ok()) return s;
  return out;
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
