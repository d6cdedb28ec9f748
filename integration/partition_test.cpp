// Partitions: one cluster's agent runs in a network namespace of the test's own, reached over a
// veth pair; the test cuts the link mid-step and restores it later. The plan's on_agent_lost and
// max_unavailable_clusters decide what the rollout does meanwhile; once the link is back the
// cluster converges to the fleet's decision, and the step logs show that nothing ran twice.
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <sstream>

#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// Each step appends its name to @DIR@/<cluster>.log (one file a cluster, for every deployment).
std::string logged(const std::string& step) {
  return "echo " + step + " >> @DIR@/$FLOTILLA_CLUSTER.log";
}

// `ip ...`; false (and a test failure naming it) when it fails.
bool ip(const std::string& args) {
  const std::string command = "ip " + args + " 2>&1";
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << command;
  return rc == 0;
}

// A network namespace with a veth pair to the test's own namespace: 10.231.N.1 on the host side,
// 10.231.N.2 inside. Removed (links and namespace) on destruction.
class Netns {
 public:
  static std::unique_ptr<Netns> create() {
    const int n = static_cast<int>(::getpid() % 250) + 1;  // tests run in parallel processes
    std::unique_ptr<Netns> ns(new Netns(n));
    ns->created_ = ip("netns add " + ns->name_) &&
                   ip("link add " + ns->host_if_ + " type veth peer name " + ns->inner_if_) &&
                   ip("link set " + ns->inner_if_ + " netns " + ns->name_) &&
                   ip("addr add " + ns->hostAddress() + "/30 dev " + ns->host_if_) &&
                   ip("link set " + ns->host_if_ + " up") &&
                   ip("netns exec " + ns->name_ + " ip addr add " + ns->innerAddress() +
                      "/30 dev " + ns->inner_if_) &&
                   ip("netns exec " + ns->name_ + " ip link set " + ns->inner_if_ + " up") &&
                   ip("netns exec " + ns->name_ + " ip link set lo up");
    if (!ns->created_) return nullptr;
    return ns;
  }
  ~Netns() {
    std::system(("ip link del " + host_if_ + " >/dev/null 2>&1").c_str());
    std::system(("ip netns del " + name_ + " >/dev/null 2>&1").c_str());
  }

  std::string hostAddress() const { return "10.231." + std::to_string(n_) + ".1"; }
  std::string innerAddress() const { return "10.231." + std::to_string(n_) + ".2"; }
  std::vector<std::string> prefix() const { return {"/usr/sbin/ip", "netns", "exec", name_}; }
  // Packets between the namespaces are dropped (no reset reaches either side), as on a cut
  // cable; restore() brings the link back.
  void cut() { ip("link set " + host_if_ + " down"); }
  void restore() { ip("link set " + host_if_ + " up"); }

 private:
  explicit Netns(int n)
      : n_(n),
        name_("flt-part-" + std::to_string(::getpid())),
        host_if_("flth" + std::to_string(::getpid())),
        inner_if_("fltn" + std::to_string(::getpid())) {}
  int n_;
  std::string name_;
  std::string host_if_;
  std::string inner_if_;
  bool created_ = false;
};

class PartitionTest : public FleetTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(FleetTest::SetUp());
    ASSERT_EQ(::geteuid(), 0u) << "network namespaces need root";
    netns_ = Netns::create();
    ASSERT_NE(netns_, nullptr);
    CoordinatorOptions options;
    options.agent_lost_after = "1500ms";
    options.agents_host = netns_->hostAddress();
    ASSERT_NO_FATAL_FAILURE(startCoordinator(options));
    ASSERT_NO_FATAL_FAILURE(startAgent("near-1", {}));
    ASSERT_NO_FATAL_FAILURE(startAgent("near-2", {}));
    AgentLaunch cut;
    cut.prefix = netns_->prefix();
    ASSERT_NO_FATAL_FAILURE(startAgent("cut-1", {}, cut));
    ASSERT_NO_FATAL_FAILURE(waitForAgents({"near-1", "near-2", "cut-1"}));
  }
  void TearDown() override {
    // Agents first (by PID, in the harness), then the namespace they ran in.
    FleetTest::TearDown();
    netns_.reset();
  }

  // `policy` (top-level plan lines); the lost cluster's apply lasts `apply_seconds`, long
  // enough for the cut to land in it.
  std::string submitWith(const std::string& policy, int apply_seconds) {
    const ScriptPlan plan{.version = "2.0.0",
                          .driver_line = true,
                          .build = logged("build"),
                          .apply = logged("apply-start") +
                                   "; test $FLOTILLA_CLUSTER != cut-1 || sleep " +
                                   std::to_string(apply_seconds) + "; " + logged("apply"),
                          .verify = logged("verify"),
                          .rollback = logged("rollback"),
                          .timeout = "60s",
                          .policy = policy,
                          .waves = {waveOf("one", {"near-1", "cut-1"}), waveOf("two", {"near-2"})}};
    return submitPlan("plan.yaml", plan.yaml());
  }
  std::vector<std::string> stepsOf(const std::string& cluster) {
    std::vector<std::string> out;
    std::istringstream in(readFile(dir() + "/" + cluster + ".log"));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  // Waits until cut-1's apply has started, then cuts its link.
  void cutDuringApply() {
    ASSERT_TRUE(waitUntil("cut-1's apply to start", [&] {
      return readFile(dir() + "/cut-1.log").find("apply-start") != std::string::npos;
    }));
    netns_->cut();
  }

  std::unique_ptr<Netns> netns_;
};

