#include "coordinator/releases.hpp"

#include <cmath>
#include <iomanip>
#include <sstream>

#include "common/time_format.hpp"
#include "common/user_text.hpp"

namespace flotilla::coordinator {
namespace {

using common::Status;
using nlohmann::json;

std::string number(double value) {
  std::ostringstream out;
  out << std::setprecision(15) << value;
  return out.str();
}

bool printableAscii(const std::string& text) {
  for (unsigned char c : text) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

std::string rfc3339(int64_t ms) { return common::formatRfc3339(common::fromUnixMillis(ms)); }

json reportJson(const CheckReport& r) {
  return json{{"name", r.name},
              {"passed", r.passed},
              {"value", r.value ? json(*r.value) : json(nullptr)},
              {"url", r.url.empty() ? json(nullptr) : json(r.url)},
              {"by", r.by},
              {"at_ms", r.at_ms}};
}

}  // namespace

std::string releaseKey(const std::string& service, const std::string& version) {
  return "releases/" + service + "/" + version;
}

std::string releaseToJson(const ReleaseRecord& release) {
  json checks = json::array();
  for (const auto& [name, report] : release.checks) checks.push_back(reportJson(report));
  json succeeded = json::array();
  for (const auto& [env, s] : release.succeeded) {
    succeeded.push_back({{"environment", s.environment},
                         {"artifact", s.artifact},
                         {"deployment", s.deployment},
                         {"at_ms", s.at_ms}});
  }
  return json{{"service", release.service},
              {"version", release.version},
              {"checks", checks},
              {"artifact", release.artifact},
              {"artifact_deployment", release.artifact_deployment},
              {"artifact_ms", release.artifact_ms},
              {"previous_artifacts", release.previous_artifacts},
              {"succeeded", succeeded},
              {"created_ms", release.created_ms},
              {"updated_ms", release.updated_ms}}
      .dump();
}

common::StatusOr<ReleaseRecord> releaseFromJson(const std::string& text) {
  try {
    const json j = json::parse(text);
    ReleaseRecord r;
    r.service = j.at("service").get<std::string>();
    r.version = j.at("version").get<std::string>();
    r.created_ms = j.at("created_ms").get<int64_t>();
    r.updated_ms = j.at("updated_ms").get<int64_t>();
    for (const auto& c : j.at("checks")) {
      CheckReport report;
      report.name = c.at("name").get<std::string>();
      report.passed = c.at("passed").get<bool>();
      if (!c.at("value").is_null()) report.value = c.at("value").get<double>();
      if (!c.at("url").is_null()) report.url = c.at("url").get<std::string>();
      report.by = c.at("by").get<std::string>();
      report.at_ms = c.at("at_ms").get<int64_t>();
      r.checks[report.name] = std::move(report);
    }
    // Absent in records written before artifact digests and promotion.
    r.artifact = j.value("artifact", std::string());
    r.artifact_deployment = j.value("artifact_deployment", std::string());
    r.artifact_ms = j.value("artifact_ms", int64_t{0});
    if (j.contains("previous_artifacts")) {
      r.previous_artifacts = j.at("previous_artifacts").get<std::vector<std::string>>();
    }
    if (j.contains("succeeded")) {
      for (const auto& item : j.at("succeeded")) {
        EnvironmentSuccess s;
        s.environment = item.at("environment").get<std::string>();
        s.artifact = item.at("artifact").get<std::string>();
        s.deployment = item.at("deployment").get<std::string>();
        s.at_ms = item.at("at_ms").get<int64_t>();
        r.succeeded[s.environment] = std::move(s);
      }
    }
    return r;
  } catch (const json::exception& e) {
    return Status::Corruption(std::string("stored release: ") + e.what());
  }
}

std::string setArtifact(ReleaseRecord& release, const std::string& digest,
                        const std::string& deployment, int64_t at_ms) {
  std::string replaced;
  if (!release.artifact.empty() && release.artifact != digest) {
    replaced = release.artifact;
    release.previous_artifacts.push_back(release.artifact);
    if (release.previous_artifacts.size() > kMaxPreviousArtifacts) {
      release.previous_artifacts.erase(release.previous_artifacts.begin());
    }
  }
  release.artifact = digest;
  release.artifact_deployment = deployment;
  release.artifact_ms = at_ms;
  release.updated_ms = at_ms;
  if (release.created_ms == 0) release.created_ms = at_ms;
  return replaced;
}

std::string shortDigest(const std::string& digest) {
  constexpr size_t kShown = 7 + 12;  // "sha256:" and 12 hex digits
  return digest.size() > kShown ? digest.substr(0, kShown) + "\u2026" : digest;
}

Status validateCheckReport(const CheckReport& report) {
  if (!common::isCheckName(report.name)) {
    return Status::InvalidArgument("check name " + common::quote(report.name) + ": " +
                                   common::kCheckNameRule);
  }
  if (report.value && !std::isfinite(*report.value)) {
    return Status::InvalidArgument("check value must be a finite number");
  }
  if (!report.url.empty()) {
    const bool scheme = report.url.rfind("https://", 0) == 0 || report.url.rfind("http://", 0) == 0;
    if (!scheme || report.url.size() > kMaxCheckUrlBytes || !printableAscii(report.url)) {
      return Status::InvalidArgument("check url must be an http:// or https:// URL of at most " +
                                     std::to_string(kMaxCheckUrlBytes) +
                                     " printable characters, not " + common::quote(report.url));
    }
  }
  return Status::Ok();
}

Status addCheckReport(ReleaseRecord& release, CheckReport report) {
  if (!release.checks.count(report.name) && release.checks.size() >= kMaxChecksPerRelease) {
    return Status::ResourceExhausted(release.service + " " + release.version + " already has " +
                                     std::to_string(kMaxChecksPerRelease) +
                                     " checks; no new check name is taken");
  }
  release.updated_ms = report.at_ms;
  if (release.created_ms == 0) release.created_ms = report.at_ms;
  release.checks[report.name] = std::move(report);
  return Status::Ok();
}

std::vector<UnmetCheck> unmetChecks(const std::vector<common::Check>& required,
                                    const ReleaseRecord* release) {
  std::vector<UnmetCheck> unmet;
  for (const common::Check& check : required) {
    const CheckReport* report = nullptr;
    if (release != nullptr) {
      auto it = release->checks.find(check.name);
      if (it != release->checks.end()) report = &it->second;
    }
    if (report == nullptr) {
      unmet.push_back({check.text(), "not reported"});
    } else if (!report->passed) {
      unmet.push_back({check.text(), "reported failed"});
    } else if (check.threshold && !report->value) {
      unmet.push_back({check.text(), "passed without a value"});
    } else if (check.threshold && !common::thresholdMet(*check.threshold, *report->value)) {
      unmet.push_back({check.text(), number(*report->value) + " does not meet it"});
    }
  }
  return unmet;
}

std::string unmetText(const std::vector<UnmetCheck>& unmet) {
  std::string out;
  for (const auto& u : unmet) {
    if (!out.empty()) out += "; ";
    out += u.check + " (" + u.why + ")";
  }
  return out;
}

json releaseJson(
    const ReleaseRecord& release,
    const std::vector<std::pair<std::string, std::vector<common::Check>>>& environments) {
  json checks = json::array();
  for (const auto& [name, r] : release.checks) {
    json item = reportJson(r);
    item.erase("at_ms");
    item["at"] = rfc3339(r.at_ms);
    checks.push_back(std::move(item));
  }
  json envs = json::array();
  for (const auto& [env, required] : environments) {
    const std::vector<UnmetCheck> unmet = unmetChecks(required, &release);
    json items = json::array();
    for (const common::Check& check : required) {
      const std::string text = check.text();
      json item{{"check", text}, {"met", true}, {"why", nullptr}};
      for (const auto& u : unmet) {
        if (u.check == text) {
          item["met"] = false;
          item["why"] = u.why;
        }
      }
      items.push_back(std::move(item));
    }
    envs.push_back({{"name", env}, {"ready", unmet.empty()}, {"checks", items}});
  }
  json succeeded = json::array();
  for (const auto& [env, s] : release.succeeded) {
    succeeded.push_back({{"environment", s.environment},
                         {"artifact", s.artifact.empty() ? json(nullptr) : json(s.artifact)},
                         {"deployment", s.deployment},
                         {"at", rfc3339(s.at_ms)}});
  }
  json artifact = nullptr;
  if (!release.artifact.empty()) {
    artifact = {{"digest", release.artifact},
                {"deployment", release.artifact_deployment},
                {"at", rfc3339(release.artifact_ms)},
                {"previous", release.previous_artifacts}};
  }
  return json{
      {"service", release.service},
      {"version", release.version},
      {"checks", checks},
      {"artifact", artifact},
      {"succeeded", succeeded},
      {"environments", envs},
      {"created_at", release.created_ms ? json(rfc3339(release.created_ms)) : json(nullptr)},
      {"updated_at", release.updated_ms ? json(rfc3339(release.updated_ms)) : json(nullptr)}};
}

}  // namespace flotilla::coordinator
