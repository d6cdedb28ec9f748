// The dashboard's server side through a real coordinator: its files under a strict CSP, a token
// traded for a session cookie (HttpOnly, SameSite=Strict) that survives a restart, the CSRF
// header every change from a session needs, logout, a revoked token ending its sessions, and
// the views a page of a large deployment reads (`?view=summary`, a page of a wave's clusters,
// `Last-Event-ID`). The browser itself: integration/browser/.
#include "tests/support/fleet.hpp"
#include "tests/support/plans.hpp"

namespace flotilla::integration {
namespace {

using namespace support;

const ScriptPlan kPlan{
    .version = "2.0.0",
    .verify = "",
    .waves = {waveOf("staging", {"staging-eu"}),
              waveSelecting("production", "environment: production", {"approval: required"})}};

class DashboardSessionTest : public FleetTest {
 protected:
  struct Session {
    std::string cookie;  // "flotilla_session=..."
    std::string csrf;
    json body;
  };

  // Logs in with `token`; the answer's status in `status`.
  Session login(const std::string& token, long* status = nullptr) {
    HttpResponse r = request("POST", "/api/v1/session", "", json{{"token", token}}.dump());
    if (status != nullptr) *status = r.status;
    Session s;
    auto cookie = r.headers.find("set-cookie");
    if (r.status != 200 || cookie == r.headers.end()) return s;
    s.cookie = cookie->second.substr(0, cookie->second.find(';'));
    s.body = r.parsed();
    s.csrf = s.body.value("csrf", "");
    set_cookie_ = cookie->second;
    return s;
  }

  HttpResponse asSession(const Session& s, const std::string& method, const std::string& path,
                         const std::string& body = "", bool with_csrf = true) {
    std::map<std::string, std::string> headers = {{"Cookie", s.cookie}};
    if (with_csrf) headers["X-Flotilla-CSRF"] = s.csrf;
    return request(method, path, "", body, headers);
  }

  std::string set_cookie_;  // the last login's Set-Cookie header
};

TEST_F(DashboardSessionTest, FilesComeWithAStrictContentSecurityPolicy) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  HttpResponse page = request("GET", "/", "");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_NE(page.body.find("<html"), std::string::npos);
  auto csp = page.headers.find("content-security-policy");
  ASSERT_NE(csp, page.headers.end());
  EXPECT_NE(csp->second.find("default-src 'none'"), std::string::npos) << csp->second;
  EXPECT_NE(csp->second.find("script-src 'self'"), std::string::npos) << csp->second;
  EXPECT_NE(csp->second.find("frame-ancestors 'none'"), std::string::npos) << csp->second;
  EXPECT_EQ(page.headers.find("x-content-type-options")->second, "nosniff");
  HttpResponse script = request("GET", "/ui/app.js", "");
  EXPECT_EQ(script.status, 200);
  EXPECT_NE(script.headers.find("content-type")->second.find("text/javascript"), std::string::npos);
  // Nothing outside web/, and no other Host name (DNS rebinding).
  EXPECT_EQ(request("GET", "/ui/nothing.js", "").status, 404);
  // A path that leaves /ui/FILE is no dashboard file: like any unknown path, it asks for a token.
  EXPECT_EQ(request("GET", "/ui/..%2fmain.cpp", "").status, 401);
  EXPECT_EQ(request("GET", "/", "", "", {{"Host", "evil.example:80"}}).status, 421);
}

TEST_F(DashboardSessionTest, ATokenBecomesASessionThatSurvivesARestartUntilLogout) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string viewer = createToken("wall-screen", "viewer");
  long status = 0;
  Session s = login(viewer, &status);
  ASSERT_EQ(status, 200);
  ASSERT_FALSE(s.cookie.empty());
  EXPECT_NE(set_cookie_.find("HttpOnly"), std::string::npos) << set_cookie_;
  EXPECT_NE(set_cookie_.find("SameSite=Strict"), std::string::npos) << set_cookie_;
  EXPECT_EQ(s.body["name"], "wall-screen");
  EXPECT_EQ(s.body["role"], "viewer");
  EXPECT_EQ(s.csrf.size(), 64u);
  // The session reads like its token, and changes nothing the token could not.
  EXPECT_EQ(asSession(s, "GET", "/api/v1/deployments").status, 200);
  EXPECT_EQ(asSession(s, "GET", "/api/v1/session").parsed()["name"], "wall-screen");
  EXPECT_EQ(asSession(s, "POST", "/api/v1/freeze", R"({"reason": "x"})").status, 403);

