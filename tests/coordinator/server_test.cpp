// Tests for coordinator/server.cpp: what the coordinator process itself owns. The hand-over
// between HTTP threads and the engine thread (TaskQueue, CommitSignal), the loopback rule, and
// runServer in this process on 127.0.0.1 ports: the refusals at start-up (TLS, --insecure, the
// store's reserve, a data dir in use), the CURVE key it keeps, what it wires together (the HTTP
// API over HTTP or HTTPS, allowed Host names, the agent port, the store and its epoch), and a
// stop that releases everything. The HTTP API's own behaviour is in http_*_test.cpp.
#include "coordinator/server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/curve.hpp"
#include "coordinator/store.hpp"
#include "coordinator/tokens.hpp"
#include "tests/support/files.hpp"
#include "tests/support/http.hpp"
#include "tests/support/net.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace flotilla::coordinator {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using common::Status;
using support::contains;
using support::HttpResponse;

// Whether `fd` is readable now.
bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// ---- isLoopbackAddress, keysDir ----------------------------------------------------------------

TEST(IsLoopbackAddress, LoopbackAddressesWithOrWithoutSchemeAndPort) {
  for (const char* address :
       {"127.0.0.1:7780", "tcp://127.0.0.1:7700", "tcp://127.0.0.1:*", "127.0.0.1", "127.1.2.3:80",
        "127.255.255.254:1", "localhost:7780", "tcp://localhost:7700", "[::1]:7780",
        "tcp://[::1]:7700", "::1:7780"}) {
    EXPECT_TRUE(isLoopbackAddress(address)) << address;
  }
}

TEST(IsLoopbackAddress, EverythingElseIsNot) {
  for (const char* address :
       {"0.0.0.0:7780", "tcp://0.0.0.0:7700", "tcp://*:7700", "*:7780", "192.0.2.1:7780",
        "10.0.0.1:7780", "[::]:7780", "tcp://[::]:7700", "[2001:db8::1]:7780", "128.0.0.1:7780",
        "example.com:7780", "tcp://eth0:7700", ":7780", ""}) {
    EXPECT_FALSE(isLoopbackAddress(address)) << address;
  }
}

TEST(IsLoopbackAddress, NamesAreNotResolvedSoOnlyLocalhostCounts) {
  // A name that merely starts like a loopback address can resolve anywhere.
  for (const char* address :
       {"127.example.com:7780", "tcp://127.0.0.1.example.com:7700", "127.0.0.1.nip.io:7780",
        "localhost.example.com:7780", "127.0.0.1x:7780"}) {
    EXPECT_FALSE(isLoopbackAddress(address)) << address;
  }
}

TEST(KeysDir, IsUnderTheDataDir) {
  EXPECT_EQ(keysDir("/var/lib/flotilla"), "/var/lib/flotilla/keys");
  EXPECT_STREQ(kCoordinatorKeyName, "coordinator");
}

// ---- TaskQueue --------------------------------------------------------------------------------

TEST(TaskQueue, ACallRunsOnTheEngineThreadAndIsAnsweredAtComplete) {
  TaskQueue tasks;
  EXPECT_FALSE(readable(tasks.fd()));
  std::atomic<bool> answered{false};
  std::thread::id ran_on;
  common::StatusOr<int> result = Status::Internal("not answered");
  std::thread http([&] {
    result = tasks.call<int>([&]() -> common::StatusOr<int> {
      ran_on = std::this_thread::get_id();
      return 42;
    });
    answered = true;
  });
  // The engine thread: woken through the fd, runs the task, answers only at complete().
  EXPECT_TRUE(support::pollUntil([&] { return readable(tasks.fd()); }, 30s, 1ms));
  tasks.drain();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_FALSE(readable(tasks.fd())) << "drain consumes the wake-up";
  EXPECT_FALSE(answered) << "answered before what the task changed was durable";
  tasks.complete();
  http.join();
  ASSERT_TRUE(result.ok()) << result.status().toString();
  EXPECT_EQ(*result, 42);
}

