// Tests for agent/haproxy.cpp against a real HAProxy (/usr/sbin/haproxy, Debian 12: 2.6) with
// real HTTP traffic from libcurl through its frontend to two in-process backends, "v1" and "v2".
#include "agent/haproxy.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/files.hpp"
#include "tests/support/haproxy.hpp"
#include "tests/support/http_server.hpp"
#include "tests/support/traffic.hpp"

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using support::Tally;

constexpr char kBackend[] = "checkout";
constexpr int kSlots = 8;
constexpr auto kAdminTimeout = 2000ms;
constexpr int kRequests = 200;

std::string slot(int n) { return "srv" + std::to_string(n); }

// A replica stand-in: answers "/" with its version (the body and an X-Version header) from
// 127.0.0.1 on a port of the kernel's choice, and counts what reaches it (the server side is
// the authority on "no request reached v2").
class HttpBackend {
 public:
  explicit HttpBackend(std::string version) : version_(std::move(version)) {
    server_.server().Get("/", [this](const httplib::Request&, httplib::Response& res) {
      hits_.fetch_add(1);
      res.set_header("X-Version", version_);
      res.set_content(version_, "text/plain");
    });
    // httplib writes headers and body separately; with Nagle on, each answer on a reused
    // connection waits out HAProxy's delayed ACK (~40 ms), and 200 requests take seconds.
    server_.server().set_tcp_nodelay(true);
    server_.start();
  }

  bool running() const { return server_.running(); }
  int port() const { return server_.port(); }
  int hits() const { return hits_.load(); }

 private:
  const std::string version_;
  std::atomic<int> hits_{0};
  support::LocalHttpServer server_;  // last: stopped before what its handler uses goes
};

// One HAProxy per test (tests/support/haproxy.hpp: foreground, owned by its PID, stats socket
// and config in a fresh directory) with kSlots slots, and two HTTP backends to point them at.
class HaproxyAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    v1_ = std::make_unique<HttpBackend>("v1");
    v2_ = std::make_unique<HttpBackend>("v2");
    ASSERT_TRUE(v1_->running() && v2_->running()) << "cannot start the HTTP backends";
    haproxy_ = support::Haproxy::start(dir_.path(), "admin", kBackend, kSlots);
    ASSERT_NE(haproxy_, nullptr);
    admin_ = std::make_unique<HaproxyAdmin>(haproxy_->socketPath(), kAdminTimeout);
  }

  void TearDown() override {
    if (haproxy_) {
      haproxy_->stop();
      if (HasFailure()) {
        std::cerr << "haproxy log (" << haproxy_->logPath() << "):\n"
                  << support::readFile(haproxy_->logPath()) << "\n";
      }
    }
    v1_.reset();
    v2_.reset();
  }

  // `n` requests through the frontend, one after the other on one keep-alive connection.
  Tally send(int n) { return support::tally(support::sendRequests(haproxy_->url(), n)); }

  // kRequests requests, every one answered by v1; not one reached v2.
  void expectAllToV1(const std::string& why) {
    const int v2_hits = v2_->hits();
    Tally traffic = send(kRequests);
    EXPECT_EQ(traffic.of("v1"), static_cast<size_t>(kRequests)) << traffic.describe();
    EXPECT_EQ(v2_->hits(), v2_hits) << why;
  }

  // kRequests requests, none failed, a share near `v2_share` answered by v2.
  void expectV2Share(double v2_share) {
    Tally traffic = send(kRequests);
    EXPECT_EQ(traffic.failed, 0u) << traffic.describe();
    EXPECT_NEAR(traffic.share("v2"), v2_share, 0.06) << traffic.describe();
  }

  // The order Flotilla fills a slot in: the address while still in maintenance, so no request
  // meets the placeholder 127.0.0.1:1, then the weight, then ready.
  void fillSlot(const std::string& server, int port, int weight) {
    ASSERT_TRUE(admin_->setServerAddress(kBackend, server, "127.0.0.1", port).ok());
    ASSERT_TRUE(admin_->setWeight(kBackend, server, weight).ok());
    ASSERT_TRUE(admin_->setServerState(kBackend, server, ServerState::kReady).ok());
  }

  void fillBoth(int w1, int w2) {
    fillSlot("srv1", v1_->port(), w1);
    fillSlot("srv2", v2_->port(), w2);
  }

  ServerInfo server(const std::string& name) {
    auto servers = admin_->showServers(kBackend);
    EXPECT_TRUE(servers.ok()) << servers.status().toString();
    if (servers.ok()) {
      for (const auto& s : *servers) {
        if (s.name == name) return s;
      }
    }
    ADD_FAILURE() << "no server " << name << " in show servers state";
    return {};
  }

  support::TempDir dir_{"haproxy"};
  std::unique_ptr<HttpBackend> v1_;
  std::unique_ptr<HttpBackend> v2_;
  std::unique_ptr<support::Haproxy> haproxy_;
  std::unique_ptr<HaproxyAdmin> admin_;
};

