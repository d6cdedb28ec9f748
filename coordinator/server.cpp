// The coordinator process: the engine loop and its wiring.
#include "coordinator/server.hpp"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "coordinator/agent_endpoint.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/store.hpp"

namespace flotilla::coordinator {

using common::Status;

namespace {
std::atomic<int> g_stop_fd{-1};
std::atomic<bool> g_stop{false};
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

void TaskQueue::close() {
  std::deque<std::function<void()>> rest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    rest.swap(tasks_);
  }
  for (auto& fn : rest) fn();  // answer whoever is waiting
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

Status runServer(const ServerOptions& options) {
  auto store = Store::open(options.data_dir);
  if (!store.ok()) return store.status();
  Metrics metrics;
  common::RealClock clock;
  zmq::context_t context(1);
  // 10,000 agents are 10,000 sockets on the ROUTER side.
  context.set(zmq::ctxopt::max_sockets, 65536);
  AgentEndpoint endpoint(context, metrics);
  Status s = endpoint.bind(options.listen_agents);
  if (!s.ok()) return s;

  Engine engine(**store, metrics, endpoint, clock, options.engine);
  CommitSignal commits;
  engine.setCommitListener([&commits](const std::string&) { commits.notify(); });
  s = engine.start();
  if (!s.ok()) return s;

  TaskQueue tasks;
  g_stop_fd = tasks.fd();
  HttpApi http(**store, engine, metrics, tasks, commits, options.http_threads);
  auto port = http.bind(options.listen_http);
  if (!port.ok()) return port.status();
  std::thread http_thread([&http] { http.serve(); });
  spdlog::info("flotilla-coordinator epoch {}: agents on {}, HTTP on port {}, data in {}",
               engine.epoch(), endpoint.boundAddress(), *port, options.data_dir);

  auto handler = [&engine](const std::string& identity, schema::Envelope::Reader env) {
    engine.onMessage(identity, env);
  };
  while (!g_stop) {
    if (endpoint.poll(kTickEvery, tasks.fd(), handler)) tasks.drain();
    engine.tick();
  }
  spdlog::info("stopping");
  commits.shutdown();
  tasks.close();
  http.stop();
  http_thread.join();
  g_stop_fd = -1;
  return Status::Ok();
}

}  // namespace flotilla::coordinator
