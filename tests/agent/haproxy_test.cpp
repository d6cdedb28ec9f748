// Tests for agent/haproxy.cpp against a real HAProxy (/usr/sbin/haproxy, Debian 12: 2.6) with
// real HTTP traffic from libcurl through its frontend to two in-process backends, "v1" and "v2".
#include "agent/haproxy.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kHaproxyBinary[] = "/usr/sbin/haproxy";
constexpr char kBackend[] = "checkout";
constexpr int kSlots = 8;
constexpr auto kAdminTimeout = 2000ms;
// Generous: only a broken set-up gets near it.
constexpr auto kStartDeadline = 10s;
constexpr int kRequests = 200;

std::string slot(int n) { return "srv" + std::to_string(n); }

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// HAProxy's frontend port must be written into its config, so the test asks the kernel for a
// free port and releases it; the window in which another process could take it is tiny.
int freeTcpPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// A replica stand-in: answers its body on "/" from 127.0.0.1 on a port of the kernel's choice,
// and counts what reaches it (the server side is the authority on "no request reached v2").
class HttpBackend {
 public:
  explicit HttpBackend(std::string body) : body_(std::move(body)) {
    server_.Get("/", [this](const httplib::Request&, httplib::Response& res) {
      hits_.fetch_add(1);
      res.set_content(body_, "text/plain");
    });
    // httplib writes headers and body separately; with Nagle on, each answer on a reused
    // connection waits out HAProxy's delayed ACK (~40 ms), and 200 requests take seconds.
    server_.set_tcp_nodelay(true);
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) return;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() is a no-op until the accept loop runs, so a stop() before that would hang join().
    const auto deadline = Clock::now() + kStartDeadline;
    while (!server_.is_running() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  }
  ~HttpBackend() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  HttpBackend(const HttpBackend&) = delete;
  HttpBackend& operator=(const HttpBackend&) = delete;

  bool running() const { return port_ > 0 && server_.is_running(); }
  int port() const { return port_; }
  int hits() const { return hits_.load(); }

 private:
  std::string body_;
  httplib::Server server_;
  int port_ = -1;
  std::atomic<int> hits_{0};
  std::thread thread_;
};

size_t appendBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

struct Traffic {
  std::map<std::string, int> bodies;  // 200 answers by body ("v1", "v2")
  std::map<long, int> statuses;       // every HTTP status seen
  int transport_errors = 0;           // no HTTP answer at all
  int count(const std::string& body) const {
    auto it = bodies.find(body);
    return it == bodies.end() ? 0 : it->second;
  }
  int failed() const {
    int bad = transport_errors;
    for (const auto& [code, n] : statuses) {
      if (code != 200) bad += n;
    }
    return bad;
  }
  std::string describe() const {
    std::string out = "v1=" + std::to_string(count("v1")) + " v2=" + std::to_string(count("v2")) +
                      " transport_errors=" + std::to_string(transport_errors);
    for (const auto& [code, n] : statuses) {
      out += " http" + std::to_string(code) + "=" + std::to_string(n);
    }
    return out;
  }
};

