// The coordinator's HTTP API (cpp-httplib): deployments, events (JSON and
// SSE), agents, /metrics and /healthz. Reads come from the store; every
// change is handed to the engine thread.
#pragma once

#include <memory>
#include <string>

#include "common/status.hpp"
#include "coordinator/engine.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/server.hpp"
#include "coordinator/store.hpp"

namespace httplib {
class Server;
}

namespace flotilla::coordinator {

class HttpApi {
 public:
  HttpApi(Store& store, Engine& engine, Metrics& metrics, TaskQueue& tasks, CommitSignal& commits,
          int threads);
  ~HttpApi();

  // Binds "HOST:PORT" (port 0 picks a free one); returns the bound port.
  common::StatusOr<int> bind(const std::string& host_port);
  void serve();  // blocks until stop()
  void stop();

 private:
  void routes();
  std::unique_ptr<httplib::Server> server_;
  Store& store_;
  Engine& engine_;
  Metrics& metrics_;
  TaskQueue& tasks_;
  CommitSignal& commits_;
};

}  // namespace flotilla::coordinator
