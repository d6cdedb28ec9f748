// Releases over HTTP: CI reports a check against a service + version (POST
// /api/v1/releases/{service}/{version}/checks, deploy permission, audited), and anyone may read
// the release's checklist against the policy's environments (GET
// /api/v1/releases/{service}/{version}).
#include <httplib.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/policy.hpp"
#include "common/rules.hpp"
#include "common/user_text.hpp"
#include "coordinator/http_api.hpp"
#include "coordinator/http_api_internal.hpp"
#include "coordinator/promotion.hpp"
#include "coordinator/releases.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using namespace http_internal;

namespace {

Status checkRelease(const std::string& service, const std::string& version) {
  if (!common::isValidName(service)) {
    return Status::InvalidArgument("service " + quoted(service) + ": " + common::kNameRule);
  }
  if (!common::isValidVersion(version)) {
    return Status::InvalidArgument("version " + quoted(version) + ": " + common::kVersionRule);
  }
  return Status::Ok();
}

// {"name": "coverage", "passed": true, "value": 84.2, "url": "https://ci/..."}: name and passed
// required, nothing else accepted.
StatusOr<CheckReport> reportFromBody(const std::string& body) {
  json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return Status::InvalidArgument(
        "request body must be a JSON object such as "
        "{\"name\": \"coverage\", \"passed\": true, \"value\": 84.2}");
  }
  CheckReport report;
  bool has_name = false, has_passed = false;
  for (const auto& item : parsed.items()) {
    const std::string& key = item.key();
    const json& value = item.value();
    if (key == "name" && value.is_string()) {
      report.name = value.get<std::string>();
      has_name = true;
    } else if (key == "passed" && value.is_boolean()) {
      report.passed = value.get<bool>();
      has_passed = true;
    } else if (key == "value" && (value.is_number() || value.is_null())) {
      if (value.is_number()) report.value = value.get<double>();
    } else if (key == "url" && (value.is_string() || value.is_null())) {
      if (value.is_string()) report.url = value.get<std::string>();
    } else if (key == "name" || key == "passed" || key == "value" || key == "url") {
      return Status::InvalidArgument("\"" + key + "\" has the wrong type");
    } else {
      return Status::InvalidArgument("unknown field " + quoted(key) +
                                     " (known: \"name\", \"passed\", \"value\", \"url\")");
    }
  }
  if (!has_name || !has_passed) {
    return Status::InvalidArgument("\"name\" and \"passed\" are required");
  }
  return report;
}

// Each environment entry of a release's answer that the policy gives a promotion rule gets
// {"from", "soak", "met", "missing"}: the promotion judged now.
void addPromotions(const common::Policy* policy, const ReleaseRecord& release, json& out) {
  if (policy == nullptr) return;
  for (json& env : out["environments"]) {
    auto it = policy->environments.find(env.value("name", ""));
    if (it == policy->environments.end() || !it->second.promotion) continue;
    const common::Promotion& rule = *it->second.promotion;
    const PromotionVerdict v =
        judgePromotion(&release, release.service, release.version, rule.from, rule.soak, nowMs());
    env["promotion"] = {{"from", rule.from},
                        {"soak", common::formatDuration(rule.soak)},
                        {"met", v.met},
                        {"missing", v.met ? json(nullptr) : json(v.missing)}};
  }
}

}  // namespace

void HttpApi::releaseRoutes() {
  server_->Get(R"(/api/v1/releases/([^/]+)/([^/]+))",
               [this](const httplib::Request& req, httplib::Response& res) {
                 const std::string service = req.matches[1];
                 const std::string version = req.matches[2];
                 Status valid = checkRelease(service, version);
                 if (!valid.ok()) return replyError(res, valid);
                 auto stored = store_.getRecord(releaseKey(service, version));
                 if (!stored.ok()) return replyError(res, stored.status());
                 ReleaseRecord release;
                 release.service = service;
                 release.version = version;
                 if (*stored) {
                   auto parsed = releaseFromJson(**stored);
                   if (!parsed.ok()) return replyError(res, parsed.status());
                   release = std::move(*parsed);
                 }
                 json out = releaseJson(release, environmentChecks());
                 addPromotions(policy_ ? policy_->current().get() : nullptr, release, out);
                 reply(res, 200, out);
               });

  server_->Post(R"(/api/v1/releases/([^/]+)/([^/]+)/checks)", [this](const httplib::Request& req,
                                                                     httplib::Response& res) {
    auto actor = caller(req, res);
    if (!actor) return;
    const std::string service = req.matches[1];
    const std::string version = req.matches[2];
    AuditEntry entry{actor->name,
                     actor->role,
                     "POST /api/v1/releases/{service}/"
                     "{version}/checks",
                     "",
                     "",
                     actor->client,
                     ""};
    Status valid = checkRelease(service, version);
    auto report = valid.ok() ? reportFromBody(req.body) : StatusOr<CheckReport>(valid);
    if (!report.ok()) {
      entry.outcome = outcomeOf(report.status());
      entry.detail = report.status().message();
      record(entry);
      return replyError(res, report.status());
    }
    report->by = actor->name;
    report->at_ms = nowMs();
    entry.target = service + " " + version;
    entry.detail = report->name + (report->passed ? " passed" : " failed");
    auto release = audited<ReleaseRecord>(entry, [&](AuditEntry&) -> StatusOr<ReleaseRecord> {
      return engine_.reportCheck(service, version, *report);
    });
    if (!release.ok()) return replyError(res, release.status());
    reply(res, 200, releaseJson(*release, environmentChecks()));
  });
}

std::vector<std::pair<std::string, std::vector<common::Check>>> HttpApi::environmentChecks() const {
  std::vector<std::pair<std::string, std::vector<common::Check>>> out;
  auto policy = policy_ ? policy_->current() : nullptr;
  if (!policy) return out;
  for (const std::string& name : policy->environment_order) {
    out.emplace_back(name, policy->environments.at(name).checks);
  }
  return out;
}

}  // namespace flotilla::coordinator
