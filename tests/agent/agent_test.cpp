// agent/agent.cpp in process: a real Agent on its own thread, talking ZeroMQ to a ROUTER socket
// the test holds on loopback (the coordinator's side, played by hand). One agent per process:
// ctest runs every TEST on its own (the stop flag is process-wide).
#include "agent/agent.hpp"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "common/codec.hpp"
#include "tests/support/files.hpp"

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;
using common::Outcome;
using common::Step;
using common::toStd;

// A frame the agent sent, decoded.
struct Received {
  zmq::message_t peer;
  std::unique_ptr<common::DecodedEnvelope> envelope;
  schema::Envelope::Reader root() const { return envelope->root(); }
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.set(zmq::sockopt::linger, 0);
    router_.bind("tcp://127.0.0.1:*");
    AgentOptions options;
    options.cluster = "c1";
    options.coordinator = router_.get(zmq::sockopt::last_endpoint);
    options.insecure = true;  // the channel's keys are tested in integration/agent_trust_test
    options.state_dir = dir_.path() + "/state";
    options.workdir = dir_.path();
    options.kill_grace = 500ms;
    auto records = StageStore::open(options.state_dir, options.cluster);
    ASSERT_TRUE(records.ok()) << records.status().toString();
    agent_ = std::make_unique<Agent>(options, std::move(records).value());
    thread_ = std::thread([this] {
      result_ = agent_->run();
      finished_ = true;
    });
  }
  void TearDown() override {
    Agent::requestStop();
    if (thread_.joinable()) thread_.join();
    EXPECT_TRUE(result_.ok()) << result_.toString();
  }

  // The next frame of type `which` from the agent (others skipped), within 15 s.
  std::optional<Received> next(schema::Envelope::Which which) {
    const auto give_up = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < give_up) {
      zmq::pollitem_t item{static_cast<void*>(router_), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 100ms);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      Received r;
      zmq::message_t body;
      if (!router_.recv(r.peer) || !router_.recv(body)) continue;
      auto decoded = common::DecodedEnvelope::decode(body.data(), body.size());
      if (!decoded.ok()) {
        ADD_FAILURE() << "the agent sent a bad frame: " << decoded.status().toString();
        continue;
      }
      r.envelope = std::move(decoded).value();
      peer_ = zmq::message_t(r.peer.data(), r.peer.size());
      if (r.root().which() == which) return r;
    }
    ADD_FAILURE() << "no " << common::messageTypeName(which) << " from the agent within 15 s";
    return std::nullopt;
  }

  void send(capnp::MallocMessageBuilder& message) {
    zmq::message_t peer(peer_.data(), peer_.size());
    router_.send(peer, zmq::send_flags::sndmore);
    router_.send(common::encodeFrame(message), zmq::send_flags::none);
  }
  void sendRaw(const std::string& bytes) {
    zmq::message_t peer(peer_.data(), peer_.size());
    router_.send(peer, zmq::send_flags::sndmore);
    router_.send(zmq::buffer(bytes), zmq::send_flags::none);
  }

  // Waits for the agent's register and accepts it under `epoch`.
  void registerAgent(uint64_t epoch) {
    auto reg = next(schema::Envelope::REGISTER);
    ASSERT_TRUE(reg);
    EXPECT_EQ(toStd(reg->root().getRegister().getCluster()), "c1");
    capnp::MallocMessageBuilder message;
    auto ok = message.initRoot<schema::Envelope>().initRegistered();
    ok.setEpoch(epoch);
    ok.setHeartbeatIntervalMs(1000);
    send(message);
  }

  void sendCommand(uint64_t epoch, const std::string& stage, const std::string& command,
                   Step step = Step::APPLY) {
    capnp::MallocMessageBuilder message;
    auto cmd = message.initRoot<schema::Envelope>().initStageCommand();
    auto ref = cmd.initRef();
    ref.setDeploymentId("d1");
    ref.setStageId(stage);
    ref.setAttempt(1);
    ref.setNonce("nonce-1");
    cmd.setEpoch(epoch);
    cmd.setStep(step);
    cmd.setCommand(command);
    cmd.setTimeoutMs(30000);
    send(message);
  }

  // The result of `stage`, skipping others.
  std::optional<Received> resultOf(const std::string& stage) {
    for (int i = 0; i < 10; ++i) {
      auto r = next(schema::Envelope::STAGE_RESULT);
      if (!r) return std::nullopt;
      if (toStd(r->root().getStageResult().getRef().getStageId()) == stage) return r;
    }
    return std::nullopt;
  }

  int linesIn(const std::string& file) const {
    std::ifstream in(dir_.path() + "/" + file);
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }

  support::TempDir dir_{"agent"};
  zmq::context_t context_{1};
  zmq::socket_t router_{context_, zmq::socket_type::router};
  zmq::message_t peer_;
  std::unique_ptr<Agent> agent_;
  std::thread thread_;
  common::Status result_ = common::Status::Ok();
  std::atomic<bool> finished_{false};
};