TEST_F(HaproxyAdminTest, CanaryWeightsSetTheTrafficShare) {
  fillBoth(90, 10);
  struct Step {
    int w1, w2;
    double v2_share;
  };
  // Canary steps [10, 50, 100] as weight pairs that sum to 100.
  for (const Step step : {Step{90, 10, 0.10}, Step{50, 50, 0.50}, Step{0, 100, 1.0}}) {
    SCOPED_TRACE("weights " + std::to_string(step.w1) + "/" + std::to_string(step.w2));
    ASSERT_TRUE(admin_->setWeight(kBackend, "srv1", step.w1).ok());
    ASSERT_TRUE(admin_->setWeight(kBackend, "srv2", step.w2).ok());
    expectV2Share(step.v2_share);
  }
}

TEST_F(HaproxyAdminTest, ZeroWeightSendsNoRequestToTheServer) {
  fillBoth(50, 50);
  Tally before = send(20);
  ASSERT_GT(before.of("v2"), 0u) << "v2 must serve before its weight drops: " << before.describe();

  ASSERT_TRUE(admin_->setWeight(kBackend, "srv2", 0).ok());
  expectAllToV1("a request reached v2 at weight 0");

  ServerInfo srv2 = server("srv2");
  EXPECT_EQ(srv2.weight, 0);
  EXPECT_EQ(srv2.state(), ServerState::kReady) << "weight 0 is not a state change";
  EXPECT_EQ(srv2.op_state, OpState::kRunning);
}

TEST_F(HaproxyAdminTest, DrainStopsNewRequestsAndKeepsTheWeight) {
  fillBoth(50, 50);
  ASSERT_TRUE(admin_->setServerState(kBackend, "srv2", ServerState::kDrain).ok());

  ServerInfo srv2 = server("srv2");
  EXPECT_EQ(srv2.state(), ServerState::kDrain);
  EXPECT_TRUE(srv2.draining());
  EXPECT_FALSE(srv2.inMaintenance());
  EXPECT_EQ(srv2.op_state, OpState::kRunning) << "a draining server is still up";
  EXPECT_EQ(srv2.weight, 50) << "drain zeroes the effective weight, not the configured one";

  expectAllToV1("a new request reached a draining server");

  ASSERT_TRUE(admin_->setServerState(kBackend, "srv2", ServerState::kReady).ok());
  expectV2Share(0.5);
}

TEST_F(HaproxyAdminTest, MaintTakesTheServerOutAndReadyBringsItBack) {
  fillBoth(50, 50);
  ASSERT_TRUE(admin_->setServerState(kBackend, "srv2", ServerState::kMaint).ok());

  ServerInfo srv2 = server("srv2");
  EXPECT_EQ(srv2.state(), ServerState::kMaint);
  EXPECT_TRUE(srv2.inMaintenance());
  EXPECT_EQ(srv2.op_state, OpState::kStopped);
  EXPECT_FALSE(srv2.isFreeSlot()) << "a parked replica at a real address is not a free slot";

  expectAllToV1("a request reached a server in maintenance");

  ASSERT_TRUE(admin_->setServerState(kBackend, "srv2", ServerState::kReady).ok());
  EXPECT_EQ(server("srv2").op_state, OpState::kRunning);
  expectV2Share(0.5);
}

