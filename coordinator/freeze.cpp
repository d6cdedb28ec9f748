// The incident freeze: record, checks, and which environments a plan or deployment touches.
#include "coordinator/freeze.hpp"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/rules.hpp"
#include "common/time_format.hpp"
#include "common/user_text.hpp"
#include "coordinator/store.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using nlohmann::json;

std::string Freeze::scope() const {
  return environment.empty() ? "the whole fleet" : "environment " + environment;
}

std::string freezeKey(uint64_t seq) {
  char digits[24];
  std::snprintf(digits, sizeof digits, "%016llu", static_cast<unsigned long long>(seq));
  return std::string(kFreezeKeyPrefix) + digits;
}

std::string freezeToJsonText(const Freeze& f) {
  json notes = json::array();
  for (const auto& n : f.notes)
    notes.push_back({{"text", n.text}, {"by", n.by}, {"at_ms", n.at_ms}});
  return json{{"seq", f.seq},
              {"reason", f.reason},
              {"environment", f.environment},
              {"by", f.by},
              {"at_ms", f.at_ms},
              {"lifted_by", f.lifted_by},
              {"lifted_ms", f.lifted_ms},
              {"notes", std::move(notes)}}
      .dump();
}

StatusOr<Freeze> freezeFromJsonText(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("freeze record is not JSON");
  try {
    Freeze f;
    f.seq = j.at("seq").get<uint64_t>();
    f.reason = j.at("reason").get<std::string>();
    f.environment = j.at("environment").get<std::string>();
    f.by = j.at("by").get<std::string>();
    f.at_ms = j.at("at_ms").get<int64_t>();
    f.lifted_by = j.at("lifted_by").get<std::string>();
    f.lifted_ms = j.at("lifted_ms").get<int64_t>();
    for (const auto& n : j.at("notes")) {
      f.notes.push_back(FreezeNote{n.at("text").get<std::string>(), n.at("by").get<std::string>(),
                                   n.at("at_ms").get<int64_t>()});
    }
    return f;
  } catch (const json::exception& e) {
    return Status::Corruption(std::string("freeze record: ") + e.what());
  }
}

StatusOr<std::vector<Freeze>> loadFreezes(const Store& store) {
  auto records = store.scanRecords(kFreezeKeyPrefix);
  if (!records.ok()) return records.status();
  std::vector<Freeze> out;
  out.reserve(records->size());
  for (const auto& [key, value] : *records) {
    auto f = freezeFromJsonText(value);
    if (!f.ok()) return Status::Corruption(key + ": " + f.status().message());
    out.push_back(std::move(f).value());
  }
  return out;
}

