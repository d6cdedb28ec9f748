// The stored form of a deployment: JSON, as a header plus one record per cluster (the store's
// form), or whole. Records written by older coordinators load: fields added since are optional.
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "coordinator/deployment.hpp"
#include "coordinator/records.hpp"

namespace flotilla::coordinator {

using common::Status;
using common::StatusOr;
using nlohmann::json;

namespace {

template <typename E>
E enumFromName(const std::string& name, const char* (*namer)(E), int count) {
  for (int i = 0; i < count; ++i) {
    if (name == namer(static_cast<E>(i))) return static_cast<E>(i);
  }
  throw std::invalid_argument("unknown value \"" + name + "\"");
}

json clusterToJson(const ClusterProgress& c) {
  json j = {{"name", c.name},
            {"state", clusterStateName(c.state)},
            {"attempt", c.attempt},
            {"step_index", c.step_index},
            {"in_flight", c.in_flight},
            {"abort_sent", c.abort_sent},
            {"agent_lost", c.agent_lost},
            {"rollback_lost", c.rollback_lost},
            {"applied", c.applied},
            {"previous_version", c.previous_version},
            {"message", c.message},
            {"promoted_by", c.promoted_by},
            {"held", c.held}};
  j["step"] = c.step ? json(stepName(*c.step)) : json(nullptr);
  j["exit_code"] = c.exit_code ? json(*c.exit_code) : json(nullptr);
  j["figures"] = c.figures ? common::figuresToJson(*c.figures) : json(nullptr);
  j["figures_stage"] = c.figures_stage;
  j["check"] = c.check;
  json checks = json::array();
  for (const CheckRun& run : c.checks) {
    checks.push_back({{"name", run.name},
                      {"running", run.running},
                      {"outcome", outcomeName(run.outcome)},
                      {"duration_ms", run.duration_ms},
                      {"exit_code", run.exit_code},
                      {"message", run.message}});
  }
  j["checks"] = std::move(checks);
  return j;
}

ClusterProgress clusterFromJson(const json& j) {
  ClusterProgress c;
  c.name = j.at("name").get<std::string>();
  c.state = enumFromName<ClusterState>(j.at("state").get<std::string>(), clusterStateName,
                                       kClusterStateCount);
  if (!j.at("step").is_null()) {
    const std::string step = j.at("step").get<std::string>();
    c.step = common::stepFromName(step);
    if (!c.step) throw std::invalid_argument("unknown step \"" + step + "\"");
  }
  c.step_index = j.at("step_index").get<int>();
  c.attempt = j.at("attempt").get<uint32_t>();
  c.in_flight = j.at("in_flight").get<bool>();
  c.abort_sent = j.at("abort_sent").get<bool>();
  c.agent_lost = j.value("agent_lost", false);  // absent in records older than the field
  c.rollback_lost = j.value("rollback_lost", false);
  c.applied = j.at("applied").get<bool>();
  c.previous_version = j.at("previous_version").get<std::string>();
  c.message = j.at("message").get<std::string>();
  if (!j.at("exit_code").is_null()) c.exit_code = j.at("exit_code").get<int>();
  // Absent in records older than promote and retry.
  c.promoted_by = j.value("promoted_by", std::string());
  c.held = j.value("held", false);
  // Absent in records older than the field.
  if (j.contains("figures") && !j.at("figures").is_null()) {
    auto figures = common::figuresFromJson(j.at("figures"));
    if (!figures.ok()) throw std::invalid_argument(figures.status().message());
    c.figures = std::move(figures).value();
    c.figures_stage = j.value("figures_stage", "");
  }
  // Absent in records older than verification checklists.
  c.check = j.value("check", std::string());
  if (j.contains("checks")) {
    for (const auto& jr : j.at("checks")) {
      const std::string outcome = jr.at("outcome").get<std::string>();
      auto known = common::outcomeFromName(outcome);
      if (!known) throw std::invalid_argument("unknown outcome \"" + outcome + "\"");
      c.checks.push_back(CheckRun{jr.at("name").get<std::string>(), jr.at("running").get<bool>(),
                                  *known, jr.at("duration_ms").get<uint64_t>(),
                                  jr.at("exit_code").get<int>(),
                                  jr.at("message").get<std::string>()});
    }
  }
  return c;
}

// Everything but the clusters; each wave's clusters are added by the caller.
json headerObject(const Deployment& d) {
  json waves = json::array();
  for (const auto& w : d.waves) {
    json approvals = json::array();
    for (const auto& a : w.approvals) {
      approvals.push_back(
          {{"by", a.by}, {"role", a.role}, {"at_ms", a.at_ms}, {"plan_sha256", a.plan_sha256}});
    }
    waves.push_back({{"name", w.name},
                     {"state", waveStateName(w.state)},
                     {"approved", w.approved},
                     {"approvals", std::move(approvals)},
                     {"resolved", w.resolved}});
  }
  json j = {{"id", d.id},
            {"plan", json::parse(common::planToJson(d.plan))},
            {"submitted_by", d.submitted_by},
            {"plan_sha256", d.plan_sha256},
            {"state", deploymentStateName(d.state)},
            {"resume_to", deploymentStateName(d.resume_to)},
            {"paused_for_lost", d.paused_for_lost},
            {"cancelling", d.cancelling},
            {"waits_for", d.waits_for},
            {"changes", d.changes},
            {"release_notes_url", d.release_notes_url},
            {"artifact", d.artifact},
            {"wave_index", d.wave_index},
            {"reason", d.reason},
            {"rollback_cause", d.rollback_cause},
            {"rollback_failed", d.rollback_failed},
            {"rollback_whole_fleet", d.rollback_whole_fleet},
            {"created_ms", d.created_ms},
            {"updated_ms", d.updated_ms},
            {"finished_ms", d.finished_ms},
            {"last_event_seq", d.last_event_seq},
            {"watch_tier", d.watch_tier},
            {"watch_tier_started_ms", d.watch_tier_started_ms},
            {"watch_ended_by", d.watch_ended_by},
            {"waves", std::move(waves)}};
  j["failure"] = d.failure ? json{{"cluster", d.failure->cluster},
                                  {"step", d.failure->step},
                                  {"message", d.failure->message}}
                           : json(nullptr);
  json notes = json::array();
  for (const auto& n : d.notes)
    notes.push_back({{"text", n.text}, {"by", n.by}, {"at_ms", n.at_ms}});
  j["notes"] = std::move(notes);
  return j;
}

}  // namespace

std::string deploymentToJson(const Deployment& d) {
  json j = headerObject(d);
  for (size_t i = 0; i < d.waves.size(); ++i) {
    json clusters = json::array();
    for (const auto& c : d.waves[i].clusters) clusters.push_back(clusterToJson(c));
    j["waves"][i]["clusters"] = std::move(clusters);
  }
  return j.dump();
}

std::string deploymentHeaderJson(const Deployment& d) {
  json j = headerObject(d);
  for (size_t i = 0; i < d.waves.size(); ++i) {
    j["waves"][i]["cluster_count"] = d.waves[i].clusters.size();
  }
  return j.dump();
}

StatusOr<ClusterProgress> clusterFromJsonText(std::string_view text) {
  try {
    return clusterFromJson(json::parse(text));
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("cluster record does not decode: ") + e.what());
  }
}

