// The route table, the role grants and the environment rule.
#include "coordinator/permissions.hpp"

#include <gtest/gtest.h>

#include <set>

namespace flotilla::coordinator {
namespace {

using common::Status;

AgentInfo agent(const std::string& cluster, std::map<std::string, std::string> labels) {
  AgentInfo a;
  a.cluster = cluster;
  a.labels = std::move(labels);
  return a;
}

const std::vector<AgentInfo> kFleet = {
    agent("staging-eu", {{"environment", "staging"}, {"region", "eu"}}),
    agent("prod-eu-1", {{"environment", "production"}, {"region", "eu"}}),
    agent("prod-us-1", {{"environment", "production"}, {"region", "us"}}),
    agent("unlabelled", {}),
};

common::Wave byNames(const std::string& name, std::vector<std::string> clusters) {
  common::Wave w;
  w.name = name;
  w.clusters = std::move(clusters);
  return w;
}

common::Wave bySelector(const std::string& name, std::map<std::string, std::string> selector) {
  common::Wave w;
  w.name = name;
  w.selector = std::move(selector);
  return w;
}

Actor actor(const std::string& role, std::vector<std::string> envs) {
  return Actor{"tester", role, std::move(envs), "127.0.0.1:1"};
}

TEST(PermissionsTest, EveryRouteOnceAndHealthzAloneIsPublic) {
  std::set<std::string> seen;
  for (const Route& r : routeTable()) {
    EXPECT_TRUE(seen.insert(std::string(r.method) + " " + std::string(r.pattern)).second)
        << r.method << " " << r.pattern << " is listed twice";
    if (r.permission == Permission::kPublic) {
      EXPECT_EQ(r.pattern, "/healthz");
      EXPECT_EQ(r.method, "GET");
    }
  }
}

TEST(PermissionsTest, FindRoute) {
  const Route* approve = findRoute("POST", "/api/v1/deployments/web-3/approve");
  ASSERT_NE(approve, nullptr);
  EXPECT_EQ(approve->permission, Permission::kApprove);
  EXPECT_EQ(findRoute("HEAD", "/healthz")->permission, Permission::kPublic);
  EXPECT_EQ(findRoute("DELETE", "/api/v1/tokens/alice")->permission, Permission::kAdmin);
  EXPECT_EQ(findRoute("GET", "/api/v1/deployments/web-3")->permission, Permission::kRead);
  // Deny by default: anything not listed.
  EXPECT_EQ(findRoute("GET", "/api/v1/deployments/a/b"), nullptr);
  EXPECT_EQ(findRoute("POST", "/api/v1/deployments//approve"), nullptr);
  EXPECT_EQ(findRoute("PUT", "/api/v1/deployments"), nullptr);
  EXPECT_EQ(findRoute("GET", "/api/v1/deployments/"), nullptr);
  EXPECT_EQ(findRoute("GET", "/healthz/"), nullptr);
  EXPECT_EQ(findRoute("OPTIONS", "/api/v1/deployments"), nullptr);
  EXPECT_EQ(findRoute("GET", ""), nullptr);
  EXPECT_EQ(findRoute("GET", "api/v1/agents"), nullptr);
}

// The on-call deployer may promote and retry (no approver needed at night); a viewer may not.
TEST(PermissionsTest, PromoteAndRetryNeedDeploy) {
  for (const char* path :
       {"/api/v1/deployments/web-3/promote", "/api/v1/deployments/web-3/retry"}) {
    const Route* route = findRoute("POST", path);
    ASSERT_NE(route, nullptr) << path;
    EXPECT_EQ(route->permission, Permission::kDeploy) << path;
  }
  EXPECT_EQ(findRoute("GET", "/api/v1/deployments/web-3/promote"), nullptr);
}

TEST(PermissionsTest, RoleGrants) {
  EXPECT_TRUE(roleGrants(Role::kViewer, Permission::kRead));
  EXPECT_FALSE(roleGrants(Role::kViewer, Permission::kDeploy));
  EXPECT_FALSE(roleGrants(Role::kViewer, Permission::kApprove));
  EXPECT_TRUE(roleGrants(Role::kDeployer, Permission::kDeploy));
  EXPECT_FALSE(roleGrants(Role::kDeployer, Permission::kApprove));
  EXPECT_FALSE(roleGrants(Role::kDeployer, Permission::kAdmin));
  EXPECT_TRUE(roleGrants(Role::kApprover, Permission::kApprove));
  EXPECT_FALSE(roleGrants(Role::kApprover, Permission::kDeploy));
  for (Permission p :
       {Permission::kRead, Permission::kDeploy, Permission::kApprove, Permission::kAdmin}) {
    EXPECT_TRUE(roleGrants(Role::kAdmin, p));
  }
}

TEST(PermissionsTest, PlanEnvironmentsNameTheClusterAndEnvironment) {
  common::Plan plan;
  plan.waves = {byNames("stage", {"staging-eu"}), byNames("prod", {"prod-eu-1"})};
  Status s = checkPlanEnvironments(actor("deployer", {"staging"}), plan, kFleet);
  EXPECT_TRUE(s.isPermissionDenied());
  EXPECT_NE(s.message().find("prod-eu-1"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("production"), std::string::npos) << s.message();
  EXPECT_TRUE(
      checkPlanEnvironments(actor("deployer", {"staging", "production"}), plan, kFleet).ok());
  EXPECT_TRUE(checkPlanEnvironments(actor("deployer", {}), plan, kFleet).ok());
  EXPECT_TRUE(checkPlanEnvironments(actor("admin", {"staging"}), plan, kFleet).ok());

  common::Plan unknown;
  unknown.waves = {byNames("w", {"ghost"})};
  EXPECT_TRUE(
      checkPlanEnvironments(actor("deployer", {"staging"}), unknown, kFleet).isPermissionDenied());
  common::Plan unlabelled;
  unlabelled.waves = {byNames("w", {"unlabelled"})};
  EXPECT_TRUE(checkPlanEnvironments(actor("deployer", {"staging"}), unlabelled, kFleet)
                  .isPermissionDenied());
}

TEST(PermissionsTest, SelectorsMustStayInTheEnvironments) {
  common::Plan pinned;
  pinned.waves = {bySelector("w", {{"environment", "staging"}})};
  EXPECT_TRUE(checkPlanEnvironments(actor("deployer", {"staging"}), pinned, kFleet).ok());

  common::Plan region;
  region.waves = {bySelector("w", {{"region", "eu"}})};
  Status s = checkPlanEnvironments(actor("deployer", {"staging"}), region, kFleet);
  EXPECT_TRUE(s.isPermissionDenied());
  EXPECT_NE(s.message().find("prod-eu-1"), std::string::npos) << s.message();

  // Matches only staging today, but could pick any cluster registering later.
  common::Plan loose;
  loose.waves = {bySelector("w", {{"region", "eu"}, {"tier", "none"}})};
  EXPECT_TRUE(
      checkPlanEnvironments(actor("deployer", {"staging"}), loose, kFleet).isPermissionDenied());
}

TEST(PermissionsTest, DeploymentUsesResolvedClustersAndTheApprovedWave) {
  Deployment d;
  d.id = "web-1";
  d.plan.waves = {byNames("stage", {"staging-eu"}),
                  bySelector("prod", {{"environment", "production"}})};
  d.waves.resize(2);
  d.waves[0].name = "stage";
  d.waves[0].resolved = true;
  d.waves[0].clusters.resize(1);
  d.waves[0].clusters[0].name = "staging-eu";
  d.waves[1].name = "prod";

  EXPECT_TRUE(
      checkDeploymentEnvironments(actor("deployer", {"staging"}), d, kFleet).isPermissionDenied());
  EXPECT_TRUE(
      checkDeploymentEnvironments(actor("deployer", {"production", "staging"}), d, kFleet).ok());
  EXPECT_TRUE(checkDeploymentEnvironments(actor("approver", {"production"}), d, kFleet, 1).ok());
  Status s = checkDeploymentEnvironments(actor("approver", {"production"}), d, kFleet, 0);
  EXPECT_TRUE(s.isPermissionDenied());
  EXPECT_NE(s.message().find("staging-eu"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace flotilla::coordinator
