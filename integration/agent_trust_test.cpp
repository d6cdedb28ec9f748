// The agent channel against hostile peers, with the real coordinator and agents: every attack of
// issue 10 on the agent port gets refused, counted in /metrics and audited, while the enrolled
// agents carry on undisturbed.
#include <capnp/message.h>
#include <zmq.h>

#include <optional>
#include <thread>
#include <zmq.hpp>

#include "common/codec.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

using common::toStd;

// A peer on the agent port that the test drives by hand.
class Rogue {
 public:
  // `curve` false: the NULL mechanism. `keys` empty: a fresh key pair.
  Rogue(zmq::context_t& context, const std::string& address, const std::string& server_key,
        bool curve = true, std::pair<std::string, std::string> keys = {})
      : socket_(context, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    if (curve) {
      if (keys.first.empty()) {
        char pub[41];
        char sec[41];
        zmq_curve_keypair(pub, sec);
        keys = {pub, sec};
      }
      public_key_ = keys.first;
      socket_.set(zmq::sockopt::curve_serverkey, server_key);
      socket_.set(zmq::sockopt::curve_publickey, keys.first);
      socket_.set(zmq::sockopt::curve_secretkey, keys.second);
    }
    socket_.connect(address);
  }

  const std::string& publicKey() const { return public_key_; }

  void send(capnp::MallocMessageBuilder& m) {
    socket_.send(common::encodeFrame(m), zmq::send_flags::dontwait);
  }
  // Blocks while the socket's queue is full (at most 5 s): every frame of a flood goes out.
  void sendRaw(const std::string& bytes) {
    socket_.set(zmq::sockopt::sndtimeo, 5000);
    (void)socket_.send(zmq::buffer(bytes), zmq::send_flags::none);
  }

  void sendRegister(const std::string& cluster, const std::map<std::string, std::string>& labels,
                    const std::string& token = "") {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initRegister();
    r.setCluster(cluster);
    r.setAgentVersion("rogue");
    r.setEnrollToken(token);
    auto l = r.initLabels(static_cast<unsigned>(labels.size()));
    unsigned i = 0;
    for (const auto& [k, v] : labels) {
      l[i].setKey(k);
      l[i].setValue(v);
      ++i;
    }
    send(m);
  }

  void sendResult(const std::string& deployment, const std::string& stage, uint32_t attempt,
                  uint64_t epoch, const std::string& nonce = "") {
    capnp::MallocMessageBuilder m;
    auto r = m.initRoot<schema::Envelope>().initStageResult();
    auto ref = r.initRef();
    ref.setDeploymentId(deployment);
    ref.setStageId(stage);
    ref.setAttempt(attempt);
    ref.setNonce(nonce);
    r.setEpoch(epoch);
    r.setOutcome(schema::Outcome::SUCCEEDED);
    r.setMessage("forged");
    send(m);
  }

  // The next frame (of any type) within `timeout`.
  std::optional<schema::Envelope::Which> next(std::chrono::milliseconds timeout,
                                              std::string* refused_reason = nullptr) {
    zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t frame;
      if (!socket_.recv(frame, zmq::recv_flags::dontwait)) continue;
      auto decoded = common::DecodedEnvelope::decode(frame.data(), frame.size());
      if (!decoded.ok()) continue;
      auto env = (*decoded)->root();
      if (env.isRefused() && refused_reason) *refused_reason = toStd(env.getRefused().getReason());
      if (env.isRegistered()) epoch_ = env.getRegistered().getEpoch();
      if (env.isStageCommand()) {
        auto ref = env.getStageCommand().getRef();
        command_ = {toStd(ref.getDeploymentId()), toStd(ref.getStageId()), ref.getAttempt(),
                    toStd(ref.getNonce())};
      }
      return env.which();
    }
    return std::nullopt;
  }
  // Frames until one of `which` (or none within `timeout`).
  bool expect(schema::Envelope::Which which, std::chrono::milliseconds timeout,
              std::string* refused_reason = nullptr) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      auto got = next(std::chrono::duration_cast<std::chrono::milliseconds>(
                          until - std::chrono::steady_clock::now()),
                      refused_reason);
      if (got && *got == which) return true;
    }
    return false;
  }
  uint64_t epoch() const { return epoch_; }
  // The last stage command received.
  struct Command {
    std::string deployment;
    std::string stage;
    uint32_t attempt = 0;
    std::string nonce;
  };
  const Command& command() const { return command_; }

 private:
  Command command_;
  zmq::socket_t socket_;
  std::string public_key_;
  uint64_t epoch_ = 0;
};

