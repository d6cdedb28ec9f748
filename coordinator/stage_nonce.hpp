// Command nonces: each stage command carries HMAC-SHA256(secret, deployment, stage, attempt),
// and a result, progress or alert frame about a stage is taken only with that nonce. A peer
// that never received the command cannot produce it, even an enrolled one speaking for its
// own cluster (a forged "succeeded" for a stage it was not sent, a guessed next attempt).
// Deterministic, so nothing is stored: a command sent again after a restart carries the same
// nonce, and an agent answering from its record echoes the one it was given.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "flotilla.capnp.h"

namespace flotilla::coordinator {

class StageNonce {
 public:
  // `secret`: the coordinator's, kept in its data dir (loadOrCreateNonceSecret).
  explicit StageNonce(std::string secret) : secret_(std::move(secret)) {}
  std::string of(std::string_view deployment, std::string_view stage, uint32_t attempt) const;
  bool valid(schema::StageRef::Reader ref) const;

 private:
  std::string secret_;
};

}  // namespace flotilla::coordinator
