// The Kubernetes team's example (examples/kubernetes/): the plan parses, runs the steps its
// comments promise, and its scripts are valid shell. No API server runs here: the same path runs
// for real against HAProxy in integration/script_canary_test.cpp.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/plan.hpp"
#include "coordinator/deployment.hpp"

namespace flotilla {
namespace {

std::string example(const std::string& name) {
  std::ifstream in(std::string(FLOTILLA_SOURCE_DIR) + "/examples/kubernetes/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(KubernetesExample, PlanIsACanaryWatchedByHealthUrlAndPrometheus) {
  const std::string text = example("checkout-canary.yaml");
  ASSERT_FALSE(text.empty());
  common::PlanParseResult result = common::parsePlan(text);
  ASSERT_TRUE(result.plan.has_value())
      << (result.problems.empty() ? "" : result.problems[0].toString());
  const common::Plan& plan = *result.plan;
  EXPECT_EQ(plan.driver, common::DriverKind::kScript);
  EXPECT_EQ(plan.strategy.kind, common::StrategyKind::kCanary);
  EXPECT_FALSE(plan.health.http.url.empty());
  ASSERT_TRUE(plan.health.metrics.has_value());
  ASSERT_TRUE(plan.alerts.has_value()) << "the workflow's alerts, without an alerts: section";

  std::vector<std::string> production;
  for (const auto& step : coordinator::forwardSteps(plan, 1)) {
    production.push_back(std::string(common::stepName(step.kind)) + " " +
                         std::to_string(step.weight));
  }
  EXPECT_EQ(production,
            (std::vector<std::string>{"build 100", "apply 10", "verify 10", "analyze 10",
                                      "shift 50", "analyze 50", "shift 100", "bake 100"}));
}

TEST(KubernetesExample, ScriptsAreValidShell) {
  for (const char* script : {"canary-apply.sh", "canary-rollback.sh"}) {
    const std::string path = std::string(FLOTILLA_SOURCE_DIR) + "/examples/kubernetes/" + script;
    EXPECT_EQ(std::system(("sh -n '" + path + "'").c_str()), 0) << script;
  }
}

}  // namespace
}  // namespace flotilla