// prod-eu-1's apply waits for dir()/release-prod-eu-1 (at most 20 s): the window in which a
// forged result could complete it.
const ScriptPlan kPlan{.version = "2.0.0",
                       .build = "",
                       .apply =
                           "if [ \"$FLOTILLA_CLUSTER\" = prod-eu-1 ]; then for i in $(seq 200); do "
                           "[ -f @DIR@/release-prod-eu-1 ] && break; sleep 0.1; done; fi; " +
                           logStep("apply") + " && " + kRecordVersion,
                       .verify = "",
                       .timeout = "60s",
                       .waves = {waveSelecting("prod", "environment: production")}};

// A plan for edge-1 alone: apply and rollback do nothing.
const ScriptPlan kEdgePlan = [] {
  ScriptPlan plan = noopPlan("edge", "1.0.0", {waveOf("edge", {"edge-1"})});
  plan.build = "";
  return plan;
}();

class AgentTrustTest : public FleetTest {
 protected:
  std::string metrics() { return get("/metrics").body; }
  // The value of flotilla_frames_dropped_total{reason="..."} (0 when absent).
  long dropped(const std::string& reason) {
    const std::string m = metrics();
    const std::string key = "flotilla_frames_dropped_total{reason=\"" + reason + "\"} ";
    auto at = m.find(key);
    return at == std::string::npos ? 0 : std::stol(m.substr(at + key.size()));
  }
  json agents() { return get("/api/v1/agents").parsed()["agents"]; }
  bool listed(const std::string& cluster) {
    for (const auto& a : agents()) {
      if (a.value("cluster", "") == cluster) return true;
    }
    return false;
  }
  json audit() { return get("/api/v1/audit?limit=10000").parsed(); }
  bool audited(const std::string& action, const std::string& detail_part = "") {
    json a = audit();
    if (!a.is_object() || !a.contains("records")) return false;
    for (const auto& r : a["records"]) {
      if (r.value("action", "") == action &&
          r.value("detail", "").find(detail_part) != std::string::npos) {
        return true;
      }
    }
    return false;
  }

  zmq::context_t context_{1};
};