using Steps = std::vector<std::string>;

// Default policy (rollback, nothing may be lost): the fleet rolls back; cut-1 cannot, so the
// deployment is failed until its link is back; then cut-1's apply (still running: it takes 30 s)
// is aborted and cut-1 rolls back by itself.
TEST_F(PartitionTest, LostClusterRollsTheFleetBackAndConvergesWhenBack) {
  const std::string id = submitWith("", 30);
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(cutDuringApply());
  ASSERT_TRUE(waitUntil("the fleet to roll back without cut-1", [&] {
    return stateOf(id) == "failed";
  })) << deployment(id).dump(2);
  EXPECT_EQ(stepsOf("near-1"), (Steps{"build", "apply-start", "apply", "verify", "rollback"}));
  EXPECT_TRUE(stepsOf("near-2").empty()) << "wave two was never reached";
  const json ev = events(id);
  EXPECT_GE(findEvent(ev, "agent.lost", "", "cut-1"), 0) << ev.dump(1);

  netns_->restore();
  ASSERT_TRUE(waitUntil(
      "cut-1 to come back and roll back", [&] { return stateOf(id) == "rolled_back"; },
      std::chrono::seconds(60)))
      << deployment(id).dump(2);
  // Its apply started once and was stopped, then its rollback ran once.
  EXPECT_EQ(stepsOf("cut-1"), (Steps{"build", "apply-start", "rollback"}));
  EXPECT_EQ(stepsOf("near-1"), (Steps{"build", "apply-start", "apply", "verify", "rollback"}));
  EXPECT_TRUE(stepsOf("near-2").empty());
  EXPECT_GE(findEvent(events(id), "agent.returned", "", "cut-1"), 0);
}

// One cluster may be lost: the rollout waits for cut-1 (near-1 goes on meanwhile), and once the
// link is back cut-1's apply result arrives and the rollout finishes; every step ran once.
TEST_F(PartitionTest, LostClusterWithinTheBudgetIsWaitedFor) {
  const std::string id = submitWith("max_unavailable_clusters: 1\n", 4);
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(cutDuringApply());
  ASSERT_TRUE(waitUntil("cut-1 to be lost", [&] {
    return findEvent(events(id), "agent.lost", "", "cut-1") >= 0;
  })) << events(id).dump(1);
  ASSERT_TRUE(waitUntil("near-1 to finish", [&] {
    return stepsOf("near-1") == Steps{"build", "apply-start", "apply", "verify"};
  }));
  EXPECT_EQ(stateOf(id), "running");
  EXPECT_TRUE(stepsOf("near-2").empty()) << "wave two must wait for cut-1";

  netns_->restore();
  CommandResult wait = cli({"wait", id, "--timeout", "60s"});
  EXPECT_EQ(wait.exit_code, 0) << wait.out << wait.err << deployment(id).dump(2);
  EXPECT_EQ(stepsOf("cut-1"), (Steps{"build", "apply-start", "apply", "verify"}));
  EXPECT_EQ(stepsOf("near-1"), (Steps{"build", "apply-start", "apply", "verify"}));
  EXPECT_EQ(stepsOf("near-2"), (Steps{"build", "apply-start", "apply", "verify"}));
}

}  // namespace
}  // namespace flotilla::integration