TEST(TaskQueue, AFailedFlushAnswersEveryCallWithTheFailure) {
  TaskQueue tasks;
  std::vector<common::StatusOr<std::string>> results(3, Status::Internal("not answered"));
  std::atomic<size_t> ran{0};
  std::vector<std::thread> callers;
  for (size_t i = 0; i < results.size(); ++i) {
    callers.emplace_back([&, i] {
      results[i] = tasks.call<std::string>([&ran, i]() -> common::StatusOr<std::string> {
        ++ran;
        return "change " + std::to_string(i);
      });
    });
  }
  // One turn of the loop that ran all three, then a flush that failed.
  EXPECT_TRUE(support::pollUntil(
      [&] {
        tasks.drain();
        return ran.load() == results.size();
      },
      30s, 1ms));
  tasks.complete(Status::IoError("disk full"));
  for (auto& t : callers) t.join();
  for (const auto& r : results) {
    EXPECT_TRUE(r.status().isIoError()) << r.status().toString();
    EXPECT_EQ(r.status().message(), "disk full");
  }
}

TEST(TaskQueue, ATasksOwnErrorIsItsAnswer) {
  TaskQueue tasks;
  common::StatusOr<int> result = 0;
  std::thread http([&] {
    result = tasks.call<int>([]() -> common::StatusOr<int> { return Status::NotFound("no such"); });
  });
  EXPECT_TRUE(support::pollUntil([&] { return readable(tasks.fd()); }, 30s, 1ms));
  tasks.drain();
  tasks.complete();
  http.join();
  EXPECT_TRUE(result.status().isNotFound()) << result.status().toString();
}

TEST(TaskQueue, PostedWorkRunsInOrderAtDrain) {
  TaskQueue tasks;
  std::vector<int> order;
  tasks.post([&] { order.push_back(1); });
  tasks.post([&] { order.push_back(2); });
  tasks.post(nullptr);  // a wake-up alone
  tasks.post([&] { order.push_back(3); });
  EXPECT_TRUE(readable(tasks.fd()));
  EXPECT_TRUE(order.empty());
  tasks.drain();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  tasks.drain();  // nothing posted: nothing runs, nothing blocks
  EXPECT_EQ(order.size(), 3u);
}

TEST(TaskQueue, AfterCloseCallsAreRefusedAndQueuedWorkStillRuns) {
  TaskQueue tasks;
  bool ran = false;
  tasks.post([&] { ran = true; });
  tasks.close();
  EXPECT_TRUE(ran) << "queued work runs at close";
  auto refused = tasks.call<int>([]() -> common::StatusOr<int> { return 1; });
  EXPECT_TRUE(refused.status().isUnavailable()) << refused.status().toString();
}

TEST(TaskQueue, ACallQueuedWhenTheLoopStopsIsAnswered) {
  TaskQueue tasks;
  common::StatusOr<int> result = 0;
  std::thread http([&] { result = tasks.call<int>([]() -> common::StatusOr<int> { return 7; }); });
  EXPECT_TRUE(support::pollUntil([&] { return readable(tasks.fd()); }, 30s, 1ms));
  // runServer's shutdown: close (queued tasks run), then the last answers.
  tasks.close();
  tasks.complete(Status::Unavailable("stopped before the change was durable"));
  http.join();
  EXPECT_TRUE(result.status().isUnavailable()) << result.status().toString();
}

// ---- CommitSignal -----------------------------------------------------------------------------

TEST(CommitSignal, AWaiterWakesAtTheNextCommit) {
  CommitSignal commits;
  const uint64_t seen = commits.current();
  EXPECT_EQ(commits.waitAfter(seen, 1ms), seen) << "nothing committed: the same counter";
  std::atomic<uint64_t> woke_with{0};
  std::thread stream([&] { woke_with = commits.waitAfter(seen, 60s); });
  commits.notify();
  stream.join();
  EXPECT_EQ(woke_with.load(), seen + 1);
  EXPECT_EQ(commits.current(), seen + 1);
  // A commit the waiter has not seen yet returns at once.
  EXPECT_EQ(commits.waitAfter(seen, 60s), seen + 1);
}

TEST(CommitSignal, ShutdownWakesEveryWaiterForGood) {
  CommitSignal commits;
  EXPECT_FALSE(commits.stopping());
  std::vector<std::thread> streams;
  for (int i = 0; i < 3; ++i) streams.emplace_back([&] { commits.waitAfter(0, 60s); });
  commits.shutdown();
  for (auto& t : streams) t.join();
  EXPECT_TRUE(commits.stopping());
  EXPECT_EQ(commits.waitAfter(0, 60s), 0u) << "returns at once once stopping";
}

