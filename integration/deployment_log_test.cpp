// The deployment log against real processes: a release submitted with its changes and release
// notes, a production wave approved by a second identity, a failed verification that rolls it
// back, a note added after it ended; `flotilla log --json` holds all of it, across a restart,
// and `--markdown` and `status` show it. A viewer cannot note.
#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

class DeploymentLogTest : public FleetTest {
 protected:
  // `flotilla ARGS` with another identity's token.
  CommandResult cliAs(const std::string& token, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {FLOTILLA_CLI_BIN, "--server", serverUrl()};
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(argv, dir() + "/scratch", 60s, {{"FLOTILLA_TOKEN", token}});
  }

  ScriptPlan plan(const std::string& version, std::string verify) {
    return ScriptPlan{
        .service = "shop",
        .version = version,
        .verify = std::move(verify),
        .waves = {waveOf("staging", {"staging-eu"}),
                  waveSelecting("production", "environment: production", {"approval: required"})}};
  }

  json logJson(const std::vector<std::string>& filters) {
    std::vector<std::string> args = {"log", "--json"};
    args.insert(args.end(), filters.begin(), filters.end());
    CommandResult r = cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    json body = json::parse(r.out, nullptr, false);
    EXPECT_TRUE(body.is_object()) << r.out;
    return body.is_object() && body.contains("entries") ? body["entries"] : json::array();
  }
};

