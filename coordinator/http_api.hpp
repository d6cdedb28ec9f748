// The coordinator's HTTP API (cpp-httplib): deployments, events (JSON and
// SSE), agents, tokens, the audit trail, /metrics and /healthz. Reads come from the store;
// every change is handed to the engine thread. Every request but GET /healthz is checked
// before routing: Host, bearer token, the route's permission (coordinator/permissions.hpp),
// and for a change a JSON or YAML Content-Type; every change, refused or not, is audited.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/status.hpp"
#include "coordinator/actor.hpp"
#include "coordinator/audit.hpp"
#include "coordinator/engine.hpp"
#include "coordinator/http_limits.hpp"
#include "coordinator/metrics.hpp"
#include "coordinator/policy_file.hpp"
#include "coordinator/server.hpp"
#include "coordinator/sessions.hpp"
#include "coordinator/store.hpp"
#include "coordinator/tokens.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace flotilla::coordinator {

struct HttpOptions {
  HttpLimits limits;
  // PEM files; both or neither. With them the API speaks only HTTPS (TLS 1.2 or later).
  std::string tls_cert;
  std::string tls_key;
  // --policy: the organisation's rules (submission, GET /api/v1/policy); null or disabled: none.
  PolicyFile* policy = nullptr;
};

class HttpApi {
 public:
  HttpApi(Store& store, Engine& engine, Metrics& metrics, TaskQueue& tasks, CommitSignal& commits,
          AuditLog& audit, Tokens& tokens, const HttpOptions& options);
  ~HttpApi();

  // Binds "HOST:PORT" (port 0 picks a free one); returns the bound port. Fails when the TLS
  // certificate or key given in the options cannot be used. The Host header of a
  // request must then name the listen host, localhost, 127.0.0.1 or [::1] with that port, or a
  // name given to allowHost(); anything else is answered 421 (DNS rebinding).
  common::StatusOr<int> bind(const std::string& host_port);
  // Also accept `name` ("host" or "host:port"; without a port: the bound port, or none at all
  // as a proxy on a standard port sends it). After bind(), before serve().
  void allowHost(const std::string& name);
  void serve();  // blocks until stop(), also one called before serve() began
  void stop();

 private:
  struct Gate;
  // Every route the API serves, group by group; each group lives in its own file (the map is in
  // http_api_internal.hpp).
  void routes();
  void deploymentRoutes();
  void eventRoutes();
  void agentRoutes();
  void tokenRoutes();  // and the audit trail
  void policyRoutes();
  void releaseRoutes();
  // Each policy environment (file order) with the checks it requires; empty without a policy.
  std::vector<std::pair<std::string, std::vector<common::Check>>> environmentChecks() const;
  void freezeRoutes();
  void logRoutes();  // the deployment log and notes
  void triggerRoutes();
  void sessionRoutes();  // http_session.cpp: the dashboard's login and logout
  void uiRoutes();       // http_ui.cpp: the dashboard's files
  // Everything checked before a request is routed, its body unread: gate(), the rate limit and
  // the body's encoding. Answers the request and returns true when it is refused.
  bool refuseBeforeRouting(const httplib::Request& req, httplib::Response& res);
  // Host, token, permission and Content-Type of a request, before anything else of it is read.
  Gate gate(const httplib::Request& req) const;
  // The caller of a request that passed gate() (its token looked up again: it may have been
  // revoked in between). Answers 401 and returns nothing otherwise.
  std::optional<Actor> caller(const httplib::Request& req, httplib::Response& res) const;
  // Appends the request's audit record on the engine thread (durable before the answer).
  void record(const AuditEntry& entry);
  // Answers a refused change with `s` and audits it (`entry` with the outcome and why).
  void refuseAudited(httplib::Response& res, AuditEntry entry, const common::Status& s);
  // Runs `change` on the engine thread and appends the request's audit record in the same turn
  // (`entry`'s outcome and detail filled from the result), so both are durable together.
  template <typename T>
  common::StatusOr<T> audited(AuditEntry entry,
                              std::function<common::StatusOr<T>(AuditEntry&)> change);

  std::unique_ptr<httplib::Server> server_;
  Store& store_;
  Engine& engine_;
  Metrics& metrics_;
  TaskQueue& tasks_;
  CommitSignal& commits_;
  AuditLog& audit_;
  Tokens& tokens_;
  Sessions sessions_;
  const bool tls_;  // HTTPS: session cookies are Secure
  PolicyFile* policy_;
  HttpLimits limits_;
  ConnectionWatch watch_;
  StreamSlots streams_;
  RateLimiter rate_;
  RateLimiter refusal_audit_{2, 20};     // audit records of anonymous refusals, per address
  std::set<std::string> allowed_hosts_;  // lower case; fixed before serve()
  int port_ = 0;
  // How far serve() got: cpp-httplib ignores a stop() that comes before its listen loop runs.
  enum ServeState : int { kNotServing, kServing, kServed };
  std::atomic<int> serve_state_{kNotServing};
};

}  // namespace flotilla::coordinator
