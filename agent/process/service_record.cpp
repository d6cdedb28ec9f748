#include "agent/process/service_record.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/private_dir.hpp"

namespace flotilla::agent {

using common::Status;
using common::StatusOr;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json toJson(const ReplicaSet& set) {
  json replicas = json::array();
  for (const Replica& r : set.replicas) {
    replicas.push_back({{"pid", r.pid},
                        {"start_ticks", r.start_ticks},
                        {"port", r.port},
                        {"slot", r.slot.empty() ? json(nullptr) : json(r.slot)},
                        {"weight", r.weight}});
  }
  return {{"version", set.version}, {"share", set.share}, {"replicas", std::move(replicas)}};
}

}  // namespace

json toJson(const ServiceRecord& rec) {
  json j = {{"service", rec.service},
            {"deployment", rec.deployment},
            {"previous_version", rec.previous_version}};
  j["traffic"] =
      rec.traffic
          ? json{{"haproxy", {{"socket", rec.traffic->socket}, {"backend", rec.traffic->backend}}}}
          : json(nullptr);
  j["stable"] = rec.stable ? toJson(*rec.stable) : json(nullptr);
  j["candidate"] = rec.candidate ? toJson(*rec.candidate) : json(nullptr);
  j["rolling"] = rec.rolling ? json{{"from", rec.rolling->from},
                                    {"to", rec.rolling->to},
                                    {"replicas", rec.rolling->replicas},
                                    {"max_unavailable", rec.rolling->max_unavailable},
                                    {"max_surge", rec.rolling->max_surge},
                                    {"weight", rec.rolling->weight},
                                    {"done", rec.rolling->done}}
                             : json(nullptr);
  return j;
}

StatusOr<ServiceRecord> recordFromJson(const json& j) {
  try {
    ServiceRecord rec;
    rec.service = j.at("service").get<std::string>();
    rec.deployment = j.value("deployment", "");
    rec.previous_version = j.value("previous_version", "");
    if (j.contains("traffic") && !j["traffic"].is_null()) {
      const json& h = j["traffic"].at("haproxy");
      rec.traffic =
          TrafficSpec{h.at("socket").get<std::string>(), h.at("backend").get<std::string>()};
    }
    auto readSet = [](const json& s) {
      ReplicaSet set;
      set.version = s.at("version").get<std::string>();
      set.share = s.value("share", 0);
      for (const json& r : s.at("replicas")) {
        Replica rep;
        rep.pid = r.at("pid").get<pid_t>();
        rep.start_ticks = r.at("start_ticks").get<uint64_t>();
        rep.port = r.at("port").get<int>();
        if (r.contains("slot") && r["slot"].is_string()) rep.slot = r["slot"].get<std::string>();
        rep.weight = r.value("weight", 0);
        set.replicas.push_back(rep);
      }
      return set;
    };
    if (j.contains("stable") && !j["stable"].is_null()) rec.stable = readSet(j["stable"]);
    if (j.contains("candidate") && !j["candidate"].is_null()) {
      rec.candidate = readSet(j["candidate"]);
    }
    if (j.contains("rolling") && !j["rolling"].is_null()) {
      const json& r = j["rolling"];
      RollState st;
      st.from = r.value("from", "");
      st.to = r.at("to").get<std::string>();
      st.replicas = r.value("replicas", 0);
      st.max_unavailable = r.value("max_unavailable", 1);
      st.max_surge = r.value("max_surge", 1);
      st.weight = r.value("weight", 0);
      st.done = r.value("done", false);
      rec.rolling = st;
    }
    return rec;
  } catch (const json::exception& e) {
    return Status::Corruption(e.what());
  }
}

StatusOr<std::optional<ServiceRecord>> readRecordFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::optional<ServiceRecord>();
    return Status::IoError("open " + path.string() + ": " + std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Corruption(path.string() + ": not JSON");
  auto rec = recordFromJson(j);
  if (!rec.ok()) return Status::Corruption(path.string() + ": " + rec.status().message());
  return std::optional<ServiceRecord>(std::move(*rec));
}

Status writeRecordFile(const fs::path& path, const ServiceRecord& rec) {
  return common::writeFileDurably(path.string(), toJson(rec).dump(2) + "\n");
}

}  // namespace flotilla::agent