StatusOr<Deployment> deploymentFromJson(const std::string& text) {
  return deploymentFromStored(text, StoredClusters{}, false);
}

StatusOr<Deployment> deploymentFromStored(const std::string& header, const StoredClusters& clusters,
                                          bool header_only) {
  try {
    json j = json::parse(header);
    Deployment d;
    d.id = j.at("id").get<std::string>();
    auto plan = common::planFromJson(j.at("plan").dump());
    if (!plan.ok()) return plan.status();
    d.plan = std::move(plan).value();
    // Absent in records older than actors and plan hashes.
    d.submitted_by = j.value("submitted_by", std::string());
    d.plan_sha256 = j.value("plan_sha256", std::string());
    if (d.plan_sha256.empty()) d.plan_sha256 = common::sha256Hex(common::planToJson(d.plan));
    d.state = enumFromName<DeploymentState>(j.at("state").get<std::string>(), deploymentStateName,
                                            kDeploymentStateCount);
    d.resume_to = enumFromName<DeploymentState>(j.at("resume_to").get<std::string>(),
                                                deploymentStateName, kDeploymentStateCount);
    d.wave_index = j.at("wave_index").get<size_t>();
    d.reason = j.at("reason").get<std::string>();
    d.paused_for_lost = j.value("paused_for_lost", false);
    // Absent in records older than the queue and safe cancel.
    d.cancelling = j.value("cancelling", false);
    d.waits_for = j.value("waits_for", std::string());
    // Absent in records older than the deployment log.
    d.changes = j.value("changes", std::string());
    d.release_notes_url = j.value("release_notes_url", std::string());
    d.artifact = j.value("artifact", std::string());  // absent before artifact digests
    if (j.contains("notes")) {
      for (const auto& jn : j.at("notes")) {
        d.notes.push_back(DeploymentNote{jn.at("text").get<std::string>(),
                                         jn.at("by").get<std::string>(),
                                         jn.at("at_ms").get<int64_t>()});
      }
    }
    d.rollback_cause = j.at("rollback_cause").get<std::string>();
    d.rollback_failed = j.at("rollback_failed").get<std::vector<std::string>>();
    d.rollback_whole_fleet = j.at("rollback_whole_fleet").get<bool>();
    d.created_ms = j.at("created_ms").get<int64_t>();
    d.updated_ms = j.at("updated_ms").get<int64_t>();
    d.finished_ms = j.value("finished_ms", int64_t{0});  // absent in records older than the field
    d.last_event_seq = j.at("last_event_seq").get<uint64_t>();
    // Absent in records older than the post-deploy watch.
    d.watch_tier = j.value("watch_tier", -1);
    d.watch_tier_started_ms = j.value("watch_tier_started_ms", int64_t{0});
    d.watch_ended_by = j.value("watch_ended_by", std::string());
    if (!j.at("failure").is_null()) {
      const json& f = j.at("failure");
      d.failure = Failure{f.at("cluster").get<std::string>(), f.at("step").get<std::string>(),
                          f.at("message").get<std::string>()};
    }
    for (const auto& jw : j.at("waves")) {
      const size_t index = d.waves.size();
      WaveProgress w;
      w.name = jw.at("name").get<std::string>();
      w.state = enumFromName<WaveState>(jw.at("state").get<std::string>(), waveStateName, 8);
      w.approved = jw.at("approved").get<bool>();
      if (jw.contains("approvals")) {
        for (const auto& ja : jw.at("approvals")) {
          w.approvals.push_back(
              Approval{ja.at("by").get<std::string>(), ja.at("role").get<std::string>(),
                       ja.at("at_ms").get<int64_t>(), ja.at("plan_sha256").get<std::string>()});
        }
      }
      w.resolved = jw.at("resolved").get<bool>();
      if (jw.contains("clusters")) {
        // The whole form (deploymentToJson), and records written before clusters had keys.
        for (const auto& jc : jw.at("clusters")) w.clusters.push_back(clusterFromJson(jc));
      } else if (!header_only) {
        const size_t count = jw.at("cluster_count").get<size_t>();
        for (size_t k = 0; k < count; ++k) {
          auto found =
              k > UINT32_MAX
                  ? clusters.end()
                  : clusters.find({static_cast<uint32_t>(index), static_cast<uint32_t>(k)});
          if (found == clusters.end()) {
            return Status::Corruption("deployment " + d.id + ": wave " + w.name + " has " +
                                      std::to_string(count) + " clusters and no record of the " +
                                      std::to_string(k + 1) + "th");
          }
          auto c = decodeClusterRecord(found->second);
          if (!c.ok()) {
            return Status::Corruption("deployment " + d.id + ": wave " + w.name + ", cluster " +
                                      std::to_string(k + 1) + ": " + c.status().message());
          }
          w.clusters.push_back(std::move(c).value());
        }
      }
      d.waves.push_back(std::move(w));
    }
    if (d.waves.size() != d.plan.waves.size()) {
      return Status::Corruption("deployment " + d.id + ": wave count does not match its plan");
    }
    return d;
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("stored deployment does not decode: ") + e.what());
  }
}

}  // namespace flotilla::coordinator