TEST_F(DeploymentLogTest, TheLogHoldsWhoWhatApprovalsChangesIssuesRollbackAndNotes) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string bob = createToken("bob", "approver");
  const std::string vera = createToken("vera", "viewer");
  ASSERT_FALSE(bob.empty() || vera.empty());

  // 1.0.0 everywhere first: what 2.0.0 comes from.
  const std::string first = submitPlan("v1.yaml", plan("1.0.0", "").yaml());
  ASSERT_TRUE(waitForState(first, "awaiting_approval"));
  ASSERT_EQ(cliAs(bob, {"approve", first}).exit_code, 0);
  ASSERT_EQ(cli({"wait", first, "--timeout", "60s"}).exit_code, 0);

  // 2.0.0 with its release's description; its verification fails on prod-eu-1.
  const std::string changes = dir() + "/CHANGES.md";
  writeFile(changes, "## 2.0.0\n- new tax rules <b>bold</b>\n- ```fence``` in text\n");
  const std::string v2 = writePlan(
      "v2.yaml",
      plan("2.0.0", logStep("verify") + " && test \"$FLOTILLA_CLUSTER\" != prod-eu-1").yaml());
  // Refused before anything is sent: a link that is not http(s), a changelog that is not text.
  CommandResult bad_url =
      cli({"submit", v2, "--changes", changes, "--notes", "javascript:alert(1)"});
  EXPECT_NE(bad_url.exit_code, 0);
  const std::string binary = dir() + "/binary.md";
  writeFile(binary, std::string("\x7f"
                                "ELF\x01\x02",
                                6));
  EXPECT_EQ(cli({"submit", v2, "--changes", binary}).exit_code, 2);
  EXPECT_EQ(logJson({"--service", "shop"}).size(), 1u);

  CommandResult submitted = cli(
      {"submit", v2, "--changes", changes, "--notes", "https://example.com/releases/shop/2.0.0"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err;
  const std::string id = trim(submitted.out);
  ASSERT_TRUE(waitForState(id, "awaiting_approval"));
  CommandResult approved = cliAs(bob, {"approve", id, "production"});
  ASSERT_EQ(approved.exit_code, 0) << approved.out << approved.err;
  EXPECT_EQ(cli({"wait", id, "--timeout", "60s"}).exit_code, 1);
  ASSERT_TRUE(waitForState(id, "rolled_back"));

  // Later: the lesson learned. A viewer may read the log but not write it.
  CommandResult refused = cliAs(vera, {"note", id, "viewers cannot"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  CommandResult noted =
      cli({"note", id, "prod-eu-1 had the old tax table; check it in staging first"});
  ASSERT_EQ(noted.exit_code, 0) << noted.out << noted.err;
  EXPECT_NE(noted.out.find("note added (1 notes)"), std::string::npos) << noted.out;

  // Durable: the log after a restart of the coordinator holds everything.
  restartCoordinator();
  const json entries = logJson({"--service", "shop"});
  ASSERT_EQ(entries.size(), 2u) << entries.dump(2);
  const json& e = entries[0];
  EXPECT_EQ(e["id"], id);
  EXPECT_EQ(entries[1]["id"], first);
  EXPECT_EQ(e["service"], "shop");
  EXPECT_EQ(e["version"], "2.0.0");
  EXPECT_EQ(e["previous_versions"], json({"1.0.0"}));
  EXPECT_EQ(e["environments"], json({"production", "staging"}));
  EXPECT_EQ(e["state"], "rolled_back");
  EXPECT_TRUE(e["created_at"].is_string());
  EXPECT_TRUE(e["finished_at"].is_string());
  EXPECT_EQ(e["submitted_by"], "ci");
  ASSERT_EQ(e["approvals"].size(), 1u) << e.dump(2);
  EXPECT_EQ(e["approvals"][0]["wave"], "production");
  EXPECT_EQ(e["approvals"][0]["by"], "bob");
  EXPECT_EQ(e["changes"], "## 2.0.0\n- new tax rules <b>bold</b>\n- ```fence``` in text\n");
  EXPECT_EQ(e["release_notes_url"], "https://example.com/releases/shop/2.0.0");
  bool verify_failed = false;
  for (const auto& issue : e["issues"]) {
    verify_failed = verify_failed || (issue["type"] == "stage.failed" &&
                                      issue["cluster"] == "prod-eu-1" && issue["step"] == "verify");
  }
  EXPECT_TRUE(verify_failed) << e["issues"].dump(2);
  EXPECT_TRUE(e["rolled_back"].get<bool>());
  EXPECT_NE(e["rollback_cause"].get<std::string>().find("prod-eu-1"), std::string::npos)
      << e["rollback_cause"];
  ASSERT_EQ(e["notes"].size(), 1u);
  EXPECT_EQ(e["notes"][0]["text"], "prod-eu-1 had the old tax table; check it in staging first");
  EXPECT_EQ(e["notes"][0]["by"], "admin");
  EXPECT_FALSE(entries[1]["rolled_back"].get<bool>());
  EXPECT_EQ(entries[1]["notes"], json::array());

  // Filters: environment, time.
  EXPECT_EQ(logJson({"--env", "production", "--since", "1h"}).size(), 2u);
  EXPECT_EQ(logJson({"--env", "development"}).size(), 0u);
  EXPECT_EQ(cli({"log", "--since", "yesterday"}).exit_code, 1);

  // A post-mortem in Markdown; the text view; status shows the release and the note.
  CommandResult md = cli({"log", "--markdown", "--service", "shop"});
  ASSERT_EQ(md.exit_code, 0) << md.err;
  EXPECT_NE(md.out.find("## " + replaceAll(id, "-", "\\-") + ": shop 1\\.0\\.0 \\-&gt; 2\\.0\\.0"),
            std::string::npos)
      << md.out;
  EXPECT_NE(md.out.find("````text\n## 2.0.0\n"), std::string::npos) << md.out;
  EXPECT_NE(md.out.find("- wave production by bob"), std::string::npos) << md.out;
  CommandResult text = cli({"log", "--service", "shop", "--limit", "1"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("  rolled back:   "), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find(first + "  "), std::string::npos) << text.out;
  CommandResult status = cli({"status", id});
  EXPECT_NE(status.out.find("Release notes: https://example.com/releases/shop/2.0.0"),
            std::string::npos)
      << status.out;
  EXPECT_NE(status.out.find("Note by admin at "), std::string::npos) << status.out;
}

}  // namespace
}  // namespace flotilla::integration
