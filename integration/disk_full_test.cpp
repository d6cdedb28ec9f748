// A full disk under the coordinator: its data dir is a small tmpfs the test mounts and fills.
// New deployments are refused with a clear error, the running one holds (nothing is sent that
// is not durable), and once space is freed it carries on; nothing is lost or run twice.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

class DiskFullTest : public FleetTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(FleetTest::SetUp());
    ASSERT_EQ(::geteuid(), 0u) << "mounting a tmpfs needs root";
    data_ = dir() + "/data";
    ASSERT_EQ(::mkdir(data_.c_str(), 0755), 0) << std::strerror(errno);
    ASSERT_EQ(::mount("tmpfs", data_.c_str(), "tmpfs", 0, "size=64m"), 0) << std::strerror(errno);
    mounted_ = true;
  }
  void TearDown() override {
    FleetTest::TearDown();  // the coordinator stops first
    if (mounted_) ::umount2(data_.c_str(), MNT_DETACH);
  }

  std::string plan(const std::string& version) {
    const ScriptPlan plan{.version = version,
                          .build = logStep("build") + "; sleep 2",
                          .apply = logStep("apply"),
                          .timeout = "",
                          .waves = {waveOf("one", {"staging-eu"})}};
    return writePlan(version + ".yaml", plan.yaml());
  }
  // Leaves less than the coordinator's 16 MiB reserve free.
  void fill() {
    std::ofstream out(data_ + "/fill", std::ios::binary);
    std::string mib(1 << 20, '\0');
    for (int i = 0; i < 56 && out; ++i)
      out.write(mib.data(), static_cast<std::streamsize>(mib.size()));
  }
  void unfill() { ASSERT_EQ(std::remove((data_ + "/fill").c_str()), 0); }

  std::string data_;
  bool mounted_ = false;
};

TEST_F(DiskFullTest, RefusesNewDeploymentsHoldsRunningOnesAndRecovers) {
  CoordinatorOptions options;
  options.extra_args = {"--min-free-space-mb", "16"};
  ASSERT_NO_FATAL_FAILURE(startCoordinator(options));
  ASSERT_NO_FATAL_FAILURE(startAgents({usualAgent("staging-eu")}));

  const std::string first = submit(plan("1.0.0"));
  ASSERT_FALSE(first.empty());
  ASSERT_TRUE(waitUntil("the build to start", [&] { return hasStepLog(first, "staging-eu"); }));
  fill();

  // The build ends while the disk is full: its result cannot be made durable, so apply is not
  // sent. A new plan is refused with the reason; /healthz says why.
  ASSERT_TRUE(waitUntil("the store to report the full disk",
                        [&] { return get("/healthz").status == 503; }));
  EXPECT_NE(get("/healthz").body.find("MiB free"), std::string::npos) << get("/healthz").body;
  CommandResult refused = cli({"submit", plan("2.0.0")});
  EXPECT_NE(refused.exit_code, 0) << refused.out;
  EXPECT_NE(refused.err.find("the store cannot write"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("MiB free"), std::string::npos) << refused.err;
  EXPECT_TRUE(holdsFor(
      "no step after build while the disk is full",
      [&] { return stepLog(first, "staging-eu") == std::vector<std::string>{"build"}; },
      std::chrono::seconds(3)));

  unfill();
  ASSERT_TRUE(waitForState(first, "succeeded")) << deployment(first).dump(2);
  EXPECT_EQ(stepLog(first, "staging-eu"), (std::vector<std::string>{"build", "apply", "verify"}));
  EXPECT_EQ(get("/healthz").status, 200);
  // New work is accepted again, and nothing was lost across the episode.
  const std::string second = submit(plan("2.0.0"));
  ASSERT_FALSE(second.empty());
  ASSERT_TRUE(waitForState(second, "succeeded")) << deployment(second).dump(2);
  const std::string listed = get("/api/v1/deployments").body;
  EXPECT_NE(listed.find("\"" + first + "\""), std::string::npos) << listed;
  EXPECT_NE(listed.find("\"" + second + "\""), std::string::npos) << listed;
}

}  // namespace
}  // namespace flotilla::integration