TEST_F(HaproxyAdminTest, ReaddressingAServingSlotMovesItsTrafficAtOnce) {
  // A rolling update re-points a slot at the new replica; HAProxy's idle keep-alive
  // connections to the old address must not keep carrying requests.
  fillSlot("srv1", v1_->port(), 1);
  Tally before = send(20);
  ASSERT_EQ(before.of("v1"), 20u) << before.describe();

  ASSERT_TRUE(admin_->setServerAddress(kBackend, "srv1", "127.0.0.1", v2_->port()).ok());
  const int v1_hits = v1_->hits();
  Tally after = send(kRequests);
  EXPECT_EQ(after.of("v2"), static_cast<size_t>(kRequests)) << after.describe();
  EXPECT_EQ(v1_->hits(), v1_hits) << "a request still went to the old address";
}

TEST_F(HaproxyAdminTest, NoServingServerMeans503) {
  fillBoth(50, 50);
  ASSERT_TRUE(admin_->setServerState(kBackend, "srv1", ServerState::kMaint).ok());
  ASSERT_TRUE(admin_->setServerState(kBackend, "srv2", ServerState::kDrain).ok());
  Tally traffic = send(5);
  EXPECT_EQ(traffic.withStatus(503), 5u) << traffic.describe();
}

TEST_F(HaproxyAdminTest, ShowServersReflectsAddressPortWeightAndState) {
  // The config's slots: all free, at the placeholder, initial weight 1.
  auto initial = admin_->showServers(kBackend);
  ASSERT_TRUE(initial.ok()) << initial.status().toString();
  ASSERT_EQ(initial->size(), static_cast<size_t>(kSlots));
  for (int i = 0; i < kSlots; ++i) {
    const ServerInfo& s = (*initial)[i];
    EXPECT_EQ(s.name, slot(i + 1));
    EXPECT_EQ(s.address, kFreeSlotAddress);
    EXPECT_EQ(s.port, kFreeSlotPort);
    EXPECT_EQ(s.weight, 1);
    EXPECT_EQ(s.state(), ServerState::kMaint);
    EXPECT_TRUE(s.isFreeSlot());
  }

  fillSlot("srv1", v1_->port(), 90);
  ASSERT_TRUE(admin_->setServerAddress(kBackend, "srv2", "::1", 8443).ok());
  ASSERT_TRUE(admin_->setWeight(kBackend, "srv2", 7).ok());

  ServerInfo srv1 = server("srv1");
  EXPECT_EQ(srv1.address, "127.0.0.1");
  EXPECT_EQ(srv1.port, v1_->port());
  EXPECT_EQ(srv1.weight, 90);
  EXPECT_EQ(srv1.state(), ServerState::kReady);
  EXPECT_EQ(srv1.op_state, OpState::kRunning);
  // `disabled` in the config leaves its bit set after `state ready`; it is not maintenance.
  EXPECT_EQ(srv1.admin_state & kAdminConfigMaint, kAdminConfigMaint);
  EXPECT_FALSE(srv1.isFreeSlot());

  ServerInfo srv2 = server("srv2");
  EXPECT_EQ(srv2.address, "::1");
  EXPECT_EQ(srv2.port, 8443);
  EXPECT_EQ(srv2.weight, 7);
  EXPECT_EQ(srv2.state(), ServerState::kMaint);
  EXPECT_FALSE(srv2.isFreeSlot()) << "addressed but still in maintenance: taken, not free";

  auto free = admin_->freeServers(kBackend);
  ASSERT_TRUE(free.ok()) << free.status().toString();
  EXPECT_EQ(*free, (std::vector<std::string>{"srv3", "srv4", "srv5", "srv6", "srv7", "srv8"}));

  ASSERT_TRUE(admin_->releaseServer(kBackend, "srv1").ok());
  ServerInfo released = server("srv1");
  EXPECT_TRUE(released.isFreeSlot());
  EXPECT_EQ(released.weight, 1);
  free = admin_->freeServers(kBackend);
  ASSERT_TRUE(free.ok()) << free.status().toString();
  EXPECT_EQ(free->front(), "srv1");
  EXPECT_EQ(free->size(), 7u);
}