TEST_F(AgentTest, RunsAStepOnceAndAnswersARepeatFromItsRecord) {
  registerAgent(1);
  sendCommand(1, "c1/apply", "echo ran >> count; echo applied");
  auto first = resultOf("c1/apply");
  ASSERT_TRUE(first);
  auto res = first->root().getStageResult();
  EXPECT_EQ(res.getOutcome(), Outcome::SUCCEEDED);
  EXPECT_EQ(toStd(res.getMessage()), "applied");
  EXPECT_EQ(toStd(res.getRef().getNonce()), "nonce-1");  // echoed

  sendCommand(1, "c1/apply", "echo ran >> count; echo applied");
  auto repeat = resultOf("c1/apply");
  ASSERT_TRUE(repeat);
  EXPECT_EQ(repeat->root().getStageResult().getOutcome(), Outcome::SUCCEEDED);
  EXPECT_EQ(linesIn("count"), 1);  // ran once
}

TEST_F(AgentTest, AStopLetsTheRunningStepFinishAndStartsNoNewOne) {
  registerAgent(1);
  sendCommand(1, "c1/apply",
              "touch started; while [ ! -e go ]; do sleep 0.02; done; echo ran >> count");
  for (int i = 0; i < 500 && !std::filesystem::exists(dir_.path() + "/started"); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(std::filesystem::exists(dir_.path() + "/started"));
  Agent::requestStop();  // the first request drains
  std::this_thread::sleep_for(400ms);
  EXPECT_FALSE(finished_) << "the agent stopped with a step running";
  // A new step while draining: neither run, nor recorded, nor answered.
  sendCommand(1, "c1/verify", "echo ran >> verified", Step::VERIFY);
  std::this_thread::sleep_for(400ms);
  std::ofstream(dir_.path() + "/go") << "go\n";
  auto r = resultOf("c1/apply");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->root().getStageResult().getOutcome(), Outcome::SUCCEEDED);
  for (int i = 0; i < 500 && !finished_; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(finished_) << "the agent did not stop once its step ended";
  thread_.join();
  EXPECT_EQ(linesIn("count"), 1);
  EXPECT_EQ(linesIn("verified"), 0);
  agent_.reset();  // lets go of the state dir
  auto records = StageStore::open(dir_.path() + "/state", "c1");
  ASSERT_TRUE(records.ok()) << records.status().toString();
  ASSERT_EQ((*records)->all().size(), 1u);
  EXPECT_EQ((*records)->all()[0].key.stage, "c1/apply");
}

TEST_F(AgentTest, ACommandFromAnOlderEpochIsRefusedAndNotRun) {
  registerAgent(5);
  // The heartbeat says the registration went through before the stale command comes.
  ASSERT_TRUE(next(schema::Envelope::HEARTBEAT));
  sendCommand(4, "c1/apply", "echo ran >> count");
  auto r = resultOf("c1/apply");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->root().getStageResult().getOutcome(), Outcome::REFUSED);
  EXPECT_NE(toStd(r->root().getStageResult().getMessage()).find("older than epoch 5"),
            std::string::npos);
  EXPECT_EQ(linesIn("count"), 0);
}

TEST_F(AgentTest, AnAbortStopsARunningStep) {
  registerAgent(1);
  sendCommand(1, "c1/apply", "echo started; sleep 30");
  ASSERT_TRUE(next(schema::Envelope::STAGE_PROGRESS));  // "started": it runs
  capnp::MallocMessageBuilder message;
  auto abort = message.initRoot<schema::Envelope>().initAbort();
  auto ref = abort.initRef();
  ref.setDeploymentId("d1");
  ref.setStageId("c1/apply");
  ref.setAttempt(1);
  ref.setNonce("nonce-1");
  abort.setEpoch(1);
  abort.setReason("operator said stop");
  send(message);
  auto r = resultOf("c1/apply");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->root().getStageResult().getOutcome(), Outcome::ABORTED);
  EXPECT_EQ(toStd(r->root().getStageResult().getMessage()), "aborted: operator said stop");
}

TEST_F(AgentTest, GarbageIsDroppedAndTheAgentGoesOn) {
  registerAgent(1);
  ASSERT_TRUE(next(schema::Envelope::HEARTBEAT));
  sendRaw(std::string("\x00\x00\x00\x00\xff\xff\xff\x7f garbage", 17));
  sendRaw("");
  sendCommand(1, "c1/verify", "echo fine");
  auto r = resultOf("c1/verify");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->root().getStageResult().getOutcome(), Outcome::SUCCEEDED);
}

TEST_F(AgentTest, ACommandForAnotherClusterIsDropped) {
  registerAgent(1);
  ASSERT_TRUE(next(schema::Envelope::HEARTBEAT));
  sendCommand(1, "c2/apply", "echo ran >> count");
  sendCommand(1, "c1/build", "echo mine");
  auto r = resultOf("c1/build");
  ASSERT_TRUE(r);
  EXPECT_EQ(linesIn("count"), 0);
}

TEST_F(AgentTest, AStepItDoesNotKnowIsRefusedAndNotRunAsAScript) {
  registerAgent(1);
  const auto newer = static_cast<Step>(static_cast<uint16_t>(common::kLastStep) + 1);
  // A known stage id, so only the step number is new.
  sendCommand(1, "c1/apply", "echo ran >> count", newer);
  auto r = resultOf("c1/apply");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->root().getStageResult().getOutcome(), Outcome::REFUSED);
  EXPECT_NE(toStd(r->root().getStageResult().getMessage()).find("unknown step"), std::string::npos)
      << toStd(r->root().getStageResult().getMessage());
  EXPECT_EQ(linesIn("count"), 0);
}

}  // namespace
}  // namespace flotilla::agent
