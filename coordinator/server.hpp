// The coordinator process: wires the store, the engine, the agent endpoint
// and the HTTP API together and runs the engine's single-threaded loop.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "coordinator/engine.hpp"
#include "coordinator/http_limits.hpp"

namespace flotilla::coordinator {

struct ServerOptions {
  std::string data_dir = "./flotilla-data";
  std::string listen_agents = "tcp://127.0.0.1:7700";
  std::string listen_http = "127.0.0.1:7780";
  EngineOptions engine;
  HttpLimits http_limits;
  // --tls-cert/--tls-key (PEM). Without them the HTTP API listens on loopback addresses only.
  std::string tls_cert;
  std::string tls_key;
  // Host header names the HTTP API answers to besides its listen host, localhost, 127.0.0.1
  // and [::1] (HttpApi::allowHost).
  std::vector<std::string> allowed_hosts;
  uint64_t min_free_bytes = Store::kDefaultMinFreeBytes;  // see Store::setMinFreeBytes
  // --insecure: agents connect with the NULL mechanism (no keys, no enrollment); loopback only.
  bool insecure_agents = false;
  // URL prefixes alert webhooks may post to (--webhook-allow); none by default.
  std::vector<std::string> webhook_allow;
  // --policy FILE (coordinator/policy_file.hpp); "" none.
  std::string policy_path;
};

// Where the coordinator keeps its CURVE key pair: DATA_DIR/keys/coordinator.{key,pub}.
std::string keysDir(const std::string& data_dir);
inline constexpr const char* kCoordinatorKeyName = "coordinator";
// Whether `address` (tcp://HOST:PORT or HOST:PORT) is on 127.0.0.0/8 or ::1 (names are not
// resolved: "localhost" counts, anything else does not).
bool isLoopbackAddress(const std::string& address);

// Work posted from HTTP threads to the engine thread. The eventfd wakes the
// engine's poll so a request never waits for a timer.
class TaskQueue {
 public:
  TaskQueue();
  ~TaskQueue();
  int fd() const { return fd_; }
  // Runs `fn` on the engine thread and waits for its result, which is handed
  // over by complete() (group commit: once what `fn` changed is durable).
  template <typename T>
  common::StatusOr<T> call(std::function<common::StatusOr<T>()> fn);
  void post(std::function<void()> fn);
  void drain();
  // Engine thread: answers every call() whose task has run since the last
  // complete(), with its result, or with `failure` when that is not OK (what it
  // changed could not be made durable).
  void complete(const common::Status& failure = common::Status::Ok());
  void close();  // later calls fail with Unavailable; tasks still queued run

 private:
  int fd_;
  std::mutex mu_;
  std::deque<std::function<void()>> tasks_;
  bool closed_ = false;
  std::vector<std::function<void(const common::Status&)>> answers_;  // engine thread only
};

// Lets SSE streams sleep until the engine commits something.
class CommitSignal {
 public:
  void notify();
  // Waits until something was committed after `seen` (or timeout); returns the new counter.
  uint64_t waitAfter(uint64_t seen, std::chrono::milliseconds timeout);
  uint64_t current();
  void shutdown();
  bool stopping();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t counter_ = 0;
  bool stopping_ = false;
};

// Runs until requestStop() (async-signal-safe) is called.
common::Status runServer(const ServerOptions& options);
void requestStop();
// SIGHUP: read the policy file again at the loop's next turn (async-signal-safe).
void requestPolicyReload();

template <typename T>
common::StatusOr<T> TaskQueue::call(std::function<common::StatusOr<T>()> fn) {
  auto promise = std::make_shared<std::promise<common::StatusOr<T>>>();
  auto future = promise->get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return common::Status::Unavailable("the coordinator is shutting down");
    tasks_.push_back([this, promise, fn = std::move(fn)] {
      auto result = std::make_shared<common::StatusOr<T>>(fn());
      answers_.push_back([promise, result](const common::Status& failure) {
        if (failure.ok()) {
          promise->set_value(std::move(*result));
        } else {
          promise->set_value(failure);
        }
      });
    });
  }
  post(nullptr);
  return future.get();
}

}  // namespace flotilla::coordinator
