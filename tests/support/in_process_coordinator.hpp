// Test support: a coordinator in this process without its agent endpoint: a real RocksDB store
// in a directory of the caller's, the engine, tokens, the audit log and the HTTP API on
// 127.0.0.1 (a free port), with the coordinator's loop (coordinator/server.cpp: run posted work,
// tick, make the turn durable, then answer) on a thread of its own. What the engine sends to
// agents goes nowhere. For the HTTP API's tests and its fuzzer; it does not use GoogleTest
// (the fuzz targets link it too): failures are returned.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/status.hpp"
#include "common/time_format.hpp"
#include "coordinator/audit.hpp"
#include "coordinator/engine.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/server.hpp"
#include "coordinator/store.hpp"
#include "coordinator/tokens.hpp"
#include "tests/support/null_outbox.hpp"

namespace flotilla::support {

class InProcessCoordinator {
 public:
  // A token written before the engine starts (as bootstrap-admin and `tokens create` would).
  struct TokenSpec {
    std::string name;
    coordinator::Role role = coordinator::Role::kViewer;
    std::vector<std::string> environments;
  };

  // Opens a store in `dir` (which must exist), writes an admin token named `admin` and the
  // others, and `agents` as the registry's clusters (as after a restart: not connected), and
  // starts the engine (with `engine_options`) and the HTTP API. No rate limit: tests and the
  // fuzzer send bursts with one token.
  static common::StatusOr<std::unique_ptr<InProcessCoordinator>> start(
      const std::string& dir, const std::string& admin, const std::vector<TokenSpec>& tokens,
      const std::vector<coordinator::StoredAgent>& agents = {},
      const coordinator::EngineOptions& engine_options = {});
  ~InProcessCoordinator();
  InProcessCoordinator(const InProcessCoordinator&) = delete;
  InProcessCoordinator& operator=(const InProcessCoordinator&) = delete;

  // Stops the loop and the HTTP API, then closes the store; what was accepted is durable.
  // Idempotent; the destructor calls it.
  void stop();

  int port() const { return port_; }
  // The secret of a token named at start (the admin's included); "" for another name.
  std::string token(const std::string& name) const;
  coordinator::Store& store() { return *store_; }
  coordinator::Engine& engine() { return *engine_; }
  coordinator::HttpApi& http() { return *http_; }

 private:
  InProcessCoordinator() = default;
  common::Status open(const std::string& dir, const std::string& admin,
                      const std::vector<TokenSpec>& tokens,
                      const std::vector<coordinator::StoredAgent>& agents,
                      const coordinator::EngineOptions& engine_options);
  void loop();
  void flush();

  coordinator::Metrics metrics_;
  NullOutbox outbox_;
  common::RealClock clock_;
  coordinator::TaskQueue tasks_;
  coordinator::CommitSignal commits_;
  std::unique_ptr<coordinator::Store> store_;
  std::unique_ptr<coordinator::Engine> engine_;
  std::unique_ptr<coordinator::Tokens> tokens_;
  std::unique_ptr<coordinator::AuditLog> audit_;
  std::unique_ptr<coordinator::HttpApi> http_;
  std::map<std::string, std::string> secrets_;
  int port_ = 0;
  std::thread http_thread_;
  std::thread loop_thread_;
  std::atomic<bool> stop_{false};
  bool stopped_ = false;
  bool committed_ = false;  // loop thread only
};

}  // namespace flotilla::support
