// API tokens over HTTP (admin): list, create (the secret is in the answer only, never in the
// audit record or a log line), revoke (never the last admin); and the audit trail they leave:
// a page of records since a time, and the verdict on its hash chain.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/rules.hpp"
#include "common/time_format.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

namespace {

constexpr size_t kDefaultAuditPage = 1000;
constexpr size_t kMaxAuditPage = 10000;

json tokenJson(const TokenInfo& t) {
  return json{{"name", t.name},
              {"role", roleName(t.role)},
              {"envs", t.envs},
              {"created_at", rfc3339(t.created_ms)},
              {"created_by", t.created_by}};
}

json auditJson(const AuditRecord& r) {
  return json{{"seq", r.seq},
              {"time", rfc3339(r.time_ms)},
              {"actor", r.entry.actor},
              {"role", r.entry.role},
              {"action", r.entry.action},
              {"target", r.entry.target},
              {"outcome", r.entry.outcome},
              {"client", r.entry.client},
              {"detail", r.entry.detail}};
}

}  // namespace

void HttpApi::tokenRoutes() {
  server_->Get("/api/v1/tokens", [this](const httplib::Request&, httplib::Response& res) {
    json list = json::array();
    for (const auto& t : tokens_.list()) list.push_back(tokenJson(t));
    reply(res, 200, json{{"tokens", list}});
  });

  server_->Post("/api/v1/tokens", [this](const httplib::Request& req, httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    AuditEntry entry{actor->name, actor->role, "POST /api/v1/tokens", "", "", actor->client, ""};
    auto refuse = [&](const Status& s) { refuseAudited(res, entry, s); };
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object()) {
      return refuse(Status::InvalidArgument(
          "request body must be a JSON object {\"name\", \"role\", \"envs\"}"));
    }
    if (!body.contains("name") || !body["name"].is_string() || !body.contains("role") ||
        !body["role"].is_string()) {
      return refuse(Status::InvalidArgument("\"name\" and \"role\" are required strings"));
    }
    const std::string name = body["name"].get<std::string>();
    entry.target = name.substr(0, 63);
    auto role = parseRole(body["role"].get<std::string>());
    if (!role) {
      return refuse(
          Status::InvalidArgument("\"role\" must be one of viewer, deployer, approver, admin"));
    }
    std::vector<std::string> envs;
    if (body.contains("envs")) {
      if (!body["envs"].is_array()) {
        return refuse(Status::InvalidArgument("\"envs\" must be a list of environment names"));
      }
      for (const auto& e : body["envs"]) {
        if (!e.is_string()) {
          return refuse(Status::InvalidArgument("\"envs\" must be a list of environment names"));
        }
        envs.push_back(e.get<std::string>());
      }
    }
    Status valid = validateToken(name, *role, envs);
    if (!valid.ok()) return refuse(valid);
    std::string envs_text;
    for (const auto& e : envs) envs_text += (envs_text.empty() ? "" : ",") + e;
    entry.detail =
        std::string("role ") + roleName(*role) + (envs.empty() ? "" : " envs " + envs_text);
    // The secret is in the answer only: never in the audit record or a log line.
    auto secret = audited<std::string>(entry, [&](AuditEntry&) {
      return tokens_.create(name, *role, envs, actor->name, nowMs());
    });
    if (!secret.ok()) return replyError(res, secret.status());
    reply(res, 201,
          json{{"name", name}, {"role", roleName(*role)}, {"envs", envs}, {"token", *secret}});
  });

  server_->Delete(
      R"(/api/v1/tokens/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
        auto actor = caller(req, res);
        if (!actor) return;
        const std::string name = req.matches[1];
        AuditEntry entry{
            actor->name,   actor->role, "DELETE /api/v1/tokens/{name}", name.substr(0, 63), "",
            actor->client, ""};
        auto done = audited<bool>(entry, [&](AuditEntry&) -> StatusOr<bool> {
          if (!common::isValidName(name)) {
            return Status::InvalidArgument(quoted(name) + " is not a token name");
          }
          // Losing the last admin would leave only bootstrap-admin on a stopped coordinator.
          size_t admins = 0;
          bool target_admin = false;
          for (const auto& t : tokens_.list()) {
            if (t.role != Role::kAdmin) continue;
            ++admins;
            target_admin |= t.name == name;
          }
          if (target_admin && admins == 1) {
            return Status::FailedPrecondition(name +
                                              " is the last admin token; create another "
                                              "admin token before revoking it");
          }
          Status s = tokens_.revoke(name);
          if (!s.ok()) return s;
          return true;
        });
        if (!done.ok()) return replyError(res, done.status());
        reply(res, 200, json{{"name", name}, {"revoked", true}});
      });

  // ---- Audit trail --------------------------------------------------------------------------

  server_->Get("/api/v1/audit", [this](const httplib::Request& req, httplib::Response& res) {
    int64_t since = 0;
    if (req.has_param("since")) {
      auto parsed = common::parseRfc3339(req.get_param_value("since"));
      if (!parsed) {
        return replyError(res, Status::InvalidArgument(
                                   "since must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"));
      }
      since = *parsed;
    }
    size_t limit = kDefaultAuditPage;
    if (req.has_param("limit")) {
      const std::string text = req.get_param_value("limit");
      const bool digits =
          !text.empty() && text.size() <= 6 &&
          std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!digits || std::stoul(text) == 0 || std::stoul(text) > kMaxAuditPage) {
        return replyError(res, Status::InvalidArgument("limit must be between 1 and " +
                                                       std::to_string(kMaxAuditPage)));
      }
      limit = std::stoul(text);
    }
    auto records = audit_.list(since, limit);
    if (!records.ok()) return replyError(res, records.status());
    json list = json::array();
    for (const auto& r : *records) list.push_back(auditJson(r));
    reply(res, 200, json{{"records", list}});
  });

  server_->Get("/api/v1/audit/verify", [this](const httplib::Request&, httplib::Response& res) {
    auto verdict = audit_.verify();
    if (!verdict.ok()) return replyError(res, verdict.status());
    reply(res, 200,
          json{{"ok", verdict->ok},
               {"records", verdict->records},
               {"first_bad", verdict->first_bad ? json(*verdict->first_bad) : json(nullptr)},
               {"problem", verdict->problem}});
  });
}

}  // namespace flotilla::coordinator