// ---- runServer --------------------------------------------------------------------------------

constexpr char kPlan[] = R"(service: checkout
version: "1.4.2"
steps: {apply: ./apply.sh, rollback: ./rollback.sh}
waves:
  - name: staging
    clusters: [staging-eu]
)";

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);
    support::initCurl();
  }
  void TearDown() override {
    if (thread_.joinable()) {
      Status s = stop();
      EXPECT_TRUE(s.ok()) << s.toString();
    }
  }

  std::string dataDir() const { return tmp_.path() + "/data"; }
  ServerOptions options() const {
    ServerOptions o;
    o.data_dir = dataDir();
    o.min_free_bytes = 1 << 20;
    return o;
  }
  std::string url() const {
    return std::string(ca_.empty() ? "http" : "https") +
           "://127.0.0.1:" + std::to_string(http_port_);
  }
  HttpResponse get(const std::string& path,
                   const std::map<std::string, std::string>& headers = {}) {
    return support::httpRequest("GET", url() + path, headers, nullptr, ca_);
  }

  // runServer(o) on a thread of its own, on fresh loopback ports (a port another process took
  // meanwhile is tried again with a new one). Returns once /healthz answers, or with what
  // runServer returned when it did not start.
  Status start(ServerOptions o) {
    Status last = Status::Internal("not started");
    for (int attempt = 0; attempt < 3; ++attempt) {
      http_port_ = support::freePort();
      agent_port_ = support::freePort();
      o.listen_http = "127.0.0.1:" + std::to_string(http_port_);
      o.listen_agents = "tcp://127.0.0.1:" + std::to_string(agent_port_);
      std::promise<Status> done;
      result_ = done.get_future();
      thread_ =
          std::thread([o, done = std::move(done)]() mutable { done.set_value(runServer(o)); });
      const bool up = support::pollUntil(
          [&] {
            return result_.wait_for(0s) == std::future_status::ready ||
                   get("/healthz").status == 200;
          },
          60s);
      if (up && result_.wait_for(0s) != std::future_status::ready) return Status::Ok();
      if (!up) {
        last = Status::Internal("the server did not answer /healthz within 60 s");
        return last;  // TearDown stops it
      }
      thread_.join();
      last = result_.get();
      if (last.ok()) return Status::Internal("the server stopped before it answered");
      if (!contains(last.message(), "cannot listen")) return last;
    }
    return last;
  }
  Status stop() {
    requestStop();
    thread_.join();
    return result_.get();
  }
  // A fresh loopback port pair for a runServer call that is expected to return by itself.
  ServerOptions withFreePorts(ServerOptions o) {
    o.listen_http = "127.0.0.1:" + std::to_string(support::freePort());
    o.listen_agents = "tcp://127.0.0.1:" + std::to_string(support::freePort());
    return o;
  }
  // An admin token, put in the data dir as `flotilla-coordinator bootstrap-admin` does (before
  // the coordinator runs).
  std::string bootstrap() {
    auto store = Store::open(dataDir());
    EXPECT_TRUE(store.ok()) << store.status().toString();
    if (!store.ok()) return "";
    auto made = bootstrapAdmin(**store, "admin", 0);
    EXPECT_TRUE(made.ok()) << made.status().toString();
    // kPlan's cluster, known to the registry (as after a restart), so that it is accepted.
    EXPECT_TRUE((*store)->putAgent(StoredAgent{"staging-eu", {}, "test"}).ok());
    admin_ = made.ok() ? *made : "";
    return admin_;
  }
  // A sample of /metrics (read with the admin token), or "".
  std::string metric(const std::string& name) {
    const std::string body = get("/metrics", {{"Authorization", "Bearer " + admin_}}).body;
    for (const std::string& line : support::linesOf(body)) {
      if (line.rfind(name + " ", 0) == 0) return line.substr(name.size() + 1);
    }
    return "";
  }

  support::TempDir tmp_{"server-test"};
  int http_port_ = 0;
  int agent_port_ = 0;
  std::string admin_;  // bootstrap()'s token
  std::string ca_;     // the CA file an https:// server's certificate chains to
  std::thread thread_;
  std::future<Status> result_;
};

