// API tokens: creation, revocation, lookup.
#include "coordinator/tokens.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/crypto.hpp"
#include "common/rules.hpp"
#include "common/time_format.hpp"
#include "coordinator/audit.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using nlohmann::json;

namespace {

constexpr char kPrefix[] = "trust/token/";
constexpr size_t kMaxEnvs = 32;
constexpr size_t kMaxTokens = 10000;

std::string keyOf(const std::string& name) { return kPrefix + name; }

std::string encode(const TokenInfo& t) {
  return json{{"hash", t.hash},
              {"role", roleName(t.role)},
              {"envs", t.envs},
              {"created_at", common::formatRfc3339(common::fromUnixMillis(t.created_ms))},
              {"created_by", t.created_by}}
      .dump();
}

StatusOr<TokenInfo> decode(const std::string& key, const std::string& value) {
  TokenInfo t;
  t.name = key.substr(sizeof(kPrefix) - 1);
  json j = json::parse(value, nullptr, false);
  auto bad = [&](const std::string& why) {
    return Status::Corruption("stored token " + t.name + ": " + why);
  };
  if (!j.is_object()) return bad("not a JSON object");
  if (!j.contains("hash") || !j["hash"].is_string()) return bad("no hash");
  t.hash = j["hash"].get<std::string>();
  auto role = parseRole(j.value("role", ""));
  if (!role) return bad("unknown role");
  t.role = *role;
  if (j.contains("envs") && j["envs"].is_array()) {
    for (const auto& e : j["envs"]) {
      if (e.is_string()) t.envs.push_back(e.get<std::string>());
    }
  }
  if (j.contains("created_at") && j["created_at"].is_string()) {
    t.created_ms = common::parseRfc3339(j["created_at"].get<std::string>()).value_or(0);
  }
  if (j.contains("created_by") && j["created_by"].is_string()) {
    t.created_by = j["created_by"].get<std::string>();
  }
  return t;
}

}  // namespace

const char* roleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kDeployer:
      return "deployer";
    case Role::kApprover:
      return "approver";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::optional<Role> parseRole(std::string_view name) {
  for (Role r : {Role::kViewer, Role::kDeployer, Role::kApprover, Role::kAdmin}) {
    if (name == roleName(r)) return r;
  }
  return std::nullopt;
}

Status validateToken(const std::string& name, Role role, const std::vector<std::string>& envs) {
  if (!common::isValidName(name)) {
    return Status::InvalidArgument(std::string("not a valid token name: ") + common::kNameRule);
  }
  if (!envs.empty() && role != Role::kDeployer && role != Role::kApprover) {
    // A viewer reads everything and an admin may do everything: a limit would mean nothing.
    return Status::InvalidArgument(std::string("a ") + roleName(role) +
                                   " token cannot be limited to environments (only deployer "
                                   "and approver tokens can)");
  }
  if (envs.size() > kMaxEnvs) {
    return Status::InvalidArgument("at most " + std::to_string(kMaxEnvs) + " environments");
  }
  for (const auto& env : envs) {
    if (!common::isValidName(env)) {
      return Status::InvalidArgument(std::string("not a valid environment name: ") +
                                     common::kNameRule);
    }
  }
  return Status::Ok();
}

Status Tokens::load() {
  auto records = store_.scanRecords(kPrefix);
  if (!records.ok()) return records.status();
  std::lock_guard<std::mutex> lock(mu_);
  by_name_.clear();
  by_hash_.clear();
  for (const auto& [key, value] : *records) {
    auto token = decode(key, value);
    if (!token.ok()) return token.status();
    by_hash_[token->hash] = token->name;
    by_name_[token->name] = std::move(token).value();
  }
  return Status::Ok();
}

StatusOr<std::string> Tokens::create(const std::string& name, Role role,
                                     const std::vector<std::string>& envs,
                                     const std::string& created_by, int64_t now_ms) {
  Status valid = validateToken(name, role, envs);
  if (!valid.ok()) return valid;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (by_name_.count(name)) {
      return Status::AlreadyExists("a token named " + name +
                                   " exists; revoke it first to replace it");
    }
    if (by_name_.size() >= kMaxTokens) {
      return Status::ResourceExhausted("too many tokens (" + std::to_string(kMaxTokens) + ")");
    }
  }
  std::string secret = common::newSecret("flt");
  TokenInfo t;
  t.name = name;
  t.role = role;
  t.envs = envs;
  std::sort(t.envs.begin(), t.envs.end());
  t.envs.erase(std::unique(t.envs.begin(), t.envs.end()), t.envs.end());
  t.created_ms = now_ms;
  t.created_by = created_by;
  t.hash = common::sha256Hex(secret);
  Status s = store_.putRecord(keyOf(name), encode(t));
  if (!s.ok()) return s;
  // In memory now, durable at the loop's flush: nobody holds the secret before the caller's
  // answer, which waits for the flush.
  std::lock_guard<std::mutex> lock(mu_);
  by_hash_[t.hash] = name;
  by_name_[name] = std::move(t);
  return secret;
}

Status Tokens::revoke(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return Status::NotFound("no token named " + name);
    // Out of memory first: the token stops working now, even before the delete is durable.
    by_hash_.erase(it->second.hash);
    by_name_.erase(it);
  }
  return store_.deleteRecord(keyOf(name));
}

std::optional<Actor> Tokens::authenticate(std::string_view secret) const {
  if (secret.empty() || secret.size() > kMaxTokenBytes) return std::nullopt;
  // The lookup is by hash: its timing can say something about the SHA-256 of a guess, never
  // about a stored secret. The final comparison is constant-time all the same.
  const std::string hash = common::sha256Hex(secret);
  std::lock_guard<std::mutex> lock(mu_);
  auto found = by_hash_.find(hash);
  if (found == by_hash_.end()) return std::nullopt;
  auto token = by_name_.find(found->second);
  if (token == by_name_.end() || !common::constantTimeEqual(token->second.hash, hash)) {
    return std::nullopt;
  }
  return Actor{token->second.name, roleName(token->second.role), token->second.envs, ""};
}

std::vector<TokenInfo> Tokens::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<TokenInfo> out;
  out.reserve(by_name_.size());
  for (const auto& [name, t] : by_name_) out.push_back(t);
  return out;
}

std::optional<TokenInfo> Tokens::find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Tokens::anyAdmin() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, t] : by_name_) {
    if (t.role == Role::kAdmin) return name;
  }
  return std::nullopt;
}

StatusOr<std::string> bootstrapAdmin(Store& store, const std::string& name, int64_t now_ms) {
  Tokens tokens(store);
  Status s = tokens.load();
  if (!s.ok()) return s;
  if (auto admin = tokens.anyAdmin()) {
    return Status::FailedPrecondition("an admin token exists already (" + *admin +
                                      "); an admin creates more with 'flotilla tokens create'");
  }
  AuditLog audit(store);
  s = audit.load();
  if (!s.ok()) return s;
  auto secret = tokens.create(name, Role::kAdmin, {}, "bootstrap-admin", now_ms);
  if (!secret.ok()) return secret.status();
  s = audit.append(AuditEntry{"bootstrap-admin", "", "bootstrap-admin", name, "ok", "",
                              "first admin token created"},
                   now_ms);
  if (!s.ok()) return s;
  return secret;
}

}  // namespace flotilla::coordinator
