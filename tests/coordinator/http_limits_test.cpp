// The HTTP abuse limits below the server: token buckets, stream slots, and the connection
// watchdog against real loopback sockets (the process's own, found as the server would).
#include "coordinator/http_limits.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "tests/support/net.hpp"

namespace flotilla::coordinator {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(RateLimiterTest, BurstThenRateAndKeysAreApart) {
  RateLimiter limiter(2.0, 3.0);
  const auto t0 = Clock::now();
  std::chrono::milliseconds retry{0};
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.allow("a", t0, &retry)) << i;
  EXPECT_FALSE(limiter.allow("a", t0, &retry));
  EXPECT_EQ(retry, 500ms);                      // one token at 2/s
  EXPECT_TRUE(limiter.allow("b", t0, &retry));  // another key has its own bucket
  EXPECT_FALSE(limiter.allow("a", t0 + 400ms, &retry));
  EXPECT_TRUE(limiter.allow("a", t0 + 500ms, &retry));
  // Refills up to the burst, not beyond.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.allow("a", t0 + 100s, &retry)) << i;
  EXPECT_FALSE(limiter.allow("a", t0 + 100s, &retry));
}

TEST(RateLimiterTest, ZeroRateMeansNoLimit) {
  RateLimiter limiter(0, 1);
  std::chrono::milliseconds retry{0};
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.allow("a", Clock::now(), &retry));
}

TEST(StreamSlotsTest, CapsInAllAndPerKeyAndReleases) {
  StreamSlots slots(3, 2);
  auto a1 = slots.acquire("a");
  auto a2 = slots.acquire("a");
  ASSERT_TRUE(a1 && a2);
  EXPECT_EQ(slots.acquire("a"), nullptr);  // per key
  auto b1 = slots.acquire("b");
  ASSERT_TRUE(b1);
  EXPECT_EQ(slots.acquire("c"), nullptr);  // in all
  EXPECT_EQ(slots.open(), 3);
  a1.reset();
  EXPECT_EQ(slots.open(), 2);
  EXPECT_NE(slots.acquire("a"), nullptr);  // released on destruction (and again here)
}

// A listening socket on 127.0.0.1 and connections to it from `source`, accepted: the accepted
// ends are what the watchdog sees as the API's connections.
class WatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    ASSERT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(::listen(listener_, 64), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  void TearDown() override {
    for (int fd : fds_) ::close(fd);
    ::close(listener_);
  }
  // Connects from `source`; returns {client end, accepted end}.
  std::pair<int, int> connectFrom(const std::string& source) {
    const int fd = support::connectFrom(source, port_);
    EXPECT_GE(fd, 0) << "cannot connect from " << source;
    int accepted = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    fds_.push_back(fd);
    fds_.push_back(accepted);
    return {fd, accepted};
  }
  // The client's port, as the accepted end `fd` sees it.
  static int peerPort(int fd) {
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len);
    return ntohs(peer.sin_port);
  }
  // The server end was shut down: the client reads end of file (within a second on a loaded
  // machine; nothing arrives on a connection that was not).
  static bool shut(int client, int wait_ms = 1000) {
    pollfd p{client, POLLIN, 0};
    if (::poll(&p, 1, wait_ms) <= 0) return false;
    char c;
    return ::recv(client, &c, 1, MSG_DONTWAIT) == 0;
  }
  // A watchdog with `limits` on this test's port, driven by hand (sweep()) rather than by its
  // own thread.
  std::unique_ptr<ConnectionWatch> handDriven(const HttpLimits& limits) {
    auto watch = std::make_unique<ConnectionWatch>(metrics_, limits);
    watch->start(port_);
    watch->stop();
    return watch;
  }
  int listener_ = -1;
  int port_ = 0;
  std::vector<int> fds_;
  Metrics metrics_;
};

TEST_F(WatchTest, CutsConnectionsWithoutARequestHeadAfterTheDeadline) {
  auto watch = handDriven({.header_deadline = 5s});
  auto [slow_client, slow_server] = connectFrom("127.0.0.7");
  auto [done_client, done_server] = connectFrom("127.0.0.7");
  const auto t0 = Clock::now();
  watch->sweep(t0);
  // The second one delivered its request head.
  watch->markRouted("127.0.0.7", peerPort(done_server));
  watch->sweep(t0 + 4s);
  EXPECT_FALSE(shut(slow_client, 50));
  watch->sweep(t0 + 6s);
  EXPECT_TRUE(shut(slow_client));
  EXPECT_FALSE(shut(done_client, 50));
  EXPECT_NE(
      metrics_.render().find("flotilla_http_connections_cut_total{reason=\"header_deadline\"} 1"),
      std::string::npos)
      << metrics_.render();
  (void)slow_server;
}

TEST_F(WatchTest, CutsAClientsNewestWaitingConnectionsOverItsCap) {
  auto watch = handDriven({.per_client = 3});
  std::vector<int> clients;
  const auto t0 = Clock::now();
  for (int i = 0; i < 5; ++i) {
    clients.push_back(connectFrom("127.0.0.8").first);
    watch->sweep(t0 + std::chrono::milliseconds(i));  // each first seen a moment later
  }
  auto other = connectFrom("127.0.0.9").first;  // another address is not affected
  // A connection with its request head does not count against the cap.
  auto [routed_client, routed_server] = connectFrom("127.0.0.8");
  watch->markRouted("127.0.0.8", peerPort(routed_server));
  watch->sweep(t0 + 10ms);
  for (int fd : clients) EXPECT_FALSE(shut(fd, 50)) << "cut before it had a second";
  watch->sweep(t0 + 1100ms);
  int cut = 0;
  for (int fd : clients) cut += shut(fd, 200) ? 1 : 0;
  // Two over the cap of three, the newest ones.
  EXPECT_EQ(cut, 2);
  EXPECT_TRUE(shut(clients[4]));
  EXPECT_TRUE(shut(clients[3]));
  EXPECT_FALSE(shut(clients[0], 50));
  EXPECT_FALSE(shut(other, 50));
  EXPECT_FALSE(shut(routed_client, 50));
}

TEST_F(WatchTest, RequestsThatDragOnAreCutButStreamsAreNot) {
  auto watch = handDriven({.request_deadline = 60s});
  auto [request_client, request_server] = connectFrom("127.0.0.10");
  auto [stream_client, stream_server] = connectFrom("127.0.0.10");
  watch->markRouted("127.0.0.10", peerPort(request_server));
  watch->markStreaming("127.0.0.10", peerPort(stream_server));
  const auto t0 = Clock::now();
  watch->sweep(t0);
  watch->sweep(t0 + 59s);
  EXPECT_FALSE(shut(request_client, 50));
  watch->sweep(t0 + 61s);
  EXPECT_TRUE(shut(request_client));
  EXPECT_FALSE(shut(stream_client, 50));
  watch->sweep(t0 + 3600s);
  EXPECT_FALSE(shut(stream_client, 50));
}

}  // namespace
}  // namespace flotilla::coordinator
