// The agent endpoint over real ZeroMQ sockets with CurveZMQ: valid frames from admitted keys
// reach the handler with their connection and key; peers without an admitted key, or without
// CURVE at all, never do; hostile frames are dropped and counted, never a crash.
#include "coordinator/agent_endpoint.hpp"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <random>

namespace flotilla::coordinator {
namespace {

struct Keys {
  std::string pub;
  std::string sec;
};

Keys newKeys() {
  char pub[41];
  char sec[41];
  EXPECT_EQ(zmq_curve_keypair(pub, sec), 0);
  return {pub, sec};
}

class AgentEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(endpoint_
                    .bind("tcp://127.0.0.1:*",
                          [this](const std::string& key, const std::string&) {
                            ++checks_;
                            return key == agent_.pub;
                          })
                    .ok());
    wake_ = eventfd(0, EFD_NONBLOCK);
    connectDealer(dealer_, agent_);
  }
  void TearDown() override { close(wake_); }

  void connectDealer(zmq::socket_t& socket, const Keys& keys, bool curve = true) {
    socket.set(zmq::sockopt::linger, 0);
    if (curve) {
      socket.set(zmq::sockopt::curve_serverkey, server_.pub);
      socket.set(zmq::sockopt::curve_publickey, keys.pub);
      socket.set(zmq::sockopt::curve_secretkey, keys.sec);
    }
    socket.connect(endpoint_.boundAddress());
  }

  // Polls until `n` envelopes reached the handler or the deadline passes.
  void pump(size_t n, std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (received_.size() < n && std::chrono::steady_clock::now() < until) {
      endpoint_.poll(std::chrono::milliseconds(20), wake_,
                     [&](const Peer& peer, schema::Envelope::Reader env) {
                       received_.emplace_back(peer, env.which());
                     });
    }
  }

  static void sendRegister(zmq::socket_t& socket) {
    capnp::MallocMessageBuilder m;
    m.initRoot<schema::Envelope>().initRegister().setCluster("staging-eu");
    socket.send(common::encodeFrame(m), zmq::send_flags::none);
  }

  std::string metrics() const { return metrics_.render(); }

  zmq::context_t context_{1};
  Metrics metrics_;
  Keys server_ = newKeys();
  Keys agent_ = newKeys();
  AgentEndpoint endpoint_{context_, metrics_, EndpointSecurity{server_.sec}};
  zmq::socket_t dealer_{context_, zmq::socket_type::dealer};
  int wake_ = -1;
  int checks_ = 0;
  std::vector<std::pair<Peer, schema::Envelope::Which>> received_;
};

TEST_F(AgentEndpointTest, ValidFrameReachesHandlerWithConnectionAndKey) {
  sendRegister(dealer_);
  pump(1);
  ASSERT_EQ(received_.size(), 1u);
  EXPECT_EQ(received_[0].first.key, agent_.pub);
  EXPECT_FALSE(received_[0].first.connection.empty());
  EXPECT_EQ(received_[0].first.address, "127.0.0.1");
  EXPECT_EQ(received_[0].second, schema::Envelope::REGISTER);
  EXPECT_GE(checks_, 1);
  EXPECT_TRUE(endpoint_.connectionOpen(received_[0].first.connection));
  EXPECT_NE(metrics().find("flotilla_frames_received_total{type=\"register\"} 1"),
            std::string::npos);
}

TEST_F(AgentEndpointTest, UnknownKeyAndNullMechanismNeverReachTheHandler) {
  zmq::socket_t stranger(context_, zmq::socket_type::dealer);
  connectDealer(stranger, newKeys());
  zmq::socket_t plain(context_, zmq::socket_type::dealer);
  connectDealer(plain, {}, /*curve=*/false);
  for (int i = 0; i < 3; ++i) {
    sendRegister(stranger);
    sendRegister(plain);
  }
  pump(1, std::chrono::milliseconds(1500));
  EXPECT_TRUE(received_.empty());
  // The enrolled agent is not disturbed by them.
  sendRegister(dealer_);
  pump(1);
  ASSERT_EQ(received_.size(), 1u);
  EXPECT_EQ(received_[0].first.key, agent_.pub);
}

