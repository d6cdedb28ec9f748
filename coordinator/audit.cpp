// The audit trail: a hash chain of JSON records in the store.
//
// Each stored record is a JSON object with sorted keys: seq, time, time_ms, actor, role, action,
// target, outcome, client, detail, prev, and hash. `hash` is the SHA-256 of the same object
// without `hash` (so a record edited in place is named by its own seq), and `prev` is the
// SHA-256 of the previous record's stored bytes (so a record edited together with its `hash`,
// removed or inserted is found at the next one). The last record has nothing after it: an
// offline edit of it that also fixes its `hash` is found only against a copy of the head kept
// elsewhere (the log of `flotilla audit --verify` runs, for instance).
#include "coordinator/audit.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/crypto.hpp"
#include "common/time_format.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using nlohmann::json;

namespace {

constexpr char kPrefix[] = "audit/";
constexpr size_t kMaxFieldBytes = 1024;

std::string keyOf(uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llu", static_cast<unsigned long long>(seq));
  return kPrefix + std::string(buf);
}

// Peer text is bounded and must serialise whatever bytes it holds (invalid UTF-8 replaced).
std::string bounded(const std::string& text) {
  std::string out = text.substr(0, kMaxFieldBytes);
  json j = out;
  return json::parse(j.dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
}

json body(uint64_t seq, int64_t time_ms, const AuditEntry& e, const std::string& prev) {
  return json{{"seq", seq},
              {"time", common::formatRfc3339(common::fromUnixMillis(time_ms))},
              {"time_ms", time_ms},
              {"actor", bounded(e.actor)},
              {"role", bounded(e.role)},
              {"action", bounded(e.action)},
              {"target", bounded(e.target)},
              {"outcome", bounded(e.outcome)},
              {"client", bounded(e.client)},
              {"detail", bounded(e.detail)},
              {"prev", prev}};
}

std::string selfHash(const json& without_hash) { return common::sha256Hex(without_hash.dump()); }

std::string str(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// The record as stored; nothing when the bytes are not a record at all.
std::optional<AuditRecord> decode(const std::string& value) {
  json j = json::parse(value, nullptr, false);
  if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned()) return std::nullopt;
  AuditRecord r;
  r.seq = j["seq"].get<uint64_t>();
  r.time_ms =
      j.contains("time_ms") && j["time_ms"].is_number_integer() ? j["time_ms"].get<int64_t>() : 0;
  r.entry.actor = str(j, "actor");
  r.entry.role = str(j, "role");
  r.entry.action = str(j, "action");
  r.entry.target = str(j, "target");
  r.entry.outcome = str(j, "outcome");
  r.entry.client = str(j, "client");
  r.entry.detail = str(j, "detail");
  r.prev = str(j, "prev");
  return r;
}

}  // namespace

Status AuditLog::load() {
  auto last = store_.lastRecord(kPrefix);
  if (!last.ok()) return last.status();
  if (!*last) {
    last_seq_ = 0;
    last_hash_.clear();
    return Status::Ok();
  }
  auto record = decode((*last)->second);
  if (!record) {
    return Status::Corruption("the last audit record (" + (*last)->first +
                              ") does not decode; run flotilla audit --verify");
  }
  last_seq_ = record->seq;
  last_hash_ = common::sha256Hex((*last)->second);
  return Status::Ok();
}

Status AuditLog::append(const AuditEntry& entry, int64_t now_ms) {
  const uint64_t seq = last_seq_ + 1;
  json j = body(seq, now_ms, entry, last_hash_);
  j["hash"] = selfHash(j);
  const std::string bytes = j.dump();
  Status s = store_.putRecord(keyOf(seq), bytes);
  if (!s.ok()) return s;
  last_seq_ = seq;
  last_hash_ = common::sha256Hex(bytes);
  return Status::Ok();
}

StatusOr<std::vector<AuditRecord>> AuditLog::list(int64_t since_ms, size_t limit) const {
  auto records = store_.scanRecords(kPrefix);
  if (!records.ok()) return records.status();
  std::vector<AuditRecord> out;
  for (const auto& [key, value] : *records) {
    auto r = decode(value);
    if (!r || r->time_ms < since_ms) continue;
    out.push_back(std::move(*r));
  }
  // The newest `limit` of them, oldest first.
  if (out.size() > limit) out.erase(out.begin(), out.end() - static_cast<ptrdiff_t>(limit));
  return out;
}

StatusOr<AuditVerdict> AuditLog::verify() const {
  auto records = store_.scanRecords(kPrefix);
  if (!records.ok()) return records.status();
  AuditVerdict v;
  std::string prev_hash;
  uint64_t prev_seq = 0;
  auto bad = [&](uint64_t seq, std::string why) {
    v.ok = false;
    v.first_bad = seq;
    v.problem = "record " + std::to_string(seq) + ": " + std::move(why);
    return v;
  };
  for (const auto& [key, value] : *records) {
    const uint64_t key_seq = std::strtoull(key.c_str() + sizeof(kPrefix) - 1, nullptr, 10);
    json j = json::parse(value, nullptr, false);
    if (!j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned() ||
        !j.contains("hash") || !j["hash"].is_string()) {
      return bad(key_seq, "is not an audit record");
    }
    const uint64_t seq = j["seq"].get<uint64_t>();
    if (seq != key_seq) {
      return bad(key_seq, "is stored under seq " + std::to_string(key_seq) + " but says " +
                              std::to_string(seq));
    }
    if (seq != prev_seq + 1) {
      return bad(seq, prev_seq + 1 == seq - 1
                          ? "follows record " + std::to_string(prev_seq) + ": record " +
                                std::to_string(prev_seq + 1) + " is missing"
                          : "follows record " + std::to_string(prev_seq) + ": records " +
                                std::to_string(prev_seq + 1) + " to " + std::to_string(seq - 1) +
                                " are missing");
    }
    const std::string stored_hash = j["hash"].get<std::string>();
    json unhashed = j;
    unhashed.erase("hash");
    if (!common::constantTimeEqual(selfHash(unhashed), stored_hash)) {
      return bad(seq, "its content does not match its hash (changed after it was written)");
    }
    if (str(j, "prev") != prev_hash) {
      // This record is intact, so the one before it changed (hash included) or was replaced.
      if (prev_seq == 0) return bad(seq, "the first record names a predecessor");
      return bad(prev_seq, "does not match the hash record " + std::to_string(seq) +
                               " holds for it (changed or replaced after it was written)");
    }
    prev_hash = common::sha256Hex(value);
    prev_seq = seq;
    ++v.records;
  }
  return v;
}

}  // namespace flotilla::coordinator
