// The agent's durable stage records.
#include "agent/stage_record.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "common/plan.hpp"
#include "common/private_dir.hpp"
#include "common/rules.hpp"

namespace flotilla::agent {

using common::Status;
using common::StatusOr;
using nlohmann::json;
namespace fs = std::filesystem;

std::string StageKey::toString() const {
  return deployment + "/" + stage + "#" + std::to_string(attempt);
}

namespace {

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// [a-z0-9][a-z0-9-]{0,max-1}. Hand-written: GCC 12 warns falsely inside std::regex in
// sanitizer builds, and warnings are errors.
bool isIdWord(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max || !isLowerAlnum(s[0])) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return isLowerAlnum(c) || c == '-'; });
}

}  // namespace

bool isValidDeploymentId(const std::string& id) { return isIdWord(id, 80); }

bool isValidStageId(const std::string& id) {
  auto slash = id.find('/');
  if (slash == std::string::npos || !isIdWord(std::string_view(id).substr(0, slash), 63)) {
    return false;
  }
  // "<step>" for steps that run once, "<step>-<index>" (shift-3, analyze-4) for steps a
  // sequence repeats, "verify-<check>" for a verification checklist's checks.
  std::string_view step = std::string_view(id).substr(slash + 1);
  constexpr std::string_view kCheck = "verify-";
  if (step.substr(0, kCheck.size()) == kCheck) {
    return common::isVerifyCheckName(step.substr(kCheck.size()));
  }
  std::string_view index;
  if (auto dash = step.find('-'); dash != std::string_view::npos) {
    index = step.substr(dash + 1);
    step = step.substr(0, dash);
    if (index.empty() || index.size() > 4 ||
        index.find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
  }
  auto known = common::stepFromName(step);
  return known && common::stepRepeats(*known) == !index.empty();
}

namespace {

std::string fileStem(const StageKey& key) {
  std::string stage = key.stage;
  std::replace(stage.begin(), stage.end(), '/', '~');
  return stage + "." + std::to_string(key.attempt);
}

json toJson(const StageRecord& r) {
  return json{{"deployment", r.key.deployment},
              {"stage", r.key.stage},
              {"attempt", r.key.attempt},
              {"nonce", r.key.nonce},
              {"state", r.state == RecordState::kStarted ? "started" : "finished"},
              {"outcome", outcomeName(r.outcome)},
              {"exit_code", r.exit_code},
              {"message", r.message},
              {"started_ms", r.started_ms},
              {"finished_ms", r.finished_ms},
              {"pgid", r.pgid},
              {"start_ticks", r.start_ticks},
              {"artifact", r.artifact}};
}

StageRecord fromJson(const json& j) {
  StageRecord r;
  r.key.deployment = j.at("deployment").get<std::string>();
  r.key.stage = j.at("stage").get<std::string>();
  r.key.attempt = j.at("attempt").get<uint32_t>();
  r.key.nonce = j.value("nonce", "");  // records written before nonces have none
  // Only values the writer produces: a damaged record must not turn an
  // unknown effect into a finished one.
  std::string state = j.at("state").get<std::string>();
  if (state == "started") {
    r.state = RecordState::kStarted;
  } else if (state == "finished") {
    r.state = RecordState::kFinished;
  } else {
    throw std::invalid_argument("unknown state \"" + state + "\"");
  }
  std::string outcome = j.at("outcome").get<std::string>();
  auto known = common::outcomeFromName(outcome);
  if (!known) throw std::invalid_argument("unknown outcome \"" + outcome + "\"");
  r.outcome = *known;
  r.exit_code = j.at("exit_code").get<int>();
  r.message = j.at("message").get<std::string>();
  r.started_ms = j.at("started_ms").get<int64_t>();
  r.finished_ms = j.at("finished_ms").get<int64_t>();
  r.pgid = j.value("pgid", 0);
  r.start_ticks = j.value("start_ticks", uint64_t{0});
  r.artifact = j.value("artifact", "");  // absent in records older than artifact digests
  if (!common::isArtifactDigest(r.artifact)) r.artifact.clear();
  return r;
}

}  // namespace

StatusOr<std::unique_ptr<StageStore>> StageStore::open(const std::string& dir,
                                                       const std::string& cluster) {
  Status made = common::createPrivateDirectories((fs::path(dir) / "stages").string());
  if (!made.ok()) return Status::IoError("cannot create state dir " + dir + ": " + made.message());
  // Before anything is read: a second agent on this dir would run every stage again.
  auto lock = common::DirLock::acquire(dir, "agent", "state dir");
  if (!lock.ok()) return lock.status();
  auto tightened = common::makePrivateTree(dir);
  if (!tightened.ok()) return tightened.status();
  if (*tightened > 0) {
    spdlog::warn("state dir {}: {} directories and files were readable by others; now 0700/0600",
                 dir, *tightened);
  }
  std::unique_ptr<StageStore> store(new StageStore(dir, cluster));
  store->lock_ = std::move(lock).value();
  Status s = store->load();
  if (!s.ok()) return s;
  return store;
}

Status StageStore::load() {
  try {
    return loadFiles();
  } catch (const fs::filesystem_error& e) {
    // Stepping through a directory throws on an I/O error mid-way.
    return Status::IoError(std::string("reading ") + dir_ + ": " + e.what());
  }
}

Status StageStore::loadFiles() {
  fs::path agent_file = fs::path(dir_) / "agent.json";
  if (fs::exists(agent_file)) {
    std::ifstream in(agent_file);
    std::stringstream ss;
    ss << in.rdbuf();
    json j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("cluster") || !j["cluster"].is_string() ||
        !j.contains("highest_epoch") || !j["highest_epoch"].is_number_unsigned()) {
      return Status::Corruption(agent_file.string() + " does not decode");
    }
    if (j["cluster"].get<std::string>() != cluster_) {
      return Status::InvalidArgument("state dir " + dir_ + " belongs to cluster " +
                                     j["cluster"].get<std::string>() + ", not " + cluster_);
    }
    highest_epoch_ = j["highest_epoch"].get<uint64_t>();
    enrolled_ = j.contains("enrolled") && j["enrolled"].is_boolean() && j["enrolled"].get<bool>();
  } else {
    Status s = writeAgentFile();
    if (!s.ok()) return s;
  }
  std::error_code ec;
  fs::directory_iterator deps(fs::path(dir_) / "stages", ec);
  if (ec) return Status::IoError("reading " + dir_ + "/stages: " + ec.message());
  for (const auto& dep : deps) {
    if (!dep.is_directory()) continue;
    std::error_code dep_ec;
    fs::directory_iterator files(dep.path(), dep_ec);
    if (dep_ec) return Status::IoError("reading " + dep.path().string() + ": " + dep_ec.message());
    for (const auto& f : files) {
      if (f.path().extension() != ".json") continue;  // skips .tmp leftovers of a crash
      std::ifstream in(f.path());
      std::stringstream ss;
      ss << in.rdbuf();
      try {
        StageRecord r = fromJson(json::parse(ss.str()));
        records_[r.key] = r;
      } catch (const std::exception& e) {
        return Status::Corruption("stage record " + f.path().string() +
                                  " does not decode: " + e.what());
      }
    }
  }
  return Status::Ok();
}

