// The workflow walk-through's files (examples/workflow/, run by scripts/quickstart): the policy
// loads as the coordinator loads it (--policy), with its trigger's plan template, and says what
// the README and the quickstart say it does.
#include <gtest/gtest.h>

#include <string>

#include "coordinator/policy_file.hpp"

namespace flotilla {
namespace {

TEST(WorkflowExample, ThePolicyAndItsTriggerTemplateLoad) {
  coordinator::PolicyFile file(std::string(FLOTILLA_SOURCE_DIR) + "/examples/workflow/policy.yaml");
  const common::Status loaded = file.load();
  ASSERT_TRUE(loaded.ok()) << loaded.toString();
  auto policy = file.current();
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(policy->environment_order,
            (std::vector<std::string>{"development", "staging", "production"}));
  const common::Environment& production = policy->environments.at("production");
  ASSERT_TRUE(production.approval.has_value());
  ASSERT_TRUE(production.promotion.has_value());
  EXPECT_EQ(production.promotion->from, "staging");
  EXPECT_EQ(production.watch.size(), 2u);
  ASSERT_TRUE(policy->hotfix.has_value());

  auto trigger = file.trigger("develop-merge");
  ASSERT_TRUE(trigger.has_value());
  EXPECT_EQ(trigger->environment, "development");
  EXPECT_EQ(trigger->plan.service, "checkout");
  EXPECT_FALSE(trigger->plan.steps.watch.empty());
  ASSERT_EQ(trigger->plan.waves.size(), 1u);
  EXPECT_EQ(trigger->plan.waves[0].selector.at("environment"), "development");
}

}  // namespace
}  // namespace flotilla