// start() and stop() in a test body, failing it with runServer's status.
#define ASSERT_STARTED(options)                        \
  do {                                                 \
    const Status started_ = start(options);            \
    ASSERT_TRUE(started_.ok()) << started_.toString(); \
  } while (0)
#define ASSERT_STOPPED()                               \
  do {                                                 \
    const Status stopped_ = stop();                    \
    ASSERT_TRUE(stopped_.ok()) << stopped_.toString(); \
  } while (0)

TEST_F(ServerTest, ServesTheApiAndTheAgentPortAndStopsReleasingBoth) {
  ASSERT_FALSE(bootstrap().empty());
  ASSERT_STARTED(options());
  HttpResponse health = get("/healthz");
  EXPECT_EQ(health.status, 200) << health.error;
  EXPECT_EQ(health.parsed().value("status", ""), "ok") << health.body;
  EXPECT_TRUE(support::tcpConnects(agent_port_)) << "agents listened for";
  // The engine runs: its gauges reach /metrics.
  EXPECT_TRUE(support::pollUntil([&] { return metric("flotilla_epoch") == "1"; }, 30s))
      << metric("flotilla_epoch");
  const Status stopped = stop();
  EXPECT_TRUE(stopped.ok()) << stopped.toString();
  EXPECT_FALSE(support::tcpConnects(http_port_));
  EXPECT_FALSE(support::tcpConnects(agent_port_));
  // The store is closed: another process (here, this one) may open it.
  auto store = Store::open(dataDir());
  EXPECT_TRUE(store.ok()) << store.status().toString();
}

TEST_F(ServerTest, AStopAskedForAtStartUpEndsTheRun) {
  // A signal that lands while the coordinator starts, before its loop runs: the run stops there
  // (cpp-httplib drops a stop that comes before it listens; the HTTP thread must not outlive it).
  requestStop();
  auto done = std::make_shared<std::promise<Status>>();
  std::future<Status> result = done->get_future();
  std::thread run([o = withFreePorts(options()), done] { done->set_value(runServer(o)); });
  if (result.wait_for(60s) != std::future_status::ready) {
    run.detach();  // hung for good: leave it to the end of the process
    FAIL() << "runServer did not return after a stop asked for at start-up";
  }
  run.join();
  const Status s = result.get();
  EXPECT_TRUE(s.ok()) << s.toString();
}