TEST_F(AgentEndpointTest, GarbageIsDroppedAndCounted) {
  std::mt19937 rng(42);
  for (size_t size : {1u, 7u, 8u, 16u, 24u, 64u, 1000u, 4096u}) {
    std::string junk(size, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    dealer_.send(zmq::buffer(junk), zmq::send_flags::none);
  }
  // A multi-part message is not a frame we speak.
  dealer_.send(zmq::str_buffer("a"), zmq::send_flags::sndmore);
  dealer_.send(zmq::str_buffer("b"), zmq::send_flags::sndmore);
  dealer_.send(zmq::str_buffer("c"), zmq::send_flags::none);
  // And a valid frame after all of it still gets through.
  sendRegister(dealer_);
  pump(1);
  ASSERT_EQ(received_.size(), 1u);
  EXPECT_EQ(received_[0].second, schema::Envelope::REGISTER);
  std::string m = metrics();
  EXPECT_NE(m.find("flotilla_frames_dropped_total{reason=\"bad_frame_count\"} 1"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("flotilla_frames_dropped_total{reason=\"malformed\"}"), std::string::npos) << m;
}

TEST_F(AgentEndpointTest, SendGoesToTheConnectionTheClusterIsBoundTo) {
  sendRegister(dealer_);
  pump(1);
  ASSERT_EQ(received_.size(), 1u);
  capnp::MallocMessageBuilder m;
  m.initRoot<schema::Envelope>().initRegistered().setEpoch(7);
  endpoint_.send("staging-eu", m);  // not bound yet: dropped
  endpoint_.bindCluster("staging-eu", received_[0].first.connection);
  endpoint_.send("staging-eu", m);
  endpoint_.send("nobody", m);  // unbound: dropped, no exception
  zmq::message_t reply;
  dealer_.set(zmq::sockopt::rcvtimeo, 5000);
  ASSERT_TRUE(dealer_.recv(reply));
  auto decoded = common::DecodedEnvelope::decode(reply.data(), reply.size());
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ((*decoded)->root().getRegistered().getEpoch(), 7u);
  dealer_.set(zmq::sockopt::rcvtimeo, 300);
  EXPECT_FALSE(dealer_.recv(reply));  // exactly one arrived
  EXPECT_NE(metrics().find("flotilla_frames_dropped_total{reason=\"unbound_cluster\"} 2"),
            std::string::npos)
      << metrics();
}

TEST_F(AgentEndpointTest, ClosedAndDroppedConnectionsAreNoticed) {
  sendRegister(dealer_);
  pump(1);
  ASSERT_EQ(received_.size(), 1u);
  const std::string first = received_[0].first.connection;
  ASSERT_TRUE(endpoint_.connectionOpen(first));
  dealer_.close();
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (endpoint_.connectionOpen(first) && std::chrono::steady_clock::now() < until) {
    endpoint_.poll(std::chrono::milliseconds(20), wake_, [](const Peer&, auto) {});
  }
  EXPECT_FALSE(endpoint_.connectionOpen(first));

  // dropConnection closes a live one from our side; the peer reconnects on a new connection.
  zmq::socket_t again(context_, zmq::socket_type::dealer);
  connectDealer(again, agent_);
  sendRegister(again);
  pump(2);
  ASSERT_EQ(received_.size(), 2u);
  const std::string second = received_[1].first.connection;
  EXPECT_NE(second, first);
  endpoint_.dropConnection(second);
  until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (endpoint_.connectionOpen(second) && std::chrono::steady_clock::now() < until) {
    endpoint_.poll(std::chrono::milliseconds(20), wake_, [](const Peer&, auto) {});
  }
  EXPECT_FALSE(endpoint_.connectionOpen(second));
  sendRegister(again);  // libzmq reconnected: a third connection
  pump(3);
  ASSERT_EQ(received_.size(), 3u);
  EXPECT_NE(received_[2].first.connection, second);
}

TEST_F(AgentEndpointTest, WakeFdIsReported) {
  uint64_t one = 1;
  ASSERT_EQ(write(wake_, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  bool woke = endpoint_.poll(std::chrono::milliseconds(1000), wake_, [](const Peer&, auto) {});
  EXPECT_TRUE(woke);
}

}  // namespace
}  // namespace flotilla::coordinator