TEST_F(HaproxyAdminTest, UnknownBackendOrServerIsNotFound) {
  auto s = admin_->setServerState("nope", "srv1", ServerState::kReady);
  EXPECT_TRUE(s.isNotFound()) << s.toString();
  EXPECT_NE(s.message().find("No such backend."), std::string::npos) << s.toString();

  s = admin_->setServerState(kBackend, "srv99", ServerState::kReady);
  EXPECT_TRUE(s.isNotFound()) << s.toString();
  EXPECT_NE(s.message().find("No such server."), std::string::npos) << s.toString();

  s = admin_->setWeight(kBackend, "srv99", 10);
  EXPECT_TRUE(s.isNotFound()) << s.toString();
  s = admin_->setServerAddress(kBackend, "srv99", "127.0.0.1", 8080);
  EXPECT_TRUE(s.isNotFound()) << s.toString();
  s = admin_->releaseServer("nope", "srv1");
  EXPECT_TRUE(s.isNotFound()) << s.toString();

  auto servers = admin_->showServers("nope");
  EXPECT_TRUE(servers.status().isNotFound()) << servers.status().toString();
  EXPECT_NE(servers.status().message().find("Can't find backend."), std::string::npos);
  auto free = admin_->freeServers("nope");
  EXPECT_TRUE(free.status().isNotFound()) << free.status().toString();
}

TEST_F(HaproxyAdminTest, RawCommandsReturnTextOrHaproxysRefusal) {
  auto info = admin_->command("show info");
  ASSERT_TRUE(info.ok()) << info.status().toString();
  EXPECT_EQ(info->rfind("Name: HAProxy", 0), 0u) << *info;

  auto weight = admin_->command("get weight checkout/srv1");
  ASSERT_TRUE(weight.ok()) << weight.status().toString();
  EXPECT_EQ(weight->rfind("1 (initial 1)", 0), 0u) << *weight;

  auto no_slash = admin_->command("set server srv1 state ready");
  EXPECT_TRUE(no_slash.status().isFailedPrecondition()) << no_slash.status().toString();
  EXPECT_NE(no_slash.status().message().find("Require 'backend/server'."), std::string::npos);

  auto heavy = admin_->command("set weight checkout/srv1 300");
  EXPECT_TRUE(heavy.status().isFailedPrecondition()) << heavy.status().toString();
  auto bad_state = admin_->command("set server checkout/srv1 state sleepy");
  EXPECT_TRUE(bad_state.status().isFailedPrecondition()) << bad_state.status().toString();
  auto bad_addr = admin_->command("set server checkout/srv1 addr localhost port 80");
  EXPECT_TRUE(bad_addr.status().isFailedPrecondition()) << bad_addr.status().toString();
  auto unknown = admin_->command("frobnicate everything");
  EXPECT_TRUE(unknown.status().isFailedPrecondition()) << unknown.status().toString();
  auto missing = admin_->command("set weight checkout/srv99 3");
  EXPECT_TRUE(missing.status().isNotFound()) << missing.status().toString();
}

