// A malformed plan is refused with line:column for each problem, and nothing is stored.
#include "tests/support/fleet.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

// Four problems: steps without apply (reported at the steps map, 5:3), a wave name with
// characters names may not have (at the value, 9:11), a misspelt wave field (11:5) and a
// misspelt top-level field (12:1).
constexpr char kBadPlan[] = R"yaml(service: web
version: "1.0"
driver: script
steps:
  build: 'true'
  rollback: 'true'
  timeout: 10s
waves:
  - name: Prod_EU
    clusters: [prod-eu-1]
    approvl: required
rollbak: {scope: wave}
)yaml";

struct Expected {
  int line;
  int column;
  std::string says;  // a part of the message
};

const std::vector<Expected> kProblems = {
    {5, 3, "missing required field \"apply\""},
    {9, 11, "\"Prod_EU\" is not a valid name"},
    {11, 5, "unknown field \"approvl\""},
    {12, 1, "unknown field \"rollbak\""},
};

class BadPlanTest : public FleetTest {
 protected:
  size_t deploymentCount() {
    CommandResult list = cli({"status", "--json"});
    EXPECT_EQ(list.exit_code, 0) << list.err;
    json body = json::parse(list.out, nullptr, false);
    EXPECT_TRUE(body.is_object() && body.contains("deployments")) << list.out;
    return body.is_object() && body.contains("deployments") ? body["deployments"].size() : 999;
  }
};

TEST_F(BadPlanTest, CliPrintsEveryProblemWithPositionAndNothingIsStored) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator());
  ASSERT_EQ(deploymentCount(), 0u);
  const std::string path = writePlan("bad.yaml", kBadPlan);

  CommandResult r = cli({"submit", path});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.exit_code, 1) << "1 means: the coordinator refused the plan";
  EXPECT_EQ(r.out, "") << "no id may be printed for a refused plan";
  std::vector<std::string> lines = linesOf(r.err);
  ASSERT_EQ(lines.size(), kProblems.size()) << r.err;
  for (size_t i = 0; i < kProblems.size(); ++i) {
    const std::string where = path + ":" + std::to_string(kProblems[i].line) + ":" +
                              std::to_string(kProblems[i].column) + ": ";
    EXPECT_EQ(lines[i].rfind(where, 0), 0u) << "expected " << where << "..., got " << lines[i];
    EXPECT_NE(lines[i].find(kProblems[i].says), std::string::npos) << lines[i];
  }
  // The unknown fields come with the nearest known name.
  EXPECT_NE(lines[2].find("did you mean \"approval\"?"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("did you mean \"rollback\"?"), std::string::npos) << lines[3];

  EXPECT_EQ(deploymentCount(), 0u);
  CommandResult table = cli({"status"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("No deployments yet"), std::string::npos) << table.out;
}

TEST_F(BadPlanTest, HttpPostAnswers400WithProblems) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator());
  HttpResponse r =
      post("/api/v1/deployments", replaceAll(kBadPlan, "@DIR@", dir()), "application/yaml");
  EXPECT_EQ(r.status, 400) << r.body << r.error;
  json body = r.parsed();
  ASSERT_TRUE(body.is_object()) << r.body;
  EXPECT_TRUE(body["error"].is_string()) << r.body;
  ASSERT_TRUE(body["problems"].is_array()) << r.body;
  ASSERT_EQ(body["problems"].size(), kProblems.size()) << r.body;
  for (size_t i = 0; i < kProblems.size(); ++i) {
    const json& p = body["problems"][i];
    EXPECT_EQ(p["line"], kProblems[i].line) << p.dump();
    EXPECT_EQ(p["column"], kProblems[i].column) << p.dump();
    ASSERT_TRUE(p["message"].is_string()) << p.dump();
    EXPECT_NE(p["message"].get<std::string>().find(kProblems[i].says), std::string::npos)
        << p.dump();
  }
  json list = get("/api/v1/deployments").parsed();
  ASSERT_TRUE(list.is_object()) << "GET /api/v1/deployments";
  EXPECT_TRUE(list["deployments"].empty()) << list.dump();
}

TEST_F(BadPlanTest, SyntaxErrorIsReportedWithItsPosition) {
  ASSERT_NO_FATAL_FAILURE(startCoordinator());
  // The flow sequence on line 7 is never closed.
  const std::string path = writePlan("broken.yaml", R"yaml(service: web
version: "1.0"
steps:
  apply: 'true'
  rollback: 'true'
waves:
  - {name: one, clusters: [a, b}
)yaml");
  CommandResult r = cli({"submit", path});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  std::vector<std::string> lines = linesOf(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_EQ(lines[0].rfind(path + ":7:", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("syntax error"), std::string::npos) << lines[0];
  json list = get("/api/v1/deployments").parsed();
  ASSERT_TRUE(list.is_object());
  EXPECT_TRUE(list["deployments"].empty()) << list.dump();
}

}  // namespace
}  // namespace flotilla::integration
