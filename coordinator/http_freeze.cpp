// Incident freezes over HTTP: freeze (POST /api/v1/freeze {reason, environment?}), lift
// (DELETE /api/v1/freeze[?environment=E]), the active ones (GET /api/v1/freeze), one record
// with its notes (GET /api/v1/freezes/{id}) and a post-mortem note on it (POST
// /api/v1/freezes/{id}/notes {text}). Changes are admin only (permissions.cpp) and audited; the
// input is checked here (coordinator/freeze.hpp's rules) before the engine sees it.
#include <httplib.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "coordinator/freeze.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

namespace http_internal {

json freezeJson(const Freeze& f) {
  json notes = json::array();
  for (const auto& n : f.notes) {
    notes.push_back({{"text", n.text}, {"by", n.by}, {"at", rfc3339(n.at_ms)}});
  }
  return json{{"id", f.id()},
              {"reason", f.reason},
              {"environment", f.environment.empty() ? json(nullptr) : json(f.environment)},
              {"scope", f.environment.empty() ? "fleet" : "environment"},
              {"by", f.by},
              {"since", rfc3339(f.at_ms)},
              {"active", f.active()},
              {"lifted_by", f.active() ? json(nullptr) : json(f.lifted_by)},
              {"lifted_at", f.active() ? json(nullptr) : json(rfc3339(f.lifted_ms))},
              {"notes", std::move(notes)},
              {"summary", describeFreeze(f)}};
}

StatusOr<std::vector<Freeze>> activeFreezes(const Store& store) {
  auto all = loadFreezes(store);
  if (!all.ok()) return all.status();
  std::vector<Freeze> out;
  for (auto& f : *all) {
    if (f.active()) out.push_back(std::move(f));
  }
  return out;
}

json freezesJson(const std::vector<Freeze>& freezes) {
  json out = json::array();
  for (const auto& f : freezes) out.push_back(freezeJson(f));
  return out;
}

}  // namespace http_internal

void HttpApi::freezeRoutes() {
  server_->Get("/api/v1/freeze", [this](const httplib::Request&, httplib::Response& res) {
    auto active = activeFreezes(store_);
    if (!active.ok()) return replyError(res, active.status());
    reply(res, 200, json{{"frozen", !active->empty()}, {"freezes", freezesJson(*active)}});
  });

  server_->Post("/api/v1/freeze", [this](const httplib::Request& req, httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    AuditEntry entry{actor->name, actor->role, "POST /api/v1/freeze", "", "", actor->client, ""};
    auto refuse = [&](const Status& s) { refuseAudited(res, entry, s); };
    auto body = stringFields(req.body, {"reason", "environment"});
    if (!body.ok()) return refuse(body.status());
    const std::string reason = (*body)["reason"];
    const std::string environment = (*body)["environment"];
    for (const Status& s : {checkFreezeReason(reason), checkFreezeEnvironment(environment)}) {
      if (!s.ok()) return refuse(s);
    }
    entry.target = environment.empty() ? "fleet" : environment;
    entry.detail = reason;
    auto frozen = audited<Freeze>(entry, [&](AuditEntry& audit) -> StatusOr<Freeze> {
      auto f = engine_.freeze(reason, environment, *actor);
      if (f.ok()) audit.target = f->id() + " (" + f->scope() + ")";
      return f;
    });
    if (!frozen.ok()) return replyError(res, frozen.status());
    reply(res, 201, freezeJson(*frozen));
  });

  server_->Delete("/api/v1/freeze", [this](const httplib::Request& req, httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    AuditEntry entry{actor->name, actor->role, "DELETE /api/v1/freeze", "", "", actor->client, ""};
    auto refuse = [&](const Status& s) { refuseAudited(res, entry, s); };
    const std::string environment =
        req.has_param("environment") ? req.get_param_value("environment") : "";
    if (req.has_param("environment") && environment.empty()) {
      return refuse(Status::InvalidArgument(
          "environment is empty: leave it out to lift the fleet-wide freeze"));
    }
    Status valid = checkFreezeEnvironment(environment);
    if (!valid.ok()) return refuse(valid);
    entry.target = environment.empty() ? "fleet" : environment;
    auto lifted = audited<Freeze>(entry, [&](AuditEntry& audit) -> StatusOr<Freeze> {
      auto f = engine_.unfreeze(environment, *actor);
      if (f.ok()) audit.target = f->id() + " (" + f->scope() + ")";
      return f;
    });
    if (!lifted.ok()) return replyError(res, lifted.status());
    reply(res, 200, freezeJson(*lifted));
  });

  server_->Get(
      R"(/api/v1/freezes/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
        const std::string id = req.matches[1];
        auto seq = parseFreezeId(id);
        if (!seq) {
          return replyError(
              res, Status::InvalidArgument(quoted(id) + " is not a freeze id (expected freeze-N)"));
        }
        auto stored = store_.getRecord(freezeKey(*seq));
        if (!stored.ok()) return replyError(res, stored.status());
        if (!stored->has_value()) return replyError(res, Status::NotFound("no freeze named " + id));
        auto f = freezeFromJsonText(**stored);
        if (!f.ok()) return replyError(res, f.status());
        reply(res, 200, freezeJson(*f));
      });

  server_->Post(R"(/api/v1/freezes/([^/]+)/notes)", [this](const httplib::Request& req,
                                                           httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    const std::string id = req.matches[1];
    AuditEntry entry{actor->name,   actor->role, "POST /api/v1/freezes/{id}/notes", "", "",
                     actor->client, ""};
    auto refuse = [&](const Status& s) { refuseAudited(res, entry, s); };
    auto seq = parseFreezeId(id);
    if (!seq) {
      return refuse(
          Status::InvalidArgument(quoted(id) + " is not a freeze id (expected freeze-N)"));
    }
    entry.target = id;
    auto body = stringFields(req.body, {"text"});
    if (!body.ok()) return refuse(body.status());
    const std::string text = (*body)["text"];
    Status valid = checkFreezeNote(text);
    if (!valid.ok()) return refuse(valid);
    size_t cut = std::min<size_t>(text.size(), 200);
    while (cut > 0 && cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
      --cut;  // on a UTF-8 boundary: the audit record is JSON
    }
    entry.detail = text.substr(0, cut);
    auto noted = audited<Freeze>(
        entry, [&](AuditEntry&) { return engine_.addFreezeNote(*seq, text, *actor); });
    if (!noted.ok()) return replyError(res, noted.status());
    reply(res, 201, freezeJson(*noted));
  });
}

}  // namespace flotilla::coordinator
