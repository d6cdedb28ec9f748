// Test support, plans as the tests submit them: a script plan whose steps leave a trace the
// fleet fixture reads back (FleetTest::stepLog, FleetTest::versionOf), and a process plan that
// runs flotilla-demo-service replicas behind each cluster's HAProxy (service_fleet.hpp). Both
// write "@DIR@" where the test's dir goes (FleetTest::writePlan fills it in).
#pragma once

#include <string>
#include <vector>

namespace flotilla::support {

// The flotilla-demo-service binary the process plans run.
extern const char* const kDemoServiceBinary;

// A step command that appends the step's name to @DIR@/$FLOTILLA_DEPLOYMENT.$FLOTILLA_CLUSTER.log
// (what FleetTest::stepLog reads).
std::string logStep(const std::string& step);
// A command that writes the deployment's version to @DIR@/$FLOTILLA_CLUSTER.version (what
// FleetTest::versionOf reads).
inline constexpr char kRecordVersion[] = "echo $FLOTILLA_VERSION > @DIR@/$FLOTILLA_CLUSTER.version";

// One wave: its name, which clusters (a `clusters:` or `selector:` line), and further lines of
// its own ("approval: required", "max_parallel: 1", "bake: 3s").
struct PlanWave {
  std::string name;
  std::string targets;
  std::vector<std::string> more;
};
// `clusters: [a, b]`.
PlanWave waveOf(const std::string& name, const std::vector<std::string>& clusters,
                std::vector<std::string> more = {});
// `selector: {labels}`, e.g. waveSelecting("production", "environment: production").
PlanWave waveSelecting(const std::string& name, const std::string& labels,
                       std::vector<std::string> more = {});

// A script-driver plan. By default every step logs its name (logStep) and apply also records
// the version; a step set to "" is left out, as is an empty timeout. Every field has a default
// initializer, so that a designated initializer may leave any of them out.
struct ScriptPlan {
  std::string service = "web";
  std::string version = "1.0.0";
  bool driver_line = false;  // `driver: script` (the default driver) spelt out
  std::string build = logStep("build");
  std::string apply = logStep("apply") + " && " + kRecordVersion;
  std::string verify = logStep("verify");
  std::string rollback = logStep("rollback");
  std::string timeout = "20s";
  std::string watch{};   // steps.watch: run at each interval of the post-deploy watch; "": none
  std::string policy{};  // top-level lines between the steps and the waves, each ending in "\n"
  std::vector<PlanWave> waves{};

  std::string yaml() const;
};

// A plan whose build, apply and rollback do nothing (`true`), with no timeout: for tests where
// only who submits it, and where its waves go, matter.
ScriptPlan noopPlan(const std::string& service, const std::string& version,
                    std::vector<PlanWave> waves);

// A process-driver plan for service "checkout": `replicas` flotilla-demo-service processes on
// `ports`, traffic through HAProxy at @DIR@/{cluster}.sock (backend "checkout", as
// ServiceFleetTest starts it), health checks on /health every 200 ms (timeout 500 ms, the 4th
// failure in a row fails).
struct ProcessPlan {
  std::string version{};
  std::string ports{};          // "FIRST-LAST"
  std::string command_extra{};  // appended to the replica's command line, e.g. " --error-rate 0.2"
  int replicas = 2;
  std::string strategy{};  // YAML flow mapping; "": none (all at once)
  std::string metrics{};   // YAML flow mapping for health.metrics; "": none
  std::string alerts{};    // YAML flow mapping; "": none
  std::string bake{};      // every wave's bake; "": none
  std::vector<PlanWave> waves{};

  std::string yaml() const;
};

// A canary strategy's flow mapping: steps 10, 50 and 100 with `pause` between them.
std::string canarySteps(const std::string& pause);
// Command-line flags of the demo service that apply only when the replica runs `version` (so a
// rollback that restarts the old version with the same plan starts it well).
std::string onlyFor(const std::string& version, const std::string& flags);

}  // namespace flotilla::support