// Sends `n` sequential GETs through one keep-alive connection: HAProxy in HTTP mode balances
// every request, not every connection, so reuse does not skew the shares.
Traffic sendRequests(int port, int n) {
  static const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == 0;
  Traffic traffic;
  CURL* curl = curl_ready ? curl_easy_init() : nullptr;
  if (!curl) {
    traffic.transport_errors = n;
    return traffic;
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, appendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  for (int i = 0; i < n; ++i) {
    body.clear();
    if (curl_easy_perform(curl) != CURLE_OK) {
      ++traffic.transport_errors;
      continue;
    }
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    ++traffic.statuses[code];
    if (code == 200) ++traffic.bodies[body];
  }
  curl_easy_cleanup(curl);
  return traffic;
}

double share(const Traffic& traffic, const std::string& body, int n) {
  return static_cast<double>(traffic.count(body)) / n;
}

// One HAProxy per test, in the foreground (-db), owned by its PID, with its own stats socket
// and config in a fresh directory; two HTTP backends to point its slots at.
class HaproxyAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kHaproxyBinary, X_OK), 0)
        << kHaproxyBinary << " is missing (" << std::strerror(errno)
        << "): HAProxy is a test dependency; run scripts/setup to install it (Debian: haproxy)";

    char tmpl[] = "/tmp/flotilla-haproxy-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    socket_path_ = dir_ + "/admin.sock";
    log_path_ = dir_ + "/haproxy.log";

    v1_ = std::make_unique<HttpBackend>("v1");
    v2_ = std::make_unique<HttpBackend>("v2");
    ASSERT_TRUE(v1_->running() && v2_->running()) << "cannot start the HTTP backends";

    frontend_port_ = freeTcpPort();
    ASSERT_GT(frontend_port_, 0) << "no free TCP port";
    const std::string config_path = dir_ + "/haproxy.cfg";
    {
      std::ofstream cfg(config_path);
      cfg << "global\n"
          << "  stats socket " << socket_path_ << " mode 600 level admin\n"
          << "defaults\n"
          << "  mode http\n"
          << "  timeout connect 1s\n"
          << "  timeout client 5s\n"
          << "  timeout server 5s\n"
          << "frontend fe\n"
          << "  bind 127.0.0.1:" << frontend_port_ << "\n"
          << "  default_backend " << kBackend << "\n"
          << "backend " << kBackend << "\n"
          << "  balance roundrobin\n"
          // No `check`: Flotilla runs the health checks; HAProxy's own would mark servers
          // down behind the agent's back and fight its state and weight changes.
          << "  server-template srv 1-" << kSlots << " 127.0.0.1:1 disabled\n";
      ASSERT_TRUE(cfg.good()) << "cannot write " << config_path;
    }
    startHaproxy(config_path);
    ASSERT_GT(haproxy_pid_, 0) << "cannot start haproxy";

    admin_ = std::make_unique<HaproxyAdmin>(socket_path_, kAdminTimeout);
    const auto deadline = Clock::now() + kStartDeadline;
    while (true) {
      auto info = admin_->command("show info");
      if (info.ok()) break;
      int status = 0;
      if (waitpid(haproxy_pid_, &status, WNOHANG) == haproxy_pid_) {
        haproxy_pid_ = -1;
        FAIL() << "haproxy exited during start-up (its log follows)";
      }
      if (Clock::now() >= deadline) {
        FAIL() << "haproxy's stats socket did not answer: " << info.status().toString()
               << " (its log follows)";
      }
      std::this_thread::sleep_for(10ms);
    }
  }

  void TearDown() override {
    stopHaproxy();
    v1_.reset();
    v2_.reset();
    if (HasFailure() && !log_path_.empty()) {
      std::cerr << "haproxy log (" << log_path_ << "):\n" << readFile(log_path_) << "\n";
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // fork/exec rather than posix_spawn: the child asks to be killed when the test dies, so a
  // crashed test never leaves an HAProxy holding the port. Everything is prepared before
  // fork() because the HTTP backends' threads are running.
  void startHaproxy(const std::string& config_path) {
    std::string binary = kHaproxyBinary, f = "-f", cfg = config_path, db = "-db";
    char* argv[] = {binary.data(), f.data(), cfg.data(), db.data(), nullptr};
    int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0) return;
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);  // the test died before prctl took effect
      dup2(null_fd, 0);
      dup2(log_fd, 1);
      dup2(log_fd, 2);
      execv(argv[0], argv);
      _exit(127);
    }
    close(log_fd);
    close(null_fd);
    haproxy_pid_ = pid;
  }

  // SIGTERM (HAProxy's hard stop), then SIGKILL if it lingers; always reaped.
  void stopHaproxy() {
    if (haproxy_pid_ <= 0) return;
    kill(haproxy_pid_, SIGTERM);
    const auto deadline = Clock::now() + 3s;
    int status = 0;
    while (waitpid(haproxy_pid_, &status, WNOHANG) != haproxy_pid_) {
      if (Clock::now() >= deadline) {
        kill(haproxy_pid_, SIGKILL);
        waitpid(haproxy_pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    haproxy_pid_ = -1;
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

  std::string dir_;
  std::string socket_path_;
  std::string log_path_;
  int frontend_port_ = -1;
  pid_t haproxy_pid_ = -1;
  std::unique_ptr<HttpBackend> v1_;
  std::unique_ptr<HttpBackend> v2_;
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
    Traffic traffic = sendRequests(frontend_port_, kRequests);
    EXPECT_EQ(traffic.failed(), 0) << traffic.describe();
    EXPECT_NEAR(share(traffic, "v2", kRequests), step.v2_share, 0.06) << traffic.describe();
  }
}

TEST_F(HaproxyAdminTest, ZeroWeightSendsNoRequestToTheServer) {
  fillBoth(50, 50);
  Traffic before = sendRequests(frontend_port_, 20);
  ASSERT_GT(before.count("v2"), 0)
      << "v2 must serve before its weight drops: " << before.describe();

  ASSERT_TRUE(admin_->setWeight(kBackend, "srv2", 0).ok());
  const int v2_hits = v2_->hits();
  Traffic traffic = sendRequests(frontend_port_, kRequests);
  EXPECT_EQ(traffic.count("v1"), kRequests) << traffic.describe();
  EXPECT_EQ(v2_->hits(), v2_hits) << "a request reached v2 at weight 0";

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

  const int v2_hits = v2_->hits();
  Traffic drained = sendRequests(frontend_port_, kRequests);
  EXPECT_EQ(drained.count("v1"), kRequests) << drained.describe();
  EXPECT_EQ(v2_->hits(), v2_hits) << "a new request reached a draining server";

  ASSERT_TRUE(admin_->setServerState(kBackend, "srv2", ServerState::kReady).ok());
  Traffic back = sendRequests(frontend_port_, kRequests);
  EXPECT_EQ(back.failed(), 0) << back.describe();
  EXPECT_NEAR(share(back, "v2", kRequests), 0.5, 0.06) << back.describe();
}

TEST_F(HaproxyAdminTest, MaintTakesTheServerOutAndReadyBringsItBack) {
  fillBoth(50, 50);
  ASSERT_TRUE(admin_->setServerState(kBackend, "srv2", ServerState::kMaint).ok());

  ServerInfo srv2 = server("srv2");
  EXPECT_EQ(srv2.state(), ServerState::kMaint);
  EXPECT_TRUE(srv2.inMaintenance());
  EXPECT_EQ(srv2.op_state, OpState::kStopped);
  EXPECT_FALSE(srv2.isFreeSlot()) << "a parked replica at a real address is not a free slot";

  const int v2_hits = v2_->hits();
  Traffic traffic = sendRequests(frontend_port_, kRequests);
  EXPECT_EQ(traffic.count("v1"), kRequests) << traffic.describe();
  EXPECT_EQ(v2_->hits(), v2_hits);

  ASSERT_TRUE(admin_->setServerState(kBackend, "srv2", ServerState::kReady).ok());
  EXPECT_EQ(server("srv2").op_state, OpState::kRunning);
  Traffic back = sendRequests(frontend_port_, kRequests);
  EXPECT_EQ(back.failed(), 0) << back.describe();
  EXPECT_NEAR(share(back, "v2", kRequests), 0.5, 0.06) << back.describe();
}

TEST_F(HaproxyAdminTest, ReaddressingAServingSlotMovesItsTrafficAtOnce) {
  // A rolling update re-points a slot at the new replica; HAProxy's idle keep-alive
  // connections to the old address must not keep carrying requests.
  fillSlot("srv1", v1_->port(), 1);
  Traffic before = sendRequests(frontend_port_, 20);
  ASSERT_EQ(before.count("v1"), 20) << before.describe();

  ASSERT_TRUE(admin_->setServerAddress(kBackend, "srv1", "127.0.0.1", v2_->port()).ok());
  const int v1_hits = v1_->hits();
  Traffic after = sendRequests(frontend_port_, kRequests);
  EXPECT_EQ(after.count("v2"), kRequests) << after.describe();
  EXPECT_EQ(v1_->hits(), v1_hits) << "a request still went to the old address";
}

TEST_F(HaproxyAdminTest, NoServingServerMeans503) {
  fillBoth(50, 50);
  ASSERT_TRUE(admin_->setServerState(kBackend, "srv1", ServerState::kMaint).ok());
  ASSERT_TRUE(admin_->setServerState(kBackend, "srv2", ServerState::kDrain).ok());
  Traffic traffic = sendRequests(frontend_port_, 5);
  EXPECT_EQ(traffic.statuses[503], 5) << traffic.describe();
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
  void SetUp() override {
    char tmpl[] = "/tmp/flotilla-haproxy-sock-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
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
  std::string dir_;
  int fd_ = -1;
};

TEST_F(HaproxySocketTest, MissingSocketIsUnavailableAtOnce) {
  HaproxyAdmin admin(dir_ + "/admin.sock", 500ms);
  const auto start = Clock::now();
  auto answer = admin.command("show info");
  EXPECT_TRUE(answer.status().isUnavailable()) << answer.status().toString();
  EXPECT_NE(answer.status().message().find(dir_ + "/admin.sock"), std::string::npos)
      << "the error names the socket";
  EXPECT_LT(Clock::now() - start, 500ms);
}

TEST_F(HaproxySocketTest, SocketFileWithoutListenerIsUnavailable) {
  ASSERT_NO_FATAL_FAILURE(bindUnix(dir_ + "/stale.sock", /*listening=*/false));
  HaproxyAdmin admin(dir_ + "/stale.sock", 500ms);
  const auto start = Clock::now();
  auto answer = admin.command("show info");
  EXPECT_TRUE(answer.status().isUnavailable()) << answer.status().toString();
  EXPECT_LT(Clock::now() - start, 500ms);
}

TEST_F(HaproxySocketTest, SilentPeerTimesOutAsUnavailable) {
  // The kernel completes the connection from the backlog; nobody ever answers.
  ASSERT_NO_FATAL_FAILURE(bindUnix(dir_ + "/silent.sock", /*listening=*/true));
  HaproxyAdmin admin(dir_ + "/silent.sock", 300ms);
  const auto start = Clock::now();
  auto answer = admin.command("show info");
  const auto elapsed = Clock::now() - start;
  EXPECT_TRUE(answer.status().isUnavailable()) << answer.status().toString();
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 2s);
}

TEST_F(HaproxySocketTest, OverlongPathIsInvalidArgument) {
  HaproxyAdmin admin(dir_ + "/" + std::string(200, 'x'), 500ms);
  auto answer = admin.command("show info");
  EXPECT_TRUE(answer.status().isInvalidArgument()) << answer.status().toString();
}

}  // namespace
}  // namespace flotilla::agent
