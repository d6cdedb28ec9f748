// A coordinator in process for the HTTP API's tests and fuzzer (see the header).
#include "tests/support/in_process_coordinator.hpp"

#include <poll.h>

#include <utility>

namespace flotilla::support {

using coordinator::AuditLog;
using coordinator::Engine;
using coordinator::EngineOptions;
using coordinator::HttpApi;
using coordinator::HttpOptions;
using coordinator::Store;
using coordinator::Tokens;

common::StatusOr<std::unique_ptr<InProcessCoordinator>> InProcessCoordinator::start(
    const std::string& dir, const std::string& admin, const std::vector<TokenSpec>& tokens,
    const std::vector<coordinator::StoredAgent>& agents,
    const coordinator::EngineOptions& engine_options) {
  std::unique_ptr<InProcessCoordinator> c(new InProcessCoordinator());
  common::Status s = c->open(dir, admin, tokens, agents, engine_options);
  if (!s.ok()) return s;
  return c;
}

common::Status InProcessCoordinator::open(const std::string& dir, const std::string& admin,
                                          const std::vector<TokenSpec>& tokens,
                                          const std::vector<coordinator::StoredAgent>& agents,
                                          const EngineOptions& engine_options) {
  auto opened = Store::open(dir);
  if (!opened.ok()) return opened.status();
  store_ = std::move(opened).value();
  // Tokens go in before the engine turns group commit on, as bootstrap-admin does.
  auto admin_secret = coordinator::bootstrapAdmin(*store_, admin, 0);
  if (!admin_secret.ok()) return admin_secret.status();
  secrets_[admin] = *admin_secret;
  {
    Tokens early(*store_);
    if (common::Status s = early.load(); !s.ok()) return s;
    for (const TokenSpec& t : tokens) {
      auto secret = early.create(t.name, t.role, t.environments, admin, 0);
      if (!secret.ok()) return secret.status();
      secrets_[t.name] = *secret;
    }
  }
  for (const coordinator::StoredAgent& agent : agents) {
    if (common::Status s = store_->putAgent(agent); !s.ok()) return s;
  }
  engine_ = std::make_unique<Engine>(*store_, metrics_, outbox_, clock_, engine_options);
  // As runServer does: group commit; answers and stream wake-ups only after the flush.
  store_->setGroupCommit(true);
  engine_->setCommitListener([this](const std::string&) { committed_ = true; });
  if (common::Status s = engine_->start(); !s.ok()) return s;
  tokens_ = std::make_unique<Tokens>(*store_);
  if (common::Status s = tokens_->load(); !s.ok()) return s;
  audit_ = std::make_unique<AuditLog>(*store_);
  if (common::Status s = audit_->load(); !s.ok()) return s;
  HttpOptions options;
  options.limits.min_threads = 4;
  options.limits.rate_per_second = 0;
  http_ = std::make_unique<HttpApi>(*store_, *engine_, metrics_, tasks_, commits_, *audit_,
                                    *tokens_, options);
  auto bound = http_->bind("127.0.0.1:0");
  if (!bound.ok()) return bound.status();
  port_ = *bound;
  http_thread_ = std::thread([this] { http_->serve(); });
  loop_thread_ = std::thread([this] { loop(); });
  return common::Status::Ok();
}

InProcessCoordinator::~InProcessCoordinator() { stop(); }

void InProcessCoordinator::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (loop_thread_.joinable()) {
    stop_ = true;
    tasks_.post(nullptr);
    loop_thread_.join();
  }
  commits_.shutdown();
  tasks_.close();
  if (store_) flush();
  tasks_.complete(common::Status::Unavailable("stopped before the change was durable"));
  if (http_thread_.joinable()) {
    http_->stop();
    http_thread_.join();
  }
  http_.reset();
  audit_.reset();
  tokens_.reset();
  engine_.reset();
  store_.reset();
}

std::string InProcessCoordinator::token(const std::string& name) const {
  auto it = secrets_.find(name);
  return it == secrets_.end() ? "" : it->second;
}

void InProcessCoordinator::loop() {
  while (!stop_) {
    pollfd p{tasks_.fd(), POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) tasks_.drain();
    engine_->tick();
    flush();
  }
}

void InProcessCoordinator::flush() {
  common::Status s = store_->flush();
  // A store in a temporary directory does not fail; if it does, the waiting answers say so.
  tasks_.complete(s);
  if (s.ok() && committed_) commits_.notify();
  committed_ = false;
}

}  // namespace flotilla::support
