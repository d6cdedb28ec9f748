// The policy over HTTP: GET /api/v1/policy shows the policy in force (environments in file
// order, its sha256, when it was loaded, the last reload's outcome); POST
// /api/v1/policy/reload (admin) reads the file again, audited, and keeps the policy in force
// when the file has a mistake (422 with every problem).
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"
#include "coordinator/policy_file.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

void HttpApi::policyRoutes() {
  server_->Get("/api/v1/policy", [this](const httplib::Request&, httplib::Response& res) {
    if (!policy_) return reply(res, 200, json{{"enabled", false}});
    reply(res, 200, policy_->toJson());
  });

  server_->Post("/api/v1/policy/reload", [this](const httplib::Request& req,
                                                httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    if (!policy_ || !policy_->enabled()) {
      return replyError(
          res, Status::FailedPrecondition("the coordinator runs without a policy (start it with "
                                          "--policy FILE)"));
    }
    AuditEntry entry{actor->name,   actor->role, "POST /api/v1/policy/reload", policy_->path(), "",
                     actor->client, ""};
    PolicyReload outcome;
    auto done = audited<bool>(entry, [&](AuditEntry& audit) -> StatusOr<bool> {
      outcome = policy_->reload();
      audit.detail = outcome.message;
      if (!outcome.ok) return Status::InvalidArgument(outcome.message);
      return true;
    });
    json body{{"reloaded", outcome.ok}, {"sha256", outcome.sha256}, {"message", outcome.message}};
    if (!done.ok() && outcome.message.empty()) return replyError(res, done.status());
    if (!outcome.ok) {
      json problems = json::array();
      for (const auto& p : outcome.problems) {
        problems.push_back({{"line", p.line}, {"column", p.column}, {"message", p.message}});
      }
      body["error"] = outcome.message;
      body["problems"] = problems;
      body["template_problems"] = outcome.template_problems;
      return reply(res, 422, body);
    }
    reply(res, 200, body);
  });
}

}  // namespace flotilla::coordinator