  // Bad tokens and bad bodies: refused, and never a cookie.
  login("flt_" + std::string(64, '0'), &status);
  EXPECT_EQ(status, 401);
  EXPECT_EQ(request("POST", "/api/v1/session", "", "token=" + viewer,
                    {{"Content-Type", "application/x-www-form-urlencoded"}})
                .status,
            415);
  EXPECT_EQ(request("POST", "/api/v1/session", "", R"({"token": 5})").status, 400);
  EXPECT_EQ(request("POST", "/api/v1/session", "", R"({"token": "x", "role": "admin"})").status,
            400);
  // A cookie that is not a session of ours.
  for (const std::string& cookie : {std::string("flotilla_session=") + std::string(64, 'a'),
                                    std::string("flotilla_session=<x>"),
                                    std::string("flotilla_session=") + std::string(5000, 'a')}) {
    EXPECT_EQ(request("GET", "/api/v1/deployments", "", "", {{"Cookie", cookie}}).status, 401)
        << cookie.substr(0, 40);
  }

  // Kept across a coordinator restart (the store has it).
  ASSERT_NO_FATAL_FAILURE(killCoordinator());
  ASSERT_NO_FATAL_FAILURE(restartCoordinator());
  EXPECT_EQ(asSession(s, "GET", "/api/v1/session").status, 200);

  // Logout needs the CSRF header too, then ends the session on the server.
  EXPECT_EQ(asSession(s, "DELETE", "/api/v1/session", "{}", /*with_csrf=*/false).status, 403);
  HttpResponse out = asSession(s, "DELETE", "/api/v1/session", "{}");
  EXPECT_EQ(out.status, 200) << out.body;
  EXPECT_NE(out.headers.find("set-cookie")->second.find("Max-Age=0"), std::string::npos);
  EXPECT_EQ(asSession(s, "GET", "/api/v1/session").status, 401);
  EXPECT_EQ(asSession(s, "GET", "/api/v1/deployments").status, 401);
  // Both logins are in the audit trail.
  const std::string audit = get("/api/v1/audit").body;
  EXPECT_NE(audit.find("POST /api/v1/session"), std::string::npos);
  EXPECT_NE(audit.find("DELETE /api/v1/session"), std::string::npos);
}

TEST_F(DashboardSessionTest, ChangesNeedTheCsrfHeaderAndARevokedTokenEndsItsSessions) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string approver = createToken("oncall", "approver");
  const std::string id = submitPlan("plan.yaml", kPlan.yaml());
  ASSERT_TRUE(waitForState(id, "awaiting_approval"));
  Session s = login(approver);
  ASSERT_FALSE(s.cookie.empty());
  const std::string approve = "/api/v1/deployments/" + id + "/approve";
  const std::string body = R"({"wave": "production"})";
  // Without the header, with a wrong one, or with two: refused, nothing approved.
  EXPECT_EQ(asSession(s, "POST", approve, body, false).status, 403);
  EXPECT_EQ(request("POST", approve, "", body,
                    {{"Cookie", s.cookie}, {"X-Flotilla-CSRF", std::string(64, '0')}})
                .status,
            403);
  EXPECT_EQ(stateOf(id), "awaiting_approval");
  // The page's own request, as the approver; its answer is the summary view the page reads.
  HttpResponse ok = asSession(s, "POST", approve + "?view=summary", body);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_FALSE(ok.parsed().contains("plan")) << ok.body;
  EXPECT_TRUE(ok.parsed()["waves"][0].contains("clusters_total")) << ok.body;
  ASSERT_TRUE(waitForState(id, "succeeded"));
  EXPECT_EQ(deployment(id)["waves"][1]["approvals"][0]["by"], "oncall");

  // A revoked token's sessions end with it, and a new token by the same name does not revive
  // them.
  EXPECT_EQ(del("/api/v1/tokens/oncall").status, 200);
  EXPECT_EQ(asSession(s, "GET", "/api/v1/deployments").status, 401);
  createToken("oncall", "approver");
  EXPECT_EQ(asSession(s, "GET", "/api/v1/deployments").status, 401);
}

