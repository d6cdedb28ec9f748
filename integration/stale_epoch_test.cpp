// A real agent against a scripted coordinator: a command stamped with an epoch older than the
// newest the agent has seen is refused (answered "refused", nothing run, nothing recorded), also
// after the agent restarts, while this epoch's copy of the same stage still runs.
#include <capnp/message.h>

#include <optional>
#include <zmq.hpp>

#include "common/codec.hpp"
#include "tests/support/fleet.hpp"

#ifndef FLOTILLA_AGENT_BIN
#error "FLOTILLA_AGENT_BIN must be defined by CMake"
#endif

namespace flotilla::integration {
namespace {

using namespace support;

using common::toStd;

// What the test needs from one frame the agent sent.
struct Received {
  schema::Envelope::Which which = schema::Envelope::HEARTBEAT;
  std::string stage;
  schema::Outcome outcome = schema::Outcome::UNKNOWN;
  uint64_t epoch = 0;   // of a result; lastEpoch of a register
  std::string message;  // of a result
  std::vector<std::pair<std::string, schema::Outcome>> held;  // of a register
};

class StaleEpochTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    router_.set(zmq::sockopt::linger, 0);
    // A CURVE server holding the key the agent pins (no ZAP handler: any client key is let in).
    char pub[41];
    char sec[41];
    ASSERT_EQ(zmq_curve_keypair(pub, sec), 0);
    key_ = pub;
    router_.set(zmq::sockopt::curve_server, 1);
    router_.set(zmq::sockopt::curve_secretkey, std::string(sec));
    router_.bind("tcp://127.0.0.1:*");
    address_ = router_.get(zmq::sockopt::last_endpoint);
  }

  void TearDown() override {
    agent_.reset();
    FleetTest::TearDown();
  }

  // `pinned`: the coordinator key the agent is given ("" = this test's).
  void startAgentProcess(const std::string& pinned = "") {
    agent_.reset();
    agent_ = Process::spawn(
        "agent staging-eu",
        {FLOTILLA_AGENT_BIN, "--cluster", "staging-eu", "--coordinator", address_, "--state-dir",
         dir() + "/agent-state", "--workdir", dir() + "/work", "--heartbeat", "250ms",
         "--coordinator-key", pinned.empty() ? key_ : pinned},
        {}, dir() + "/agent.log");
    ASSERT_NE(agent_, nullptr);
  }