TEST_F(HaproxyAdminTest, InjectionAndBadArgumentsAreRefusedBeforeHaproxy) {
  const std::vector<std::string> commands = {"show info; set weight checkout/srv1 77",
                                             "show info\nset weight checkout/srv1 77",
                                             "show info\rset weight checkout/srv1 77",
                                             std::string("show info\0x", 11),
                                             "",
                                             "  "};
  for (const std::string& cmd : commands) {
    auto answer = admin_->command(cmd);
    EXPECT_TRUE(answer.status().isInvalidArgument())
        << "'" << cmd << "': " << answer.status().toString();
  }
  EXPECT_EQ(server("srv1").weight, 1) << "an injected command ran";

  for (const std::string name : {"srv1;show info", "srv 1", "", "a/b", "srv1\n", "\xc3\xbc"}) {
    SCOPED_TRACE("name '" + name + "'");
    EXPECT_TRUE(admin_->setWeight(kBackend, name, 5).isInvalidArgument());
    EXPECT_TRUE(admin_->setServerState(name, "srv1", ServerState::kReady).isInvalidArgument());
    EXPECT_TRUE(admin_->showServers(name).status().isInvalidArgument());
  }
  EXPECT_TRUE(admin_->setWeight(kBackend, "srv1", -1).isInvalidArgument());
  EXPECT_TRUE(admin_->setWeight(kBackend, "srv1", 257).isInvalidArgument());
  // HAProxy itself would take port 0 and wrap 70000 to 4464 without a word.
  EXPECT_TRUE(admin_->setServerAddress(kBackend, "srv1", "127.0.0.1", 0).isInvalidArgument());
  EXPECT_TRUE(admin_->setServerAddress(kBackend, "srv1", "127.0.0.1", 70000).isInvalidArgument());
  for (const std::string address : {"localhost", "1.2.3", "", "127.0.0.1 port 9"}) {
    EXPECT_TRUE(admin_->setServerAddress(kBackend, "srv1", address, 80).isInvalidArgument())
        << address;
  }
  ServerInfo srv1 = server("srv1");
  EXPECT_TRUE(srv1.isFreeSlot());
  EXPECT_EQ(srv1.weight, 1);
}

// The socket failures need no HAProxy: each is a broken peer the client must survive quickly.
class HaproxySocketTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
  }
  std::string path(const std::string& name) const { return dir_.path() + "/" + name; }
  // A unix socket bound at `path`, listening or not.
  void bindUnix(const std::string& path, bool listening) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
    if (listening) {
      ASSERT_EQ(listen(fd_, 4), 0) << std::strerror(errno);
    }
  }
  // `show info` through a client with `timeout` on `socket`: Unavailable, in under `under`
  // (and not before `at_least`). The error message, for more checks.
  std::string expectUnavailable(const std::string& socket, std::chrono::milliseconds timeout,
                                Clock::duration under, Clock::duration at_least = {}) {
    HaproxyAdmin admin(socket, timeout);
    const auto start = Clock::now();
    auto answer = admin.command("show info");
    const auto elapsed = Clock::now() - start;
    EXPECT_TRUE(answer.status().isUnavailable()) << answer.status().toString();
    EXPECT_GE(elapsed, at_least);
    EXPECT_LT(elapsed, under);
    return answer.status().message();
  }

  support::TempDir dir_{"haproxy-sock"};
  int fd_ = -1;
};

TEST_F(HaproxySocketTest, MissingSocketIsUnavailableAtOnce) {
  const std::string message = expectUnavailable(path("admin.sock"), 500ms, 500ms);
  EXPECT_NE(message.find(path("admin.sock")), std::string::npos) << "the error names the socket";
}

TEST_F(HaproxySocketTest, SocketFileWithoutListenerIsUnavailable) {
  ASSERT_NO_FATAL_FAILURE(bindUnix(path("stale.sock"), /*listening=*/false));
  expectUnavailable(path("stale.sock"), 500ms, 500ms);
}

TEST_F(HaproxySocketTest, SilentPeerTimesOutAsUnavailable) {
  // The kernel completes the connection from the backlog; nobody ever answers.
  ASSERT_NO_FATAL_FAILURE(bindUnix(path("silent.sock"), /*listening=*/true));
  expectUnavailable(path("silent.sock"), 300ms, 2s, 250ms);
}

TEST_F(HaproxySocketTest, OverlongPathIsInvalidArgument) {
  HaproxyAdmin admin(path(std::string(200, 'x')), 500ms);
  auto answer = admin.command("show info");
  EXPECT_TRUE(answer.status().isInvalidArgument()) << answer.status().toString();
}

}  // namespace
}  // namespace flotilla::agent
