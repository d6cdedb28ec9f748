// Test support, plans as the tests submit them.
#include "tests/support/plans.hpp"

#include <sstream>

#include "tests/support/files.hpp"

#ifndef FLOTILLA_DEMO_SERVICE_BIN
#error "FLOTILLA_DEMO_SERVICE_BIN must be defined by CMake"
#endif

namespace flotilla::support {

const char* const kDemoServiceBinary = FLOTILLA_DEMO_SERVICE_BIN;

namespace {

// A YAML single-quoted scalar.
std::string quoted(const std::string& text) { return "'" + replaceAll(text, "'", "''") + "'"; }

void writeWaves(std::ostringstream& out, const std::vector<PlanWave>& waves,
                const std::string& bake = "") {
  out << "waves:\n";
  for (const PlanWave& w : waves) {
    out << "  - name: " << w.name << "\n    " << w.targets << "\n";
    for (const std::string& line : w.more) out << "    " << line << "\n";
    if (!bake.empty()) out << "    bake: " << bake << "\n";
  }
}

}  // namespace

std::string logStep(const std::string& step) {
  return "echo " + step + " >> @DIR@/$FLOTILLA_DEPLOYMENT.$FLOTILLA_CLUSTER.log";
}

PlanWave waveOf(const std::string& name, const std::vector<std::string>& clusters,
                std::vector<std::string> more) {
  std::string list;
  for (const auto& c : clusters) list += (list.empty() ? "" : ", ") + c;
  return {name, "clusters: [" + list + "]", std::move(more)};
}

PlanWave waveSelecting(const std::string& name, const std::string& labels,
                       std::vector<std::string> more) {
  return {name, "selector: {" + labels + "}", std::move(more)};
}

ScriptPlan noopPlan(const std::string& service, const std::string& version,
                    std::vector<PlanWave> waves) {
  ScriptPlan plan;
  plan.service = service;
  plan.version = version;
  plan.build = "true";
  plan.apply = "true";
  plan.verify = "";
  plan.rollback = "true";
  plan.timeout = "";
  plan.waves = std::move(waves);
  return plan;
}

std::string ScriptPlan::yaml() const {
  std::ostringstream out;
  out << "service: " << service << "\nversion: \"" << version << "\"\n";
  if (driver_line) out << "driver: script\n";
  out << "steps:\n";
  for (const auto& [name, command] :
       {std::pair{"build", &build}, std::pair{"apply", &apply}, std::pair{"verify", &verify},
        std::pair{"rollback", &rollback}, std::pair{"watch", &watch}}) {
    if (!command->empty()) out << "  " << name << ": " << quoted(*command) << "\n";
  }
  if (!timeout.empty()) out << "  timeout: " << timeout << "\n";
  out << policy;
  writeWaves(out, waves);
  return out.str();
}

std::string ProcessPlan::yaml() const {
  std::ostringstream out;
  out << "service: checkout\n"
      << "version: \"" << version << "\"\n"
      << "driver: process\n"
      << "process:\n"
      << "  command: \"exec " << kDemoServiceBinary << " --port {port} --version {version}"
      << command_extra << "\"\n"
      << "  replicas: " << replicas << "\n"
      << "  ports: \"" << ports << "\"\n"
      << "traffic:\n"
      << "  haproxy: {socket: \"@DIR@/{cluster}.sock\", backend: checkout}\n";
  if (!strategy.empty()) out << "strategy: " << strategy << "\n";
  out << "health:\n"
      << "  http: {path: /health, interval: 200ms, timeout: 500ms, failure_threshold: 3}\n";
  if (!metrics.empty()) out << "  metrics: " << metrics << "\n";
  if (!alerts.empty()) out << "alerts: " << alerts << "\n";
  writeWaves(out, waves, bake);
  return out.str();
}

std::string canarySteps(const std::string& pause) {
  return "{type: canary, steps: [10, 50, 100], pause: " + pause + "}";
}

std::string onlyFor(const std::string& version, const std::string& flags) {
  return " $(test {version} = " + version + " && echo " + flags + ")";
}

}  // namespace flotilla::support