  // The next frame of type `which` (others, such as heartbeats, are skipped).
  std::optional<Received> next(schema::Envelope::Which which) {
    const auto give_up = std::chrono::steady_clock::now() + kWaitDeadline;
    while (std::chrono::steady_clock::now() < give_up) {
      zmq::pollitem_t item{static_cast<void*>(router_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t identity;
      zmq::message_t frame;
      if (!router_.recv(identity) || !identity.more() || !router_.recv(frame)) continue;
      identity_ = identity.to_string();
      auto decoded = common::DecodedEnvelope::decode(frame.data(), frame.size());
      if (!decoded.ok()) {
        ADD_FAILURE() << "the agent sent a frame that does not decode";
        continue;
      }
      auto env = (*decoded)->root();
      if (env.which() != which) continue;
      Received r;
      r.which = env.which();
      if (env.isStageResult()) {
        r.stage = toStd(env.getStageResult().getRef().getStageId());
        r.outcome = env.getStageResult().getOutcome();
        r.epoch = env.getStageResult().getEpoch();
        r.message = toStd(env.getStageResult().getMessage());
      } else if (env.isRegister()) {
        r.epoch = env.getRegister().getLastEpoch();
        for (auto h : env.getRegister().getHeld()) {
          r.held.emplace_back(toStd(h.getRef().getStageId()), h.getOutcome());
        }
      }
      return r;
    }
    ADD_FAILURE() << "the agent sent no " << common::messageTypeName(which) << ":\n"
                  << tailOf(dir() + "/agent.log", 20);
    return std::nullopt;
  }

  void send(capnp::MallocMessageBuilder& message) {
    zmq::message_t frame = common::encodeFrame(message);
    router_.send(zmq::buffer(identity_), zmq::send_flags::sndmore);
    router_.send(frame, zmq::send_flags::none);
  }

  void registered(uint64_t epoch) {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initRegistered();
    r.setEpoch(epoch);
    r.setHeartbeatIntervalMs(250);
    send(m);
  }

  // A command whose step touches dir()/ran-<tag>.
  void command(const std::string& stage, uint64_t epoch, const std::string& tag) {
    capnp::MallocMessageBuilder m;
    auto c = m.initRoot<schema::Envelope>().initStageCommand();
    auto ref = c.initRef();
    ref.setDeploymentId("web-1");
    ref.setStageId(stage);
    ref.setAttempt(1);
    c.setEpoch(epoch);
    c.setStep(schema::Step::APPLY);
    c.setCommand("touch " + dir() + "/ran-$FLOTILLA_TAG");
    c.setTimeoutMs(10000);
    auto env = c.initEnv(1);
    env[0].setKey("FLOTILLA_TAG");
    env[0].setValue(tag);
    send(m);
  }

  // Starts the agent, takes its register and answers it with `epoch`.
  void connectAgent(uint64_t epoch) {
    ASSERT_NO_FATAL_FAILURE(startAgentProcess());
    ASSERT_TRUE(next(schema::Envelope::REGISTER).has_value());
    registered(epoch);
  }

  // Sends command(stage, epoch, tag) and takes the agent's result, which must have `outcome`
  // (and, when it succeeded, the step must have run). nullopt (and a failure) without one.
  std::optional<Received> expectResult(const std::string& stage, uint64_t epoch,
                                       const std::string& tag, schema::Outcome outcome) {
    command(stage, epoch, tag);
    auto result = next(schema::Envelope::STAGE_RESULT);
    if (!result) return result;
    EXPECT_EQ(result->outcome, outcome) << result->message;
    if (outcome == schema::Outcome::SUCCEEDED) {
      EXPECT_TRUE(fileExists(dir() + "/ran-" + tag)) << tag << " did not run";
    }
    return result;
  }

  zmq::context_t context_{1};
  zmq::socket_t router_{context_, zmq::socket_type::router};
  std::string address_;
  std::string key_;
  std::string identity_;
  std::unique_ptr<Process> agent_;
};

TEST_F(StaleEpochTest, CommandFromAnOlderEpochIsRefusedAndNothingRuns) {
  ASSERT_NO_FATAL_FAILURE(connectAgent(5));

  // A late copy from the coordinator before the last restart (epoch 3).
  auto refused = expectResult("staging-eu/apply", 3, "epoch-3", schema::Outcome::REFUSED);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->stage, "staging-eu/apply");
  EXPECT_EQ(refused->epoch, 3u) << "the refusal names the epoch of the command it answers";
  EXPECT_NE(refused->message.find("epoch"), std::string::npos) << refused->message;

  // The refusal was not recorded: this epoch's copy of the same stage runs, once.
  ASSERT_TRUE(expectResult("staging-eu/apply", 5, "epoch-5", schema::Outcome::SUCCEEDED));
  EXPECT_FALSE(fileExists(dir() + "/ran-epoch-3")) << "the stale command ran";

  // The newest epoch survives a restart of the agent: a coordinator of epoch 4 is refused too.
  agent_->kill();
  ASSERT_NO_FATAL_FAILURE(startAgentProcess());
  auto reg = next(schema::Envelope::REGISTER);
  ASSERT_TRUE(reg.has_value());
  EXPECT_EQ(reg->epoch, 5u);
  ASSERT_EQ(reg->held.size(), 1u);
  EXPECT_EQ(reg->held[0].first, "staging-eu/apply");
  EXPECT_EQ(reg->held[0].second, schema::Outcome::SUCCEEDED);
  registered(4);
  auto again = expectResult("staging-eu/verify", 4, "epoch-4", schema::Outcome::REFUSED);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->stage, "staging-eu/verify");
  // A current command after it is taken: the agent answers in order, so by its result the
  // stale one is known not to have run.
  registered(6);
  ASSERT_TRUE(expectResult("staging-eu/verify", 6, "epoch-6", schema::Outcome::SUCCEEDED));
  EXPECT_FALSE(fileExists(dir() + "/ran-epoch-4")) << "the stale command ran";
}

// A coordinator that hands out an absurd epoch (2^63 - 1) is refused, and the epoch is not
// stored: the real coordinator's commands are still taken afterwards.
TEST_F(StaleEpochTest, AbsurdEpochIsNeverStored) {
  ASSERT_NO_FATAL_FAILURE(connectAgent(5));
  ASSERT_TRUE(expectResult("staging-eu/apply", 5, "epoch-5", schema::Outcome::SUCCEEDED));

  registered(UINT64_C(9223372036854775807));
  ASSERT_TRUE(expectResult("staging-eu/verify", UINT64_C(9223372036854775807), "absurd",
                           schema::Outcome::REFUSED));
  EXPECT_FALSE(fileExists(dir() + "/ran-absurd"));
  json state = json::parse(readFile(dir() + "/agent-state/agent.json"), nullptr, false);
  ASSERT_TRUE(state.is_object());
  EXPECT_EQ(state["highest_epoch"], 5u) << state.dump();
  EXPECT_NE(readFile(dir() + "/agent.log").find("not a plausible successor"), std::string::npos);

  // The next real epoch is still accepted.
  registered(6);
  ASSERT_TRUE(expectResult("staging-eu/verify", 6, "epoch-6", schema::Outcome::SUCCEEDED));
}

// An agent given another coordinator key never completes a handshake with this peer: nothing it
// sends is read, nothing it would be sent is run, and its log says why.
TEST_F(StaleEpochTest, WrongCoordinatorKeyRunsNothingAndSaysWhy) {
  char other_pub[41];
  char other_sec[41];
  ASSERT_EQ(zmq_curve_keypair(other_pub, other_sec), 0);
  ASSERT_NO_FATAL_FAILURE(startAgentProcess(other_pub));
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until) {
    zmq::pollitem_t item{static_cast<void*>(router_), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(100));
    EXPECT_FALSE(item.revents & ZMQ_POLLIN) << "a frame got through a handshake with the wrong key";
    if (item.revents & ZMQ_POLLIN) break;
  }
  EXPECT_TRUE(waitUntil("the agent to say why it cannot connect", [&] {
    return readFile(dir() + "/agent.log").find("failed: the peer does not hold the secret key") !=
           std::string::npos;
  }));
}

}  // namespace
}  // namespace flotilla::integration
