// Command nonces (see stage_nonce.hpp).
#include "coordinator/stage_nonce.hpp"

#include "common/crypto.hpp"

namespace flotilla::coordinator {

std::string StageNonce::of(std::string_view deployment, std::string_view stage,
                           uint32_t attempt) const {
  // NUL cannot occur in ids, so the fields cannot run into each other.
  std::string data;
  data.reserve(deployment.size() + stage.size() + 16);
  data.append(deployment).push_back('\0');
  data.append(stage).push_back('\0');
  data.append(std::to_string(attempt));
  return common::hmacSha256Hex(secret_, data);
}

bool StageNonce::valid(schema::StageRef::Reader ref) const {
  auto nonce = ref.getNonce();
  if (secret_.empty() || nonce.size() != 64) return false;
  auto deployment = ref.getDeploymentId();
  auto stage = ref.getStageId();
  return common::constantTimeEqual(
      std::string_view(nonce.cStr(), nonce.size()),
      of(std::string_view(deployment.cStr(), deployment.size()),
         std::string_view(stage.cStr(), stage.size()), ref.getAttempt()));
}

}  // namespace flotilla::coordinator
