// For the tests of the engine (tests/coordinator/engine*_test.cpp): a real Engine over a real
// RocksDB store in a temporary directory, a clock the test moves, and an outbox that records
// what the engine sends. Agents are played by the test: it registers them and answers their
// commands with the nonces the engine sent (as a real agent echoes them).
#pragma once

#include <capnp/message.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "common/codec.hpp"
#include "common/plan.hpp"
#include "coordinator/engine.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/outbox.hpp"
#include "coordinator/store.hpp"
#include "tests/support/files.hpp"

namespace flotilla::coordinator::testing {

class FakeClock : public common::Clock {
 public:
  // Interface
  common::SteadyTime now() const override { return now_; }
  common::SystemTime wallNow() const override {
    return common::SystemTime(std::chrono::seconds(1'800'000'000)) + (now_ - common::SteadyTime{});
  }
  void advance(std::chrono::milliseconds d) { now_ += d; }

 private:
  common::SteadyTime now_{};
};

struct Sent {
  std::string cluster;
  schema::Envelope::Which which;
  std::string stage;  // for commands and aborts
  uint32_t attempt = 0;
  uint64_t epoch = 0;
  std::string previous_version;  // FLOTILLA_PREVIOUS_VERSION of a command
  uint32_t heartbeat_ms = 0;     // of a Registered
};

class RecordingOutbox : public Outbox {
 public:
  // Interface
  void send(const std::string& cluster, capnp::MessageBuilder& message) override;
  // In these tests a connection is named after its cluster.
  void sendTo(const std::string& connection, capnp::MessageBuilder& message) override {
    send(connection, message);
  }
  void bindCluster(const std::string&, const std::string&) override {}
  bool connectionOpen(const std::string&) const override { return false; }
  void dropConnection(const std::string& connection) override { dropped.push_back(connection); }

  // "cluster:stage" of every command sent, in order.
  std::vector<std::string> commands() const;

  // The nonce of every command sent, by "deployment|stage|attempt" (kept across sent.clear()):
  // what a real agent echoes.
  std::map<std::string, std::string> nonces;
  std::vector<std::string> dropped;  // connections closed
  std::vector<Sent> sent;
};

// staging (staging-eu by name), then prod (by selector environment=production); apply and
// rollback.
common::Plan twoWaves();

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { openEngine(); }
  void TearDown() override {
    engine_.reset();
    store_.reset();
  }

  // (Re)starts the engine on the store: a restart of the coordinator.
  void openEngine();
  // One frame from the connection `identity`, then the end of the loop's turn.
  void deliver(const std::string& identity, capnp::MallocMessageBuilder& m);
  // A stage ref as an agent sends it: with the nonce of the command it was given ("" when
  // none was sent: what a forger has).
  void fillRef(schema::StageRef::Builder ref, const std::string& id, const std::string& stage,
               uint32_t attempt);
  // Registers `cluster` with the label environment=`env`, holding (deployment, stage, attempt,
  // running) stages that finished successfully unless running.
  void registerAgent(const std::string& cluster, const std::string& env,
                     std::vector<std::tuple<std::string, std::string, uint32_t, bool>> held = {});
  // The agent of `cluster` answers a stage.
  void result(const std::string& cluster, const std::string& id, const std::string& stage,
              schema::Outcome outcome = schema::Outcome::SUCCEEDED, uint32_t attempt = 1);
  // The state the store holds for deployment `id`.
  DeploymentState stored(const std::string& id);

  support::TempDir dir_{"engine-test"};
  FakeClock clock_;
  Metrics metrics_;
  RecordingOutbox outbox_;
  // The engine's rules, not agent trust (AgentGate has tests of its own): claims are believed.
  EngineOptions options_{std::chrono::milliseconds(3000), std::chrono::milliseconds(500), true};
  std::unique_ptr<Store> store_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace flotilla::coordinator::testing
