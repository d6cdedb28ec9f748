// Dashboard sessions: a browser trades an API token for a session (`POST /api/v1/session`), held
// in an HttpOnly, SameSite=Strict cookie since a browser's EventSource cannot send an
// Authorization header. A session stands for the token it was made from, for as long as that
// token exists (a revoked token ends its sessions) and at most kSessionLifetime. Each carries a
// CSRF secret the page reads once and sends back in a header with every change.
//
// The store keeps only the SHA-256 of a session id (trust/session/<hash>, coordinator/store.hpp)
// so that a coordinator restart keeps browsers logged in; the table is also held in memory,
// since every request from the page looks its session up.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "coordinator/actor.hpp"
#include "coordinator/store.hpp"
#include "coordinator/tokens.hpp"

namespace flotilla::coordinator {

inline constexpr std::chrono::hours kSessionLifetime{12};
// Bounds: a token's oldest sessions are ended past kMaxSessionsPerToken, and nobody gets one
// past kMaxSessions in all.
inline constexpr size_t kMaxSessionsPerToken = 16;
inline constexpr size_t kMaxSessions = 4096;
// Longest session id looked at in a cookie; anything longer is refused unread.
inline constexpr size_t kMaxSessionIdBytes = 128;

// A session just made: the id for the cookie (shown this once), the CSRF secret.
struct NewSession {
  std::string id;
  std::string csrf;
  int64_t expires_ms = 0;
};

// A session presented by a browser, as it stands now.
struct ActiveSession {
  Actor actor;
  std::string csrf;
  int64_t expires_ms = 0;
};

class Sessions {
 public:
  Sessions(Store& store, const Tokens& tokens) : store_(store), tokens_(tokens) {}

  // Reads every stored session into memory (expired and unreadable ones are left for the next
  // create() to delete). Call once, after the tokens are loaded.
  common::Status load();

  // Engine thread: a new session for the token named `token` (which just authenticated).
  common::StatusOr<NewSession> create(const std::string& token, int64_t now_ms);
  // Engine thread: ends the session; NotFound when there is none by that id.
  common::Status end(std::string_view id);

  // Any thread. The identity and CSRF secret of a presented session id, or nothing (unknown,
  // expired, or its token revoked or replaced since).
  std::optional<ActiveSession> authenticate(std::string_view id, int64_t now_ms) const;

  size_t size() const;

 private:
  struct Entry {
    std::string token;
    std::string token_hash;  // of the token when the session was made: a new token by the
                             // same name does not revive it
    std::string csrf;
    int64_t created_ms = 0;
    int64_t expires_ms = 0;
  };

  // Engine thread, mu_ held: deletes one session (memory and store).
  common::Status eraseLocked(const std::string& hash);

  Store& store_;
  const Tokens& tokens_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> by_hash_;  // sha256(id) -> session, guarded by mu_
  std::vector<std::string> unreadable_;   // stored sessions load() could not read, guarded by mu_
};

}  // namespace flotilla::coordinator