Status StageStore::writeAgentFile() {
  json j = {{"cluster", cluster_}, {"highest_epoch", highest_epoch_}, {"enrolled", enrolled_}};
  return common::writeFileDurably((fs::path(dir_) / "agent.json").string(), j.dump());
}

Status StageStore::markEnrolled() {
  if (enrolled_) return Status::Ok();
  enrolled_ = true;
  Status s = writeAgentFile();
  if (!s.ok()) enrolled_ = false;
  return s;
}

Status StageStore::setHighestEpoch(uint64_t epoch) {
  if (epoch <= highest_epoch_) return Status::Ok();
  uint64_t before = highest_epoch_;
  highest_epoch_ = epoch;
  Status s = writeAgentFile();
  if (!s.ok()) highest_epoch_ = before;
  return s;
}

std::optional<StageRecord> StageStore::find(const StageKey& key) const {
  auto it = records_.find(key);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

std::string StageStore::recordPath(const StageKey& key) const {
  return (fs::path(dir_) / "stages" / key.deployment / (fileStem(key) + ".json")).string();
}

std::string StageStore::logPath(const StageKey& key) const {
  fs::path dir = fs::path(dir_) / "logs" / key.deployment;
  common::createPrivateDirectories(dir.string()).ignoreError();  // open() then says why
  return (dir / (fileStem(key) + ".log")).string();
}

int StageStore::openLog(const StageKey& key) const {
  if (!isValidDeploymentId(key.deployment) || !isValidStageId(key.stage)) return -1;
  return ::open(logPath(key).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                common::kPrivateFileMode);
}

Status StageStore::put(const StageRecord& record) {
  if (!isValidDeploymentId(record.key.deployment) || !isValidStageId(record.key.stage)) {
    return Status::InvalidArgument("refusing to record stage " + record.key.toString());
  }
  fs::path path = recordPath(record.key);
  Status made = common::createPrivateDirectories(path.parent_path().string());
  if (!made.ok()) return made;
  Status s = common::writeFileDurably(path.string(), toJson(record).dump());
  if (!s.ok()) return s;
  records_[record.key] = record;
  return Status::Ok();
}

std::vector<StageRecord> StageStore::all() const {
  std::vector<StageRecord> out;
  for (const auto& [k, r] : records_) out.push_back(r);
  std::sort(out.begin(), out.end(),
            [](const StageRecord& a, const StageRecord& b) { return a.started_ms < b.started_ms; });
  return out;
}

}  // namespace flotilla::agent
