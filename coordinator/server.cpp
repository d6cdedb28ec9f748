// The coordinator process: the engine loop and its wiring.
#include "coordinator/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <thread>

#include "common/curve.hpp"
#include "common/failpoint.hpp"
#include "common/time_format.hpp"
#include "coordinator/agent_endpoint.hpp"
#include "coordinator/audit.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/policy_file.hpp"
#include "coordinator/store.hpp"
#include "coordinator/tokens.hpp"
#include "coordinator/webhook.hpp"

namespace flotilla::coordinator {

using common::Status;

namespace {
std::atomic<int> g_stop_fd{-1};
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload_policy{false};
// The engine's timers (lost agents, retries) need no finer resolution.
constexpr auto kTickEvery = std::chrono::milliseconds(100);
}  // namespace

TaskQueue::TaskQueue() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) std::abort();  // no eventfd means no way to wake the engine
}

TaskQueue::~TaskQueue() { ::close(fd_); }

void TaskQueue::post(std::function<void()> fn) {
  if (fn) {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  ssize_t n = ::write(fd_, &one, sizeof(one));
  (void)n;  // a full counter already means "wake up"
}

void TaskQueue::drain() {
  uint64_t count = 0;
  ssize_t n = ::read(fd_, &count, sizeof(count));
  (void)n;  // EAGAIN just means nobody posted
  std::deque<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(tasks_);
  }
  for (auto& fn : batch) fn();
}

void TaskQueue::complete(const Status& failure) {
  std::vector<std::function<void(const Status&)>> answers;
  answers.swap(answers_);
  for (auto& fn : answers) fn(failure);
}

void TaskQueue::close() {
  std::deque<std::function<void()>> rest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    rest.swap(tasks_);
  }
  for (auto& fn : rest) fn();  // answer whoever is waiting (after the caller's complete())
}

void CommitSignal::notify() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++counter_;
  }
  cv_.notify_all();
}

uint64_t CommitSignal::waitAfter(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return counter_ != seen || stopping_; });
  return counter_;
}

uint64_t CommitSignal::current() {
  std::lock_guard<std::mutex> lock(mu_);
  return counter_;
}

void CommitSignal::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

