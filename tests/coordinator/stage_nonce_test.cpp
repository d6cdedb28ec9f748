// Tests for coordinator/stage_nonce.cpp: the nonce a stage command carries is the HMAC of the
// stage under the coordinator's secret, the same every time, and a frame is taken only with the
// nonce of exactly its stage and attempt.
#include "coordinator/stage_nonce.hpp"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <cctype>
#include <string>

namespace flotilla::coordinator {
namespace {

const std::string kSecret(64, 'f');

// A StageRef as an agent's frame would carry it.
class Ref {
 public:
  Ref(const std::string& deployment, const std::string& stage, uint32_t attempt,
      const std::string& nonce) {
    auto r = message_.initRoot<schema::StageRef>();
    r.setDeploymentId(deployment);
    r.setStageId(stage);
    r.setAttempt(attempt);
    r.setNonce(nonce);
  }
  schema::StageRef::Reader get() { return message_.getRoot<schema::StageRef>().asReader(); }

 private:
  capnp::MallocMessageBuilder message_;
};

TEST(StageNonce, IsTheHmacOfTheStageUnderTheSecret) {
  const StageNonce nonces(kSecret);
  // HMAC-SHA256(secret, "checkout-1\0staging-eu/apply\0" + attempt), computed independently.
  EXPECT_EQ(nonces.of("checkout-1", "staging-eu/apply", 1),
            "b7b2e8e1bb2b58493af2658072883efd28cf25606470dec0daace44b3bd0c4a4");
  EXPECT_EQ(nonces.of("checkout-1", "staging-eu/apply", 2),
            "327abc3743dd895e972f2a023e03b9a2d90e6f556acbfde2b875ca672e558af1");
  // Deterministic: a command sent again after a restart carries the same nonce.
  EXPECT_EQ(StageNonce(kSecret).of("checkout-1", "staging-eu/apply", 1),
            nonces.of("checkout-1", "staging-eu/apply", 1));
}

TEST(StageNonce, EveryFieldAndTheSecretChangeIt) {
  const StageNonce nonces(kSecret);
  const std::string base = nonces.of("checkout-1", "staging-eu/apply", 1);
  EXPECT_NE(nonces.of("checkout-2", "staging-eu/apply", 1), base);
  EXPECT_NE(nonces.of("checkout-1", "staging-eu/verify", 1), base);
  EXPECT_NE(nonces.of("checkout-1", "staging-eu/apply", 0), base);
  EXPECT_NE(StageNonce(std::string(64, 'e')).of("checkout-1", "staging-eu/apply", 1), base);
  // The fields cannot run into each other.
  EXPECT_NE(nonces.of("ab", "c", 1), nonces.of("a", "bc", 1));
  EXPECT_NE(nonces.of("a", "b1", 1), nonces.of("a", "b", 11));
}

TEST(StageNonce, ValidOnlyForItsOwnStageAndAttempt) {
  const StageNonce nonces(kSecret);
  const std::string nonce = nonces.of("checkout-1", "staging-eu/apply", 2);
  EXPECT_TRUE(nonces.valid(Ref("checkout-1", "staging-eu/apply", 2, nonce).get()));
  // The same nonce about another stage, attempt or deployment.
  EXPECT_FALSE(nonces.valid(Ref("checkout-1", "staging-eu/apply", 3, nonce).get()));
  EXPECT_FALSE(nonces.valid(Ref("checkout-1", "staging-eu/verify", 2, nonce).get()));
  EXPECT_FALSE(nonces.valid(Ref("checkout-2", "staging-eu/apply", 2, nonce).get()));
  EXPECT_FALSE(nonces.valid(Ref("checkout-1", "prod-eu-1/apply", 2, nonce).get()));
  // Made under another secret.
  EXPECT_FALSE(StageNonce(std::string(64, 'e'))
                   .valid(Ref("checkout-1", "staging-eu/apply", 2, nonce).get()));
}

TEST(StageNonce, MalformedNoncesAreRefused) {
  const StageNonce nonces(kSecret);
  const std::string nonce = nonces.of("checkout-1", "staging-eu/apply", 1);
  auto valid = [&](const std::string& n) {
    return nonces.valid(Ref("checkout-1", "staging-eu/apply", 1, n).get());
  };
  EXPECT_FALSE(valid(""));
  EXPECT_FALSE(valid(nonce.substr(0, 63)));
  EXPECT_FALSE(valid(nonce + "0"));
  EXPECT_FALSE(valid(nonce.substr(0, 32)));
  std::string upper = nonce;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_FALSE(valid(upper)) << "hex digits are lower case";
  std::string flipped = nonce;
  flipped[63] = flipped[63] == '0' ? '1' : '0';
  EXPECT_FALSE(valid(flipped));
  EXPECT_TRUE(valid(nonce));
}

TEST(StageNonce, WithoutASecretNothingIsValid) {
  // A coordinator whose secret did not load must not take the HMAC under the empty key.
  const StageNonce none("");
  const std::string nonce = none.of("checkout-1", "staging-eu/apply", 1);
  EXPECT_EQ(nonce.size(), 64u);
  EXPECT_FALSE(none.valid(Ref("checkout-1", "staging-eu/apply", 1, nonce).get()));
}

TEST(StageNonce, AFrameWithoutARefIsRefused) {
  // Fields an agent left out read as empty and 0.
  const StageNonce nonces(kSecret);
  capnp::MallocMessageBuilder message;
  message.initRoot<schema::StageRef>();
  EXPECT_FALSE(nonces.valid(message.getRoot<schema::StageRef>().asReader()));
}

}  // namespace
}  // namespace flotilla::coordinator
