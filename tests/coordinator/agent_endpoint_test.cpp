// The agent endpoint over real ZeroMQ sockets: valid frames reach the
// handler; hostile ones are dropped and counted, never a crash.
#include "coordinator/agent_endpoint.hpp"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <random>

namespace flotilla::coordinator {
namespace {

class AgentEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(endpoint_.bind("tcp://127.0.0.1:*").ok());
    dealer_.set(zmq::sockopt::routing_id, "staging-eu");
    dealer_.set(zmq::sockopt::linger, 0);
    dealer_.connect(endpoint_.boundAddress());
    wake_ = eventfd(0, EFD_NONBLOCK);
  }
  void TearDown() override { close(wake_); }

  // Polls until `n` envelopes reached the handler or the deadline passes.
  void pump(size_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (received_.size() < n && std::chrono::steady_clock::now() < deadline) {
      endpoint_.poll(std::chrono::milliseconds(20), wake_,
                     [&](const std::string& id, schema::Envelope::Reader env) {
                       received_.emplace_back(id, env.which());
                     });
    }
  }

  void sendRegister() {
    capnp::MallocMessageBuilder m;
    m.initRoot<schema::Envelope>().initRegister().setCluster("staging-eu");
    dealer_.send(common::encodeFrame(m), zmq::send_flags::none);
  }

  std::string metrics() const { return metrics_.render(); }

  zmq::context_t context_{1};
  Metrics metrics_;
  AgentEndpoint endpoint_{context_, metrics_};
  zmq::socket_t dealer_{context_, zmq::socket_type::dealer};
  int wake_ = -1;
  std::vector<std::pair<std::string, schema::Envelope::Which>> received_;
};

TEST_F(AgentEndpointTest, ValidFrameReachesHandlerWithIdentity) {
  sendRegister();
  pump(1);
  ASSERT_EQ(received_.size(), 1u);
  EXPECT_EQ(received_[0].first, "staging-eu");
  EXPECT_EQ(received_[0].second, schema::Envelope::REGISTER);
  EXPECT_NE(metrics().find("flotilla_frames_received_total{type=\"register\"} 1"),
            std::string::npos);
}

TEST_F(AgentEndpointTest, GarbageIsDroppedAndCounted) {
  std::mt19937 rng(42);
  int sent = 0;
  for (size_t size : {1u, 7u, 8u, 16u, 24u, 64u, 1000u, 4096u}) {
    std::string junk(size, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    dealer_.send(zmq::buffer(junk), zmq::send_flags::none);
    ++sent;
  }
  // A multi-part message is not a frame we speak.
  dealer_.send(zmq::str_buffer("a"), zmq::send_flags::sndmore);
  dealer_.send(zmq::str_buffer("b"), zmq::send_flags::none);
  // And a valid frame after all of it still gets through.
  sendRegister();
  pump(1);
  ASSERT_EQ(received_.size(), 1u);
  EXPECT_EQ(received_[0].second, schema::Envelope::REGISTER);
  std::string m = metrics();
  EXPECT_NE(m.find("flotilla_frames_dropped_total{reason=\"bad_frame_count\"} 1"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("flotilla_frames_dropped_total{reason=\"malformed\"}"), std::string::npos) << m;
}

TEST_F(AgentEndpointTest, SendReachesTheAgentByClusterName) {
  sendRegister();
  pump(1);  // the ROUTER learns the routing id from the first frame
  capnp::MallocMessageBuilder m;
  m.initRoot<schema::Envelope>().initRegistered().setEpoch(7);
  endpoint_.send("staging-eu", m);
  endpoint_.send("nobody", m);  // unroutable: silently dropped, no exception
  zmq::message_t reply;
  dealer_.set(zmq::sockopt::rcvtimeo, 5000);
  ASSERT_TRUE(dealer_.recv(reply));
  auto decoded = common::DecodedEnvelope::decode(reply.data(), reply.size());
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ((*decoded)->root().getRegistered().getEpoch(), 7u);
}

TEST_F(AgentEndpointTest, WakeFdIsReported) {
  uint64_t one = 1;
  ASSERT_EQ(write(wake_, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  bool woke = endpoint_.poll(std::chrono::milliseconds(1000), wake_,
                             [](const std::string&, schema::Envelope::Reader) {});
  EXPECT_TRUE(woke);
}

}  // namespace
}  // namespace flotilla::coordinator
