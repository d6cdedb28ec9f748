// The HTTP API's abuse limits against real sockets: idle, slow-header and streaming clients
// at once do not stop an authorised client's answer; the slow ones are cut at the header
// deadline, one address's excess at the per-client cap, streams past their cap get 503, and a
// token past its rate gets 429 while another token carries on. Every refusal is counted in
// /metrics.
//
// The hostile clients connect from other loopback addresses (127.0.0.3-5) than the harness and
// the CLI (127.0.0.1), as separate machines would.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <regex>
#include <thread>

#include "tests/support/fleet.hpp"
#include "tests/support/net.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// Stays running: its only wave waits for an approval nobody gives.
const std::string kGatedPlan =
    noopPlan("limits", "1.0.0", {waveOf("prod", {"prod-eu-1"}, {"approval: required"})}).yaml();

bool sendAll(int fd, const std::string& text) {
  size_t sent = 0;
  while (sent < text.size()) {
    ssize_t n = ::send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// What arrives on `fd` within `wait` (until the peer closes or `want` is seen).
std::string readFor(int fd, std::chrono::milliseconds wait, const std::string& want) {
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
    if (!want.empty() && got.find(want) != std::string::npos) break;
  }
  return got;
}

// Whether the server closed `fd` (a read gives end of file or a reset, now).
bool closedByServer(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  char buf[4096];
  ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

// A counter's value in the /metrics text (0 when absent).
double metric(const std::string& text, const std::string& name) {
  std::regex line("(^|\n)" + std::regex_replace(name, std::regex(R"([{}."])"), R"(\$&)") +
                  " ([0-9.e+]+)");
  std::smatch m;
  return std::regex_search(text, m, line) ? std::stod(m[2]) : 0.0;
}

class HttpAbuseTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    // The hostile side holds ~450 sockets.
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  void TearDown() override {
    for (int fd : sockets_) ::close(fd);
    sockets_.clear();
    FleetTest::TearDown();
  }
  int port() const { return std::stoi(serverUrl().substr(serverUrl().rfind(':') + 1)); }
  int open(const std::string& source) {
    int fd = connectFrom(source, port());
    if (fd >= 0) sockets_.push_back(fd);
    return fd;
  }
  std::vector<int> sockets_;
};

TEST_F(HttpAbuseTest, IdleSlowAndStreamingClientsDoNotStarveAnAuthorisedOne) {
  CoordinatorOptions options;
  options.extra_args = {"--http-header-timeout", "3s"};
  ASSERT_NO_FATAL_FAILURE(startFleet(options));
  const std::string id = submitPlan("gated.yaml", kGatedPlan);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(waitForState(id, "awaiting_approval"));
  const std::string viewer = createToken("watcher", "viewer");
  const std::string host = "Host: 127.0.0.1:" + std::to_string(port()) + "\r\n";

  // 300 idle connections from one address.
  std::vector<int> idle;
  for (int i = 0; i < 300; ++i) {
    int fd = open("127.0.0.3");
    ASSERT_GE(fd, 0) << "connect " << i << ": " << std::strerror(errno);
    idle.push_back(fd);
  }
  // 50 slow-header clients: a request line, then a header line every second, never the end.
  std::vector<int> slow;
  for (int i = 0; i < 50; ++i) {
    int fd = open("127.0.0.4");
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(sendAll(fd, "GET /api/v1/agents HTTP/1.1\r\n" + host));
    slow.push_back(fd);
  }
  std::atomic<bool> dripping{true};
  std::thread drip([&] {
    while (dripping) {
      for (int fd : slow) sendAll(fd, "X-Slow: a\r\n");
      std::this_thread::sleep_for(1s);
    }
  });
  // 100 event-stream watchers with a viewer token.
  std::vector<int> streams;
  for (int i = 0; i < 100; ++i) {
    int fd = open("127.0.0.5");
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(sendAll(fd, "GET /api/v1/deployments/" + id + "/events HTTP/1.1\r\n" + host +
                                "Authorization: Bearer " + viewer +
                                "\r\nAccept: text/event-stream\r\n\r\n"));
    streams.push_back(fd);
  }

  // All of them at once; an authorised client is answered, by the API and through the CLI.
  HttpResponse status = get("/api/v1/deployments/" + id);
  EXPECT_EQ(status.status, 200) << status.error << status.body;
  CommandResult cli_status = cli({"status", id});
  EXPECT_EQ(cli_status.exit_code, 0) << cli_status.out << cli_status.err;

  // Streams: up to the per-token cap (16) are served with the deployment's events; the rest
  // are told to come back later, or, those still without an answer when a sweep finds more
  // than 64 connections from their address (a loaded machine), cut by the per-client cap.
  int served = 0;
  int refused = 0;
  int cut = 0;
  for (int fd : streams) {
    std::string head = readFor(fd, 5s, "\r\n\r\n");
    if (head.rfind("HTTP/1.1 200", 0) == 0) {
      ++served;
      if (served == 1) {
        std::string events = head + readFor(fd, 5s, "deployment.submitted");
        EXPECT_NE(events.find("event: deployment.submitted"), std::string::npos) << events;
      }
    } else if (head.rfind("HTTP/1.1 503", 0) == 0) {
      ++refused;
      EXPECT_NE(head.find("Retry-After"), std::string::npos) << head;
    } else if (head.empty() && closedByServer(fd)) {
      ++cut;
    } else {
      ADD_FAILURE() << "an event-stream request got: " << head.substr(0, 200);
    }
  }
  EXPECT_EQ(served, 16);
  EXPECT_EQ(refused + cut, 84);
  EXPECT_LE(cut, 100 - 64);

  // The slow-header clients are cut at the header deadline; the idle ones are gone too (cut
  // over the per-client cap, or closed after the keep-alive wait).
  EXPECT_TRUE(waitUntil("every slow-header connection to be cut",
                        [&] { return std::all_of(slow.begin(), slow.end(), closedByServer); }));
  dripping = false;
  drip.join();
  EXPECT_TRUE(waitUntil("every idle connection to be closed",
                        [&] { return std::all_of(idle.begin(), idle.end(), closedByServer); }));

  HttpResponse metrics = get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_GE(metric(metrics.body, "flotilla_http_connections_cut_total{reason=\"header_deadline\"}"),
            50)
      << metrics.body;
  EXPECT_GE(metric(metrics.body, "flotilla_http_connections_cut_total{reason=\"per_client\"}"), 1)
      << metrics.body;
  EXPECT_EQ(metric(metrics.body, "flotilla_http_requests_refused_total{reason=\"streams_full\"}"),
            refused)
      << metrics.body;
  EXPECT_EQ(metric(metrics.body, "flotilla_http_event_streams"), 16) << metrics.body;

  // Still answering, and the deployment is untouched.
  EXPECT_EQ(stateOf(id), "awaiting_approval");
}

TEST_F(HttpAbuseTest, TokenOverItsRateGets429WhileOthersCarryOn) {
  CoordinatorOptions options;
  options.extra_args = {"--http-rate-limit", "2", "--http-rate-burst", "5"};
  ASSERT_NO_FATAL_FAILURE(startCoordinator(options));
  const std::string greedy = createToken("greedy", "viewer");
  int ok = 0;
  HttpResponse limited;
  for (int i = 0; i < 20 && limited.status != 429; ++i) {
    HttpResponse r = request("GET", "/api/v1/deployments", greedy);
    if (r.status == 200) ++ok;
    if (r.status == 429) limited = r;
  }
  EXPECT_GE(ok, 5);  // the burst
  ASSERT_EQ(limited.status, 429) << limited.body;
  EXPECT_NE(limited.parsed().value("error", "").find("too many requests"), std::string::npos)
      << limited.body;
  // Another token is not affected.
  EXPECT_EQ(request("GET", "/api/v1/deployments", adminToken()).status, 200);
  // The bucket refills.
  EXPECT_TRUE(waitUntil("the greedy token to be served again", [&] {
    return request("GET", "/api/v1/deployments", greedy).status == 200;
  }));
  HttpResponse metrics = get("/metrics");
  EXPECT_GE(metric(metrics.body, "flotilla_http_requests_refused_total{reason=\"rate_limited\"}"),
            1)
      << metrics.body;
}

}  // namespace
}  // namespace flotilla::integration
