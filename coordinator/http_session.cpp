// Dashboard sessions over HTTP: `POST /api/v1/session` trades an API token for an HttpOnly,
// SameSite=Strict session cookie and the session's CSRF secret; `GET` says who the session is;
// `DELETE` ends it on the server (logout). Logins and logouts are audited.
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

namespace {

constexpr char kCookie[] = "flotilla_session";

json sessionJson(const Actor& actor, const std::string& csrf, int64_t expires_ms) {
  return json{{"name", actor.name},
              {"role", actor.role},
              {"environments", actor.envs},
              {"csrf", csrf},
              {"expires_at", rfc3339(expires_ms)}};
}

}  // namespace

void HttpApi::sessionRoutes() {
  server_->Post("/api/v1/session", [this](const httplib::Request& req, httplib::Response& res) {
    AuditEntry entry{"anonymous", "", "POST /api/v1/session", "", "", clientOf(req), ""};
    auto fields = stringFields(req.body, {"token"});
    if (!fields.ok() || (*fields)["token"].empty()) {
      return reply(res, 400,
                   json{{"error", fields.ok() ? "{\"token\": \"...\"} is required: an API token"
                                              : fields.status().message()}});
    }
    std::optional<Actor> actor = tokens_.authenticate((*fields)["token"]);
    if (!actor) {
      reply(res, 401, json{{"error", "the API token is not valid (unknown or revoked)"}});
      std::chrono::milliseconds ignored{0};
      if (refusal_audit_.allow(clientOf(req), std::chrono::steady_clock::now(), &ignored)) {
        entry.outcome = "401";
        entry.detail = "login with an unknown token";
        record(entry);
      } else {
        metrics_.httpRefused("unaudited_anonymous");
      }
      return;
    }
    entry.actor = actor->name;
    entry.role = actor->role;
    auto made = audited<NewSession>(
        entry, [&](AuditEntry&) { return sessions_.create(actor->name, nowMs()); });
    if (!made.ok()) return replyError(res, made.status());
    std::string cookie = std::string(kCookie) + "=" + made->id +
                         "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                         std::to_string(std::chrono::seconds(kSessionLifetime).count());
    if (tls_) cookie += "; Secure";
    res.set_header("Set-Cookie", cookie);
    res.set_header("Cache-Control", "no-store");
    reply(res, 200, sessionJson(*actor, made->csrf, made->expires_ms));
  });

  server_->Get("/api/v1/session", [this](const httplib::Request& req, httplib::Response& res) {
    std::optional<std::string> id = sessionCookie(req);
    auto session = id ? sessions_.authenticate(*id, nowMs()) : std::nullopt;
    if (!session) {
      return reply(res, 404,
                   json{{"error",
                         "this request carries no dashboard session (an API token "
                         "is not one)"}});
    }
    res.set_header("Cache-Control", "no-store");
    reply(res, 200, sessionJson(session->actor, session->csrf, session->expires_ms));
  });

  server_->Delete("/api/v1/session", [this](const httplib::Request& req, httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    std::optional<std::string> id = sessionCookie(req);
    const AuditEntry entry{actor->name,   actor->role, "DELETE /api/v1/session", "", "",
                           actor->client, ""};
    if (!id) {
      return refuseAudited(res, entry,
                           Status::InvalidArgument("this request carries no dashboard session "
                                                   "to end (an API token is not one)"));
    }
    auto ended = audited<bool>(entry, [&](AuditEntry&) -> StatusOr<bool> {
      Status s = sessions_.end(*id);
      if (!s.ok()) return s;
      return true;
    });
    if (!ended.ok()) return replyError(res, ended.status());
    res.set_header("Set-Cookie", std::string(kCookie) +
                                     "=; Path=/; HttpOnly; SameSite=Strict; "
                                     "Max-Age=0" +
                                     (tls_ ? "; Secure" : ""));
    reply(res, 200, json{{"ended", true}});
  });
}

}  // namespace flotilla::coordinator