TEST_F(DashboardSessionTest, SummaryViewClusterPagesAndLastEventId) {
  ASSERT_NO_FATAL_FAILURE(startFleet());
  const std::string id = submitPlan("plan.yaml", kPlan.yaml());
  ASSERT_TRUE(waitForState(id, "awaiting_approval"));
  json summary = get("/api/v1/deployments/" + id + "?view=summary").parsed();
  ASSERT_TRUE(summary.is_object());
  EXPECT_FALSE(summary.contains("plan"));
  EXPECT_GT(summary["last_event_seq"].get<int>(), 0);
  const json& staging = summary["waves"][0];
  EXPECT_FALSE(staging.contains("clusters"));
  EXPECT_EQ(staging["clusters_total"], 1);
  EXPECT_EQ(staging["counts"]["succeeded"], 1);
  EXPECT_TRUE(staging["attention"].empty());
  EXPECT_EQ(summary["waves"][1]["planned_clusters_total"], 3);
  EXPECT_EQ(get("/api/v1/deployments/" + id + "?view=everything").status, 400);

  // The list says who submitted it and where it goes.
  json list = get("/api/v1/deployments").parsed();
  EXPECT_EQ(list["deployments"][0]["submitted_by"], "ci");
  EXPECT_EQ(list["deployments"][0]["environments"], json::array());

  EXPECT_EQ(post("/api/v1/deployments/" + id + "/approve", R"({"wave": "production"})").status,
            200);
  ASSERT_TRUE(waitForState(id, "succeeded"));
  const std::string clusters = "/api/v1/deployments/" + id + "/clusters";
  json page = get(clusters + "?wave=production&offset=1&limit=1").parsed();
  EXPECT_EQ(page["total"], 3);
  ASSERT_EQ(page["clusters"].size(), 1u);
  EXPECT_EQ(page["clusters"][0]["state"], "succeeded");
  EXPECT_EQ(get(clusters + "?wave=production&state=failed").parsed()["total"], 0);
  EXPECT_EQ(get(clusters + "?wave=production&limit=0").status, 400);
  EXPECT_EQ(get(clusters + "?wave=production&limit=501").status, 400);
  EXPECT_EQ(get(clusters + "?wave=production&offset=-1").status, 400);
  EXPECT_EQ(get(clusters + "?wave=production&state=bogus").status, 400);
  EXPECT_EQ(get(clusters + "?wave=nowhere").status, 404);
  EXPECT_EQ(get(clusters).status, 400);

  // A browser reconnecting says which event it saw last: the listing starts after it.
  json all = events(id);
  ASSERT_GT(all.size(), 3u);
  const int last = all[all.size() - 2]["seq"].get<int>();
  HttpResponse after = request("GET", "/api/v1/deployments/" + id + "/events", adminToken(), "",
                               {{"Last-Event-ID", std::to_string(last)}});
  ASSERT_EQ(after.status, 200);
  ASSERT_EQ(after.parsed()["events"].size(), 1u) << after.body;
  EXPECT_EQ(after.parsed()["events"][0]["seq"], all.back()["seq"]);
}

}  // namespace
}  // namespace flotilla::integration