TEST_F(AgentTrustTest, StrangersAndImpostorsAreRefusedWhileTheFleetCarriesOn) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string key = coordinatorKey();
  ASSERT_EQ(key.size(), 40u);
  CommandResult shown =
      runCommand({FLOTILLA_COORDINATOR_BIN, "show-key", "--data-dir", dir() + "/data"}, dir(), 30s);
  EXPECT_EQ(trim(shown.out), key) << "show-key works while the coordinator runs";

  // 1. The NULL mechanism gets no answer at all.
  Rogue plain(context_, agentAddress(), key, /*curve=*/false);
  plain.sendRegister("prod-eu-1", {{"environment", "production"}});
  EXPECT_FALSE(plain.next(1500ms).has_value());

  // 2. An unknown CURVE key is refused in the handshake (no enrollment open), counted, audited.
  Rogue stranger(context_, agentAddress(), key);
  stranger.sendRegister("prod-eu-1", {{"environment", "production"}});
  EXPECT_FALSE(stranger.next(1500ms).has_value());
  EXPECT_TRUE(
      waitUntil("the unknown key to be counted", [&] { return dropped("unknown_key") > 0; }));
  EXPECT_TRUE(
      waitUntil("the refusal to be audited", [&] { return audited("agent.connection_refused"); }));

  // 3. A key enrolled for rogue-1 may only ever speak as rogue-1.
  const std::string token = enrollmentToken("rogue-1");
  Rogue impostor(context_, agentAddress(), key);
  impostor.sendRegister("rogue-1", {{"environment", "staging"}}, token);
  ASSERT_TRUE(impostor.expect(schema::Envelope::REGISTERED, 10s)) << "enrollment as rogue-1";
  // The API's copy of the registry is republished at most ten times a second.
  EXPECT_TRUE(waitUntil("rogue-1 to be listed", [&] { return listed("rogue-1"); }));
  std::string why;
  impostor.sendRegister("prod-eu-1", {{"environment", "production"}});
  ASSERT_TRUE(impostor.expect(schema::Envelope::REFUSED, 10s, &why));
  EXPECT_NE(why.find("rogue-1, not prod-eu-1"), std::string::npos) << why;
  EXPECT_GT(dropped("identity_mismatch"), 0);
  // Its environment label is pinned at enrollment.
  impostor.sendRegister("rogue-1", {{"environment", "production"}});
  ASSERT_TRUE(impostor.expect(schema::Envelope::REFUSED, 10s, &why));
  EXPECT_NE(why.find("pinned"), std::string::npos) << why;

  // 4. A used token is spent; an expired one is dead.
  const std::string other_token = enrollmentToken("rogue-2");  // keeps enrollment open
  Rogue reuse(context_, agentAddress(), key);
  reuse.sendRegister("rogue-1", {{"environment", "staging"}}, token);
  ASSERT_TRUE(reuse.expect(schema::Envelope::REFUSED, 10s, &why));
  EXPECT_NE(why.find("not valid"), std::string::npos) << why;
  const std::string short_lived = enrollmentToken("rogue-3", 1);
  std::this_thread::sleep_for(1500ms);
  Rogue late(context_, agentAddress(), key);
  late.sendRegister("rogue-3", {{"environment", "staging"}}, short_lived);
  ASSERT_TRUE(late.expect(schema::Envelope::REFUSED, 10s, &why));
  EXPECT_NE(why.find("expired"), std::string::npos) << why;
  EXPECT_FALSE(listed("rogue-3"));

  // 5. Oversized labels are refused before anything is stored.
  std::map<std::string, std::string> many;
  for (int i = 0; i < 40; ++i) many["k" + std::to_string(i)] = std::string(100, 'v');
  Rogue labelled(context_, agentAddress(), key);
  labelled.sendRegister("rogue-2", many, other_token);
  ASSERT_TRUE(labelled.expect(schema::Envelope::REFUSED, 10s, &why));
  EXPECT_NE(why.find("labels"), std::string::npos) << why;
  EXPECT_FALSE(listed("rogue-2"));

  // 6. A forged "succeeded" for prod-eu-1's running apply never advances the deployment: not
  // from an unregistered connection, not from rogue-1, not from a second connection that holds
  // prod-eu-1's real key while the real agent is connected.
  const std::string id = submitPlan("plan.yaml", kPlan.yaml());
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitUntil("prod-eu-1's apply to run", [&] {
    return findEvent(events(id), "stage.started", "", "prod-eu-1", "apply") >= 0;
  }));
  const long mismatch_before = dropped("unregistered");
  Rogue unregistered(context_, agentAddress(), key, true,
                     {trim(readFile(agentStateDir("prod-eu-2") + "/keys/agent.pub")),
                      trim(readFile(agentStateDir("prod-eu-2") + "/keys/agent.key"))});
  unregistered.sendResult(id, "prod-eu-1/apply", 1, impostor.epoch());
  impostor.sendResult(id, "prod-eu-1/apply", 1, impostor.epoch());
  Rogue twin(context_, agentAddress(), key, true,
             {trim(readFile(agentStateDir("prod-eu-1") + "/keys/agent.pub")),
              trim(readFile(agentStateDir("prod-eu-1") + "/keys/agent.key"))});
  twin.sendRegister("prod-eu-1", {{"environment", "production"}, {"region", "eu"}});
  ASSERT_TRUE(twin.expect(schema::Envelope::REFUSED, 10s, &why));
  EXPECT_NE(why.find("another connection"), std::string::npos) << why;
  twin.sendResult(id, "prod-eu-1/apply", 1, impostor.epoch());
  EXPECT_TRUE(waitUntil("the forged results to be refused",
                        [&] { return dropped("unregistered") >= mismatch_before + 2; }));
  EXPECT_TRUE(holdsFor(
      "prod-eu-1's apply still running: no forged result counted",
      [&] {
        const json ev = events(id);
        return findEvent(ev, "stage.succeeded", "", "prod-eu-1") < 0 &&
               findEvent(ev, "stage.failed", "", "prod-eu-1") < 0 && stateOf(id) == "running";
      },
      1000ms));
  EXPECT_FALSE(hasStepLog(id, "prod-eu-1"));
  // The real agent carries on and finishes its own step.
  writeFile(dir() + "/release-prod-eu-1", "");
  ASSERT_TRUE(waitForState(id, "succeeded"));
  EXPECT_EQ(stepLog(id, "prod-eu-1"), (std::vector<std::string>{"apply"}));
  // The selector picked the real production clusters only.
  json detail = deployment(id);
  std::vector<std::string> picked;
  for (const auto& c : detail["waves"][0]["clusters"]) picked.push_back(c["name"]);
  EXPECT_EQ(picked, (std::vector<std::string>{"prod-eu-1", "prod-eu-2", "prod-us-1"}));

  // 7. A garbage flood from an enrolled key: counted, and the log grows by a bounded amount.
  const size_t log_before = readFile(coordinatorLog()).size();
  for (int i = 0; i < 20000; ++i) impostor.sendRaw(std::string("\x01\x02garbage\n\x1b[31m", 14));
  EXPECT_TRUE(waitUntil("the flood to be counted", [&] { return dropped("malformed") >= 20000; }));
  const size_t grown = readFile(coordinatorLog()).size() - log_before;
  EXPECT_LT(grown, 16u * 1024) << "the log grew by " << grown << " bytes";
  EXPECT_EQ(readFile(coordinatorLog()).find("\x1b[31m"), std::string::npos) << "unescaped";

  // 8. Revoked: the connection is dropped and the key cannot come back.
  CommandResult revoke = cli({"agents", "revoke", "rogue-1"});
  EXPECT_EQ(revoke.exit_code, 0) << revoke.out << revoke.err;
  EXPECT_TRUE(audited("agent.revoked"));
  impostor.sendRegister("rogue-1", {{"environment", "staging"}});
  EXPECT_FALSE(impostor.expect(schema::Envelope::REGISTERED, 2s));
  // 9. `agents remove` forgets a cluster that is gone.
  CommandResult removed = cli({"agents", "remove", "rogue-1"});
  EXPECT_EQ(removed.exit_code, 0) << removed.out << removed.err;
  EXPECT_TRUE(waitUntil("rogue-1 to be forgotten", [&] { return !listed("rogue-1"); }));

  // Through all of it the enrolled agents stayed connected.
  ASSERT_NO_FATAL_FAILURE(waitForAgents({"staging-eu", "prod-eu-1", "prod-eu-2", "prod-us-1"}));
}