TEST_F(ServerTest, RunsAgainAfterAStopInTheSameProcess) {
  ASSERT_FALSE(bootstrap().empty());
  ASSERT_STARTED(options());
  ASSERT_STOPPED();
  // A second run serves until its own stop, with the next epoch.
  const Status again = start(options());
  ASSERT_TRUE(again.ok()) << again.toString();
  EXPECT_TRUE(support::pollUntil([&] { return metric("flotilla_epoch") == "2"; }, 30s))
      << metric("flotilla_epoch");
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(ServerTest, AnHttpPortInUseFailsTheStartAndLeavesNothingBehind) {
  // A listener of our own on the port.
  const int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(taken, 1), 0);
  ASSERT_EQ(::getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ServerOptions o = withFreePorts(options());
  o.listen_http = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  const Status s = runServer(o);
  ::close(taken);
  EXPECT_TRUE(s.isIoError()) << s.toString();
  EXPECT_TRUE(contains(s.message(), "cannot listen for HTTP")) << s.toString();
  const int agents = std::stoi(o.listen_agents.substr(o.listen_agents.rfind(':') + 1));
  EXPECT_FALSE(support::tcpConnects(agents));
  EXPECT_TRUE(Store::open(dataDir()).ok()) << "the store was closed";
  // A stop asked for now (a signal) must not write into a descriptor the failed run left: the
  // numbers it used are handed out again, lowest first.
  std::vector<int> fds;
  for (int i = 0; i < 256; ++i) {
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  requestStop();
  for (int fd : fds) {
    EXPECT_FALSE(readable(fd)) << "requestStop wrote into descriptor " << fd;
    ::close(fd);
  }
  // That stop is for the next run, which stops at once.
  const Status next = runServer(withFreePorts(options()));
  EXPECT_TRUE(next.ok()) << next.toString();
}

TEST_F(ServerTest, AnAnsweredSubmissionIsDurable) {
  const std::string admin = bootstrap();
  ASSERT_FALSE(admin.empty());
  ASSERT_STARTED(options());
  const std::string plan = kPlan;
  HttpResponse submitted = support::httpRequest(
      "POST", url() + "/api/v1/deployments",
      {{"Authorization", "Bearer " + admin}, {"Content-Type", "application/yaml"}}, &plan);
  ASSERT_EQ(submitted.status, 201) << submitted.error << submitted.body;
  const std::string id = submitted.parsed().value("id", "");
  ASSERT_FALSE(id.empty()) << submitted.body;
  ASSERT_STOPPED();
  // Answered only once flushed: it is in the store without the coordinator.
  auto store = Store::open(dataDir());
  ASSERT_TRUE(store.ok()) << store.status().toString();
  auto d = (*store)->loadDeployment(id);
  ASSERT_TRUE(d.ok()) << d.status().toString();
  EXPECT_EQ(d->plan.service, "checkout");
}

TEST_F(ServerTest, KeepsOneCurveKeyPairInTheDataDir) {
  ASSERT_STARTED(options());
  ASSERT_STOPPED();
  const std::string keys = keysDir(dataDir());
  struct stat st {};
  ASSERT_EQ(::stat((keys + "/coordinator.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto first = common::readPublicKey(keys, kCoordinatorKeyName);
  ASSERT_TRUE(first.ok()) << first.status().toString();
  ASSERT_STARTED(options());
  ASSERT_STOPPED();
  auto second = common::readPublicKey(keys, kCoordinatorKeyName);
  ASSERT_TRUE(second.ok()) << second.status().toString();
  EXPECT_EQ(*second, *first) << "agents pinned the first key";
}

TEST_F(ServerTest, InsecureAgentsOnLoopbackNeedNoKeys) {
  ServerOptions o = options();
  o.insecure_agents = true;
  ASSERT_STARTED(o);
  EXPECT_TRUE(support::tcpConnects(agent_port_));
  ASSERT_STOPPED();
  EXPECT_FALSE(fs::exists(keysDir(dataDir())));
}

TEST_F(ServerTest, AnswersOnlyTheHostNamesItWasGiven) {
  ServerOptions o = options();
  o.allowed_hosts = {"deploy.example.com"};
  ASSERT_STARTED(o);
  // No token: 401 for a host it answers to, 421 for one it does not.
  EXPECT_EQ(get("/api/v1/deployments", {{"Host", "deploy.example.com"}}).status, 401);
  EXPECT_EQ(
      get("/api/v1/deployments", {{"Host", "127.0.0.1:" + std::to_string(http_port_)}}).status,
      401);
  EXPECT_EQ(get("/api/v1/deployments", {{"Host", "other.example.com"}}).status, 421);
}

// The refusals that come before anything is read, made or bound.
TEST_F(ServerTest, RefusesUnsafeListenersAndHalfATlsConfiguration) {
  const std::string cert = tmp_.path() + "/server.pem";
  const std::string key = tmp_.path() + "/server.key";
  support::writeFile(cert, "cert");
  support::writeFile(key, "key");
  ASSERT_EQ(::chmod(key.c_str(), 0604), 0);
  struct Case {
    std::string what;
    ServerOptions options;
    std::string why;
  };
  std::vector<Case> cases;
  {
    ServerOptions o = options();
    o.tls_cert = cert;
    cases.push_back({"a certificate without its key", o, "--tls-cert and --tls-key go together"});
    o = options();
    o.tls_key = key;
    cases.push_back({"a key without its certificate", o, "--tls-cert and --tls-key go together"});
    o = options();
    o.tls_cert = cert;
    o.tls_key = key;
    cases.push_back({"a key others can read", o, "is readable by others"});
    o = options();
    o.listen_http = "192.0.2.1:7780";  // not on this machine: nothing could be bound anyway
    cases.push_back({"plain HTTP off loopback", o, "without TLS"});
    o = options();
    o.listen_http = "127.0.0.1.example.com:7780";  // a name, never resolved
    cases.push_back({"plain HTTP on a name", o, "without TLS"});
    o = options();
    o.listen_http = "0.0.0.0:7780";
    cases.push_back({"plain HTTP on every interface", o, "without TLS"});
    o = options();
    o.insecure_agents = true;
    o.listen_agents = "tcp://192.0.2.1:7700";
    cases.push_back({"--insecure off loopback", o, "--insecure refuses"});
    o.listen_agents = "tcp://*:7700";
    cases.push_back({"--insecure on every interface", o, "--insecure refuses"});
  }
  for (const Case& c : cases) {
    const Status s = runServer(c.options);
    EXPECT_TRUE(s.isInvalidArgument()) << c.what << ": " << s.toString();
    EXPECT_TRUE(contains(s.message(), c.why)) << c.what << ": " << s.toString();
    EXPECT_FALSE(fs::exists(dataDir())) << c.what << ": refused before touching the data dir";
  }
}

TEST_F(ServerTest, ACertificateItCannotUseIsRefusedAndNothingStaysBound) {
  const std::string cert = tmp_.path() + "/server.pem";
  const std::string key = tmp_.path() + "/server.key";
  support::writeFile(cert, "not a certificate\n");
  support::writeFile(key, "not a key\n");
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  ServerOptions o = withFreePorts(options());
  o.tls_cert = cert;
  o.tls_key = key;
  const Status s = runServer(o);
  EXPECT_TRUE(s.isInvalidArgument()) << s.toString();
  EXPECT_TRUE(contains(s.message(), "cannot use the TLS certificate")) << s.toString();
  const int agents = std::stoi(o.listen_agents.substr(o.listen_agents.rfind(':') + 1));
  EXPECT_FALSE(support::tcpConnects(agents));
  EXPECT_TRUE(Store::open(dataDir()).ok()) << "the store was closed";
}

TEST_F(ServerTest, AStoreBelowItsReserveIsRefusedAtStart) {
  ServerOptions o = withFreePorts(options());
  o.min_free_bytes = std::numeric_limits<uint64_t>::max();
  const Status s = runServer(o);
  EXPECT_TRUE(s.isIoError()) << s.toString();
  EXPECT_TRUE(contains(s.message(), "reserve")) << s.toString();
}

TEST_F(ServerTest, OneCoordinatorPerDataDir) {
  ASSERT_STARTED(options());
  const Status second = runServer(withFreePorts(options()));
  EXPECT_FALSE(second.ok());
  EXPECT_TRUE(second.isIoError()) << second.toString();
  EXPECT_EQ(get("/healthz").status, 200) << "the first one carries on";
}

// HTTPS: a CA and a certificate for 127.0.0.1 made with the openssl command line.
TEST_F(ServerTest, ServesHttpsWithACertificateAndKey) {
  if (::access("/usr/bin/openssl", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/openssl";
  const std::string d = tmp_.path();
  const std::string key = d + "/server.key";
  const std::string cert = d + "/server.pem";
  support::writeFile(d + "/server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  const std::vector<std::vector<std::string>> steps = {
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d + "/ca.key", "-out", d + "/ca.pem",
       "-days", "2", "-subj", "/CN=flotilla test CA"},
      {"/usr/bin/openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", key, "-out", d + "/server.csr", "-subj", "/CN=127.0.0.1"},
      {"/usr/bin/openssl", "x509", "-req", "-in", d + "/server.csr", "-CA", d + "/ca.pem", "-CAkey",
       d + "/ca.key", "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", d + "/server.ext"},
  };
  for (const auto& argv : steps) {
    support::CommandResult r = support::runCommand(argv, d, 60s);
    ASSERT_EQ(r.exit_code, 0) << "openssl " << argv[1] << ":\n" << r.out << r.err;
  }
  ASSERT_EQ(::chmod(key.c_str(), 0640), 0) << "group-readable is allowed";
  ServerOptions o = options();
  o.tls_cert = cert;
  o.tls_key = key;
  ca_ = d + "/ca.pem";
  ASSERT_STARTED(o);
  HttpResponse health = get("/healthz");
  EXPECT_EQ(health.status, 200) << health.error;
  // Plain HTTP to the same port gets no answer.
  HttpResponse plain =
      support::httpGet("http://127.0.0.1:" + std::to_string(http_port_) + "/healthz");
  EXPECT_EQ(plain.status, 0) << plain.body;
}

}  // namespace
}  // namespace flotilla::coordinator