std::optional<uint64_t> parseFreezeId(std::string_view id) {
  constexpr std::string_view kPrefix = "freeze-";
  if (!id.starts_with(kPrefix)) return std::nullopt;
  id.remove_prefix(kPrefix.size());
  if (id.empty() || id.size() > 15 || id.front() == '0') return std::nullopt;
  uint64_t n = 0;
  for (char c : id) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

namespace {

bool hasControl(std::string_view text, bool allow_newlines) {
  return std::any_of(text.begin(), text.end(), [&](char c) {
    const auto byte = static_cast<unsigned char>(c);
    if (allow_newlines && (c == '\n' || c == '\t')) return false;
    return byte < 0x20 || byte == 0x7f;
  });
}

}  // namespace

Status checkFreezeReason(std::string_view reason) {
  if (reason.empty()) {
    return Status::InvalidArgument("a freeze needs a reason (the incident): \"reason\" is empty");
  }
  if (reason.size() > kMaxFreezeReasonBytes) {
    return Status::InvalidArgument("\"reason\" is " + std::to_string(reason.size()) +
                                   " bytes; at most " + std::to_string(kMaxFreezeReasonBytes));
  }
  if (hasControl(reason, false)) {
    return Status::InvalidArgument("\"reason\" may not contain control characters");
  }
  return Status::Ok();
}

Status checkFreezeEnvironment(std::string_view environment) {
  if (environment.empty() || common::isValidLabelValue(environment)) return Status::Ok();
  return Status::InvalidArgument(
      "\"environment\" must be an agent environment label value (up to 128 printable ASCII "
      "characters without spaces), not " +
      common::quote(environment));
}

Status checkFreezeNote(std::string_view text) {
  if (text.empty()) return Status::InvalidArgument("\"text\" is empty");
  if (text.size() > kMaxFreezeNoteBytes) {
    return Status::InvalidArgument("\"text\" is " + std::to_string(text.size()) +
                                   " bytes; at most " + std::to_string(kMaxFreezeNoteBytes));
  }
  if (hasControl(text, true)) {
    return Status::InvalidArgument("\"text\" may not contain control characters");
  }
  return Status::Ok();
}

std::set<std::string> environmentsTouched(const common::Plan& plan,
                                          const std::vector<WaveProgress>& progress,
                                          const AgentsByName& agents) {
  std::set<std::string> out;
  std::set<std::string> earlier;
  auto add = [&](const std::string& cluster) {
    earlier.insert(cluster);
    auto agent = agents.find(cluster);
    if (agent == agents.end()) return;
    auto env = agent->second.labels.find("environment");
    if (env != agent->second.labels.end()) out.insert(env->second);
  };
  for (size_t i = 0; i < plan.waves.size(); ++i) {
    // The policy's environment (--policy), besides the agents' labels.
    if (!plan.waves[i].environment.empty()) out.insert(plan.waves[i].environment);
    if (i < progress.size() && progress[i].resolved) {
      for (const auto& c : progress[i].clusters) add(c.name);
      continue;
    }
    for (const auto& name : waveClusters(plan.waves[i], agents, earlier)) add(name);
  }
  return out;
}

const Freeze* coveringFreeze(const std::vector<Freeze>& freezes,
                             const std::set<std::string>& envs) {
  const Freeze* found = nullptr;
  for (const auto& f : freezes) {
    if (!f.active()) continue;
    if (f.environment.empty()) return &f;
    if (found == nullptr && envs.count(f.environment) > 0) found = &f;
  }
  return found;
}

bool passesFreezes(const common::Plan& plan) {
  return plan.hotfix && plan.hotfix->rules.allowed_during_freeze;
}

const Freeze* coveringFreeze(const std::vector<Freeze>& freezes, const Deployment& d,
                             const AgentsByName& agents) {
  if (passesFreezes(d.plan)) return nullptr;
  if (std::none_of(freezes.begin(), freezes.end(), [](const Freeze& f) { return f.active(); })) {
    return nullptr;  // the usual case: no environment is worked out
  }
  return coveringFreeze(freezes, environmentsTouched(d.plan, d.waves, agents));
}

std::string describeFreeze(const Freeze& f) {
  return f.id() + " (" + f.scope() + ") by " + f.by + " since " +
         common::formatRfc3339(common::fromUnixMillis(f.at_ms)) + ": " + f.reason;
}

Status checkSubmissionAllowed(const common::Plan& plan, const std::vector<Freeze>& freezes,
                              const AgentsByName& agents, const Freeze** blocking) {
  const Freeze* f = passesFreezes(plan)
                        ? nullptr
                        : coveringFreeze(freezes, environmentsTouched(plan, {}, agents));
  if (blocking != nullptr) *blocking = f;
  if (f == nullptr) return Status::Ok();
  return Status::FailedPrecondition(
      "deployments are frozen: " + describeFreeze(*f) + "; new submissions are refused until `" +
      (f->environment.empty() ? std::string("flotilla unfreeze")
                              : "flotilla unfreeze --env " + f->environment) +
      "`" +
      (plan.hotfix ? std::string("; the policy does not allow hotfixes during a freeze (its "
                                 "hotfix.allowed_during_freeze is not true)")
                   : std::string()));
}

}  // namespace flotilla::coordinator