// An enrolled agent that got a command can answer it, but only with that command's nonce: a
// result for its own cluster's running stage with no nonce, a made-up one, or the real one for
// another attempt is dropped and counted, and the stage waits for the real answer.
TEST_F(AgentTrustTest, AResultCountsOnlyWithItsCommandsNonce) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator());
  const std::string key = coordinatorKey();
  // The token first: an unknown key's handshake is refused while no enrollment is open, and
  // libzmq does not retry a connection refused that way.
  const std::string token = enrollmentToken("edge-1");
  Rogue edge(context_, agentAddress(), key);
  edge.sendRegister("edge-1", {{"environment", "staging"}}, token);
  ASSERT_TRUE(edge.expect(schema::Envelope::REGISTERED, 10s));
  const std::string id = submitPlan("edge.yaml", kEdgePlan.yaml());
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(edge.expect(schema::Envelope::STAGE_COMMAND, 10s));
  const Rogue::Command cmd = edge.command();
  ASSERT_EQ(cmd.stage, "edge-1/apply");
  ASSERT_EQ(cmd.nonce.size(), 64u);
  const long before = dropped("bad_nonce");
  edge.sendResult(id, cmd.stage, cmd.attempt, edge.epoch(), "");
  edge.sendResult(id, cmd.stage, cmd.attempt, edge.epoch(), std::string(64, 'a'));
  edge.sendResult(id, cmd.stage, cmd.attempt + 1, edge.epoch(), cmd.nonce);
  EXPECT_TRUE(waitUntil("the three results to be dropped",
                        [&] { return dropped("bad_nonce") >= before + 3; }));
  EXPECT_TRUE(holdsFor(
      "edge-1's apply still in flight",
      [&] { return findEvent(events(id), "stage.succeeded", "", "edge-1") < 0; }, 1000ms));
  EXPECT_TRUE(waitUntil("the bad nonce to be audited",
                        [&] { return audited("agent.frame_refused", "nonce"); }));
  // The answer with the command's own nonce is taken.
  edge.sendResult(id, cmd.stage, cmd.attempt, edge.epoch(), cmd.nonce);
  EXPECT_TRUE(waitForState(id, "succeeded"));
}

}  // namespace
}  // namespace flotilla::integration