bool CommitSignal::stopping() {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

void requestStop() {
  g_stop = true;
  int fd = g_stop_fd.load();
  if (fd >= 0) {
    uint64_t one = 1;
    ssize_t n = ::write(fd, &one, sizeof(one));
    (void)n;
  }
}

void requestPolicyReload() {
  g_reload_policy = true;
  int fd = g_stop_fd.load();
  if (fd >= 0) {
    uint64_t one = 1;
    ssize_t n = ::write(fd, &one, sizeof(one));
    (void)n;
  }
}

std::string keysDir(const std::string& data_dir) { return data_dir + "/keys"; }

bool isLoopbackAddress(const std::string& address) {
  std::string host = address;
  if (host.rfind("tcp://", 0) == 0) host = host.substr(6);
  auto colon = host.rfind(':');
  if (colon != std::string::npos) host = host.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  // Addresses as addresses: "127.example.com" is a name, and could resolve anywhere.
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return host == "localhost";
}

namespace {
// SIGHUP: the policy file read again, the outcome logged and audited.
void reloadOnSignal(PolicyFile& policy, AuditLog& audit) {
  PolicyReload r = policy.reload();
  if (r.ok) {
    spdlog::info("SIGHUP: {}", r.message);
  } else {
    spdlog::error("SIGHUP: {}", r.message);
    for (const auto& p : r.problems) spdlog::error("  {}:{}", policy.path(), p.toString());
    for (const auto& p : r.template_problems) spdlog::error("  {}", p);
  }
  AuditEntry entry{
      "coordinator", "", "SIGHUP policy.reload", policy.path(), r.ok ? "ok" : "refused", "",
      r.message};
  Status s = audit.append(entry, common::toUnixMillis(std::chrono::system_clock::now()));
  if (!s.ok()) spdlog::error("audit: cannot record the policy reload: {}", s.toString());
}
}  // namespace

Status runServer(const ServerOptions& options) {
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return Status::InvalidArgument("--tls-cert and --tls-key go together: give both or neither");
  }
  if (!options.tls_key.empty()) {
    struct stat st {};
    if (::stat(options.tls_key.c_str(), &st) == 0 && (st.st_mode & 0007) != 0) {
      return Status::InvalidArgument("--tls-key " + options.tls_key +
                                     " is readable by others: chmod o-rwx it (0600 or 0640)");
    }
  }
  if (options.tls_cert.empty() && !isLoopbackAddress(options.listen_http)) {
    return Status::InvalidArgument(
        "refusing to serve the HTTP API on " + options.listen_http +
        " without TLS: API tokens would cross the network in clear. Give --tls-cert and "
        "--tls-key, or listen on a loopback address (behind a TLS proxy on this host)");
  }
  EngineOptions engine_options = options.engine;
  EndpointSecurity security;
  if (options.insecure_agents) {
    if (!isLoopbackAddress(options.listen_agents)) {
      return Status::InvalidArgument("--insecure refuses to listen for agents on " +
                                     options.listen_agents +
                                     ": without keys anyone who reaches the port is every agent; "
                                     "use a loopback address, or drop --insecure");
    }
    spdlog::warn(
        "INSECURE: agents connect without keys or enrollment (--insecure); any local process can "
        "register as any cluster and report any result. For loopback experiments only.");
    engine_options.insecure_agents = true;
  } else {
    auto keys = common::loadOrCreateKeyPair(keysDir(options.data_dir), kCoordinatorKeyName);
    if (!keys.ok()) return keys.status();
    security.secret_key = keys->secret_key;
    spdlog::info("agent channel: CurveZMQ, coordinator public key {}", keys->public_key);
  }
  auto store = Store::open(options.data_dir);
  if (!store.ok()) return store.status();
  (*store)->setMinFreeBytes(options.min_free_bytes);
  // The audit trail: HTTP requests (HttpApi) and agent trust events (the engine).
  AuditLog audit(**store);
  if (Status loaded = audit.load(); !loaded.ok()) return loaded;
  Metrics metrics;
  common::RealClock clock;
  zmq::context_t context(1);
  // 10,000 agents are 10,000 sockets on the ROUTER side.
  context.set(zmq::ctxopt::max_sockets, 65536);
  AgentEndpoint endpoint(context, metrics, security);
  Engine engine(**store, metrics, endpoint, clock, engine_options);
  engine.setAuditLog(&audit);
  Status s = endpoint.bind(options.listen_agents,
                           [&engine](const std::string& key, const std::string& address) {
                             return engine.admitKey(key, address);
                           });
  if (!s.ok()) return s;

  CommitSignal commits;
  // Under group commit a change is durable only at the loop's flush: streams wake after it.
  bool committed = false;
  engine.setCommitListener([&committed](const std::string&) { committed = true; });
  WebhookSender webhooks(metrics, options.webhook_allow);
  // Posted once the alert's event is durable, like everything else that leaves.
  std::vector<AlertNotice> alerts;
  engine.setAlertListener([&alerts](const AlertNotice& alert) { alerts.push_back(alert); });
  s = engine.start();
  if (!s.ok()) return s;

  Tokens tokens(**store);
  s = tokens.load();
  if (!s.ok()) return s;
  if (!tokens.anyAdmin()) {
    spdlog::warn(
        "no admin API token exists: stop the coordinator and run "
        "'flotilla-coordinator bootstrap-admin --data-dir {}'",
        options.data_dir);
  }

  PolicyFile policy(options.policy_path);
  s = policy.load();
  if (!s.ok()) return s;
  if (auto p = policy.current()) {
    spdlog::info("policy {}: {} environments, sha256 {}", options.policy_path,
                 p->environments.size(), p->sha256);
  }

  TaskQueue tasks;
  HttpApi http(**store, engine, metrics, tasks, commits, audit, tokens,
               HttpOptions{options.http_limits, options.tls_cert, options.tls_key, &policy});
  auto port = http.bind(options.listen_http);
  if (!port.ok()) return port.status();
  // Only now: a failed start must not leave requestStop() a descriptor that is closed (and
  // then someone else's).
  g_stop_fd = tasks.fd();
  for (const auto& name : options.allowed_hosts) http.allowHost(name);
  std::thread http_thread([&http] { http.serve(); });
  spdlog::info("flotilla-coordinator epoch {}: agents on {}, {} on port {}, data in {}",
               engine.epoch(), endpoint.boundAddress(), options.tls_cert.empty() ? "HTTP" : "HTTPS",
               *port, options.data_dir);

  auto handler = [&engine](const Peer& peer, schema::Envelope::Reader env) {
    engine.onMessage(peer, env);
  };
  // Group commit: everything one turn of the loop changes (up to a few thousand agent
  // messages, the HTTP requests, the timers) becomes durable with one fsync, and only then
  // do agents get their commands, HTTP callers their answers and streams their wake-up.
  (*store)->setGroupCommit(true);
  endpoint.setHolding(true);
  std::optional<std::chrono::steady_clock::time_point> failing_since;
  std::chrono::steady_clock::time_point last_failure_log{};
  auto flush = [&] {
    Status f = (*store)->flush();
    if (!f.ok()) {
      // Nothing that depends on it leaves; the next turn tries again. Logged when it starts,
      // then every 10 s while it lasts.
      const auto now = std::chrono::steady_clock::now();
      if (!failing_since || now - last_failure_log >= std::chrono::seconds(10)) {
        spdlog::error("store: {}; nothing is sent until a write succeeds", f.toString());
        last_failure_log = now;
      }
      if (!failing_since) failing_since = now;
      return;
    }
    if (failing_since) {
      spdlog::info("store: writing again after {} ms",
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - *failing_since)
                       .count());
      failing_since.reset();
    }
    metrics.setStoreWrittenBytes((*store)->bytesWritten());
    // Crash test: everything is durable, nothing of it has left.
    if (endpoint.held() > 0) FLOTILLA_FAILPOINT("coordinator.after_flush_before_release");
    endpoint.release();
    for (const AlertNotice& alert : alerts) webhooks.post(alert);
    alerts.clear();
    tasks.complete();
    if (committed) commits.notify();
    committed = false;
  };
  while (!g_stop) {
    if (endpoint.poll(kTickEvery, tasks.fd(), handler)) tasks.drain();
    if (g_reload_policy.exchange(false)) reloadOnSignal(policy, audit);
    engine.tick();
    flush();
  }
  spdlog::info("stopping");
  commits.shutdown();
  tasks.close();
  flush();
  // Whoever still waits gets an answer: an error if the last flush failed.
  tasks.complete(Status::Unavailable("the coordinator stopped before the change was durable"));
  http.stop();
  http_thread.join();
  g_stop_fd = -1;
  g_stop = false;  // this run's stop: a later runServer in the process runs until its own
  return Status::Ok();
}

}  // namespace flotilla::coordinator
