// Dashboard sessions: made from a token, looked up by cookie, ended on logout or expiry.
#include "coordinator/sessions.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/crypto.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using nlohmann::json;

namespace {

constexpr char kPrefix[] = "trust/session/";

std::string keyOf(const std::string& hash) { return kPrefix + hash; }

}  // namespace

Status Sessions::load() {
  auto records = store_.scanRecords(kPrefix);
  if (!records.ok()) return records.status();
  std::lock_guard<std::mutex> lock(mu_);
  by_hash_.clear();
  unreadable_.clear();
  for (const auto& [key, value] : *records) {
    const std::string hash = key.substr(sizeof(kPrefix) - 1);
    json j = json::parse(value, nullptr, false);
    if (!j.is_object() || !j.contains("token") || !j["token"].is_string() ||
        !j.contains("token_hash") || !j["token_hash"].is_string() || !j.contains("csrf") ||
        !j["csrf"].is_string() || !j.contains("created_ms") ||
        !j["created_ms"].is_number_integer() || !j.contains("expires_ms") ||
        !j["expires_ms"].is_number_integer()) {
      // A session is worth a login, not a coordinator that will not start: skipped (its
      // browser logs in again), and deleted when the next session is made.
      spdlog::warn("stored dashboard session {}...: not a session, ignored", hash.substr(0, 12));
      unreadable_.push_back(hash);
      continue;
    }
    by_hash_[hash] = Entry{j["token"].get<std::string>(), j["token_hash"].get<std::string>(),
                           j["csrf"].get<std::string>(), j["created_ms"].get<int64_t>(),
                           j["expires_ms"].get<int64_t>()};
  }
  return Status::Ok();
}

Status Sessions::eraseLocked(const std::string& hash) {
  by_hash_.erase(hash);
  return store_.deleteRecord(keyOf(hash));
}

StatusOr<NewSession> Sessions::create(const std::string& token, int64_t now_ms) {
  std::optional<TokenInfo> info = tokens_.find(token);
  if (!info) return Status::NotFound("no token named " + token);
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& hash : unreadable_) {
    Status s = store_.deleteRecord(keyOf(hash));
    if (!s.ok()) return s;
  }
  unreadable_.clear();
  // Expired sessions, and this token's oldest past its share, go first.
  std::vector<std::pair<int64_t, std::string>> own;  // (created, hash)
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    const std::string hash = it->first;
    const Entry& e = it->second;
    ++it;
    if (e.expires_ms <= now_ms) {
      Status s = eraseLocked(hash);
      if (!s.ok()) return s;
    } else if (e.token == token) {
      own.emplace_back(e.created_ms, hash);
    }
  }
  std::sort(own.begin(), own.end());
  for (size_t i = 0; i + kMaxSessionsPerToken <= own.size(); ++i) {
    Status s = eraseLocked(own[i].second);
    if (!s.ok()) return s;
  }
  if (by_hash_.size() >= kMaxSessions) {
    return Status::ResourceExhausted("too many dashboard sessions (" +
                                     std::to_string(kMaxSessions) + "): try again later");
  }
  NewSession made;
  made.id = common::randomHex(32);
  made.csrf = common::randomHex(32);
  made.expires_ms =
      now_ms + std::chrono::duration_cast<std::chrono::milliseconds>(kSessionLifetime).count();
  Entry e{token, info->hash, made.csrf, now_ms, made.expires_ms};
  const std::string hash = common::sha256Hex(made.id);
  Status s = store_.putRecord(keyOf(hash), json{{"token", e.token},
                                                {"token_hash", e.token_hash},
                                                {"csrf", e.csrf},
                                                {"created_ms", e.created_ms},
                                                {"expires_ms", e.expires_ms}}
                                               .dump());
  if (!s.ok()) return s;
  // In memory now, durable at the loop's flush: the browser gets its cookie only after it.
  by_hash_[hash] = std::move(e);
  return made;
}

Status Sessions::end(std::string_view id) {
  const std::string hash = common::sha256Hex(id);
  std::lock_guard<std::mutex> lock(mu_);
  if (!by_hash_.count(hash)) return Status::NotFound("no such session");
  return eraseLocked(hash);
}

std::optional<ActiveSession> Sessions::authenticate(std::string_view id, int64_t now_ms) const {
  if (id.empty() || id.size() > kMaxSessionIdBytes) return std::nullopt;
  const std::string hash = common::sha256Hex(id);
  Entry e;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto found = by_hash_.find(hash);
    if (found == by_hash_.end()) return std::nullopt;
    e = found->second;
  }
  if (e.expires_ms <= now_ms) return std::nullopt;
  std::optional<TokenInfo> token = tokens_.find(e.token);
  if (!token || !common::constantTimeEqual(token->hash, e.token_hash)) return std::nullopt;
  return ActiveSession{Actor{token->name, roleName(token->role), token->envs, ""}, e.csrf,
                       e.expires_ms};
}

size_t Sessions::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_hash_.size();
}

}  // namespace flotilla::coordinator
