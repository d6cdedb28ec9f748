// API tokens: who may call the HTTP API. A token is a random secret shown once; the store keeps
// only its SHA-256 (trust/token/<name>, coordinator/store.hpp) with the token's role and
// environments. The whole table is also held in memory, keyed by hash, because every request
// looks its token up.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.hpp"
#include "coordinator/actor.hpp"
#include "coordinator/store.hpp"

namespace flotilla::coordinator {

enum class Role {
  kViewer,    // reads everything, changes nothing
  kDeployer,  // submits, pauses, resumes, cancels, rolls back (in its environments)
  kApprover,  // approves waves (in its environments)
  kAdmin,     // everything: tokens, agent enrollment and revocation, freezes
};

const char* roleName(Role role);
std::optional<Role> parseRole(std::string_view name);

struct TokenInfo {
  std::string name;
  Role role = Role::kViewer;
  std::vector<std::string> envs;  // empty = every environment
  int64_t created_ms = 0;
  std::string created_by;
  std::string hash;  // SHA-256 of the secret, hex
};

// Longest Authorization token looked at; anything longer is refused unread.
inline constexpr size_t kMaxTokenBytes = 256;

// Checks name, role and environments of a token about to be created (one rule for the HTTP
// API and bootstrap-admin).
common::Status validateToken(const std::string& name, Role role,
                             const std::vector<std::string>& envs);

class Tokens {
 public:
  explicit Tokens(Store& store) : store_(store) {}

  // Reads every stored token into memory. Call once before anything else.
  common::Status load();

  // Engine thread (or an offline tool on a store without group commit): stores a new token
  // and returns its secret, the only time it exists outside the caller's hands.
  common::StatusOr<std::string> create(const std::string& name, Role role,
                                       const std::vector<std::string>& envs,
                                       const std::string& created_by, int64_t now_ms);
  // Engine thread: deletes the token; it stops working at once. NotFound when unknown.
  common::Status revoke(const std::string& name);

  // Any thread. The identity a presented secret stands for, or nothing.
  std::optional<Actor> authenticate(std::string_view secret) const;
  std::vector<TokenInfo> list() const;
  // Any thread. The token by that name, if it exists.
  std::optional<TokenInfo> find(const std::string& name) const;
  // Name of some admin token, if one exists.
  std::optional<std::string> anyAdmin() const;

 private:
  Store& store_;
  mutable std::mutex mu_;
  std::map<std::string, TokenInfo> by_name_;              // guarded by mu_
  std::unordered_map<std::string, std::string> by_hash_;  // hash -> name, guarded by mu_
};

// `flotilla-coordinator bootstrap-admin`: on a store opened by this process alone (no group
// commit), creates the first admin token `name` and audits it. FailedPrecondition when an admin
// token exists already. Returns the secret.
common::StatusOr<std::string> bootstrapAdmin(Store& store, const std::string& name, int64_t now_ms);

}  // namespace flotilla::coordinator
