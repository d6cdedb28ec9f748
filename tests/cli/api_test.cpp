// The CLI's API layer against a real HTTP server on loopback: what it sends, and the message,
// exit code and retry verdict of every way a request can go wrong.
#include "cli/api.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/http_server.hpp"

namespace flotilla::cli {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

void answer(httplib::Response& res, int status, const std::string& body,
            const std::string& type = "application/json") {
  res.status = status;
  res.set_content(body, type);
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& s = local_.server();
    s.Get("/api/v1/deployments/d-1", [this](const httplib::Request& req, httplib::Response& res) {
      last_.set(req);
      answer(res, 200, R"({"state":"running","id":"d-1"})");
    });
    s.Get("/api/v1/deployments/nosuch", [](const httplib::Request&, httplib::Response& res) {
      answer(res, 404, R"({"error":"deployment nosuch not found"})");
    });
    s.Get("/elsewhere", [](const httplib::Request&, httplib::Response& res) {
      answer(res, 404, "<html>Not Found</html>", "text/html");
    });
    s.Get("/secret", [](const httplib::Request&, httplib::Response& res) {
      answer(res, 401, R"({"error":"a token is required"})");
    });
    s.Get("/limited", [](const httplib::Request&, httplib::Response& res) {
      answer(res, 429,
             R"({"error":"too many requests with token ci (limit 10/s): retry after 1s"})");
    });
    s.Get("/restarting",
          [](const httplib::Request&, httplib::Response& res) { answer(res, 503, ""); });
    s.Get("/bug", [](const httplib::Request&, httplib::Response& res) {
      answer(res, 500, R"({"error":"internal error"})");
    });
    s.Get("/garbled",
          [](const httplib::Request&, httplib::Response& res) { answer(res, 200, "[1, 2"); });
    s.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(500ms);
      answer(res, 200, "{}");
    });
    s.Post("/api/v1/tokens", [this](const httplib::Request& req, httplib::Response& res) {
      last_.set(req);
      answer(res, 201, R"({"token":"flt_x"})");
    });
    // httplib routes on the decoded path: the escaped name arrives whole.
    s.Delete("/api/v1/tokens/a b/c", [this](const httplib::Request& req, httplib::Response& res) {
      last_.set(req);
      answer(res, 200, "{}");
    });
    s.Get("/api/v1/deployments/d-1/events", [](const httplib::Request& req,
                                               httplib::Response& res) {
      if (req.get_header_value("Accept") != "text/event-stream") {
        return answer(res, 200, R"({"events":[]})");
      }
      res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
        const std::string events = "data: {\"seq\":1}\n\ndata: {\"seq\":2}\n\n";
        sink.write(events.data(), events.size());
        sink.done();
        return true;
      });
    });
    local_.start();
  }

  // The CliError `call` throws (a test failure when it throws none).
  template <typename F>
  CliError errorOf(F call) {
    try {
      call();
    } catch (const CliError& error) {
      return error;
    }
    ADD_FAILURE() << "no CliError";
    return CliError("", -1);
  }

  support::LocalHttpServer local_;
  support::LastRequest last_;
};

TEST_F(ApiTest, GetSendsTheTokenAndReadsTheObject) {
  Api api(local_.url() + "/", "flt_token", "");
  EXPECT_EQ(api.server(), local_.url()) << "a trailing slash is dropped";
  json body = api.get("/api/v1/deployments/d-1", "d-1");
  EXPECT_EQ(body["state"], "running");
  httplib::Request req = last_.get();
  EXPECT_EQ(req.get_header_value("Authorization"), "Bearer flt_token");
  EXPECT_EQ(req.get_header_value("Accept"), "application/json");
  EXPECT_EQ(req.get_header_value("User-Agent"), "flotilla-cli");
  EXPECT_FALSE(req.has_header("Content-Type"));
}

TEST_F(ApiTest, WithoutATokenNoAuthorizationIsSent) {
  Api api(local_.url(), "", "");
  api.get("/api/v1/deployments/d-1");
  EXPECT_FALSE(last_.get().has_header("Authorization"));
}

TEST_F(ApiTest, PostAndDeleteSendJson) {
  Api api(local_.url(), "", "");
  json created = api.post("/api/v1/tokens", R"({"name":"ci"})", "");
  EXPECT_EQ(created["token"], "flt_x");
  EXPECT_EQ(last_.get().body, R"({"name":"ci"})");
  EXPECT_EQ(last_.get().get_header_value("Content-Type"), "application/json");
  api.del("/api/v1/tokens/" + common::urlEncode("a b/c"));
  EXPECT_EQ(last_.get().method, "DELETE");
  EXPECT_EQ(last_.get().get_header_value("Content-Type"), "application/json");
}

TEST_F(ApiTest, GetPrettyKeepsTheServersKeyOrder) {
  Api api(local_.url(), "", "");
  EXPECT_EQ(api.getPretty("/api/v1/deployments/d-1"),
            "{\n  \"state\": \"running\",\n  \"id\": \"d-1\"\n}");
}

TEST_F(ApiTest, UnknownDeploymentIsNamed) {
  Api api(local_.url(), "", "");
  CliError error = errorOf([&] { api.get("/api/v1/deployments/nosuch", "nosuch"); });
  EXPECT_STREQ(error.what(), "no deployment named nosuch");
  EXPECT_EQ(error.exitCode(), kExitFailed);
  EXPECT_FALSE(error.transient());
  // Without an id to name, the coordinator's own message.
  error = errorOf([&] { api.get("/api/v1/deployments/nosuch"); });
  EXPECT_STREQ(error.what(), "deployment nosuch not found");
}

TEST_F(ApiTest, AServerThatIsNoCoordinatorIsSuspected) {
  Api api(local_.url(), "", "");
  CliError error = errorOf([&] { api.get("/elsewhere"); });
  EXPECT_EQ(std::string(error.what()),
            "the server at " + local_.url() +
                " answered HTTP 404 to GET /elsewhere; is --server pointing at a flotilla "
                "coordinator?");
  EXPECT_EQ(error.exitCode(), kExitFailed);
}

TEST_F(ApiTest, MissingTokenSaysWhereOneComesFrom) {
  Api api(local_.url(), "", "");
  CliError error = errorOf([&] { api.get("/secret"); });
  EXPECT_EQ(std::string(error.what()),
            "a token is required. Set FLOTILLA_TOKEN or --token-file FILE (an admin creates "
            "tokens with 'flotilla tokens create'; the first one comes from "
            "'flotilla-coordinator bootstrap-admin')");
  EXPECT_EQ(error.exitCode(), kExitFailed);
}

TEST_F(ApiTest, RateLimitsAndRestartsAreWorthRetryingServerBugsAreNot) {
  Api api(local_.url(), "", "");
  CliError limited = errorOf([&] { api.get("/limited"); });
  EXPECT_EQ(limited.transientReason(), "HTTP 429");
  EXPECT_EQ(limited.exitCode(), kExitFailed);
  EXPECT_NE(std::string(limited.what()).find("retry after 1s"), std::string::npos);
  CliError restarting = errorOf([&] { api.get("/restarting"); });
  EXPECT_EQ(restarting.transientReason(), "HTTP 503");
  CliError bug = errorOf([&] { api.get("/bug"); });
  EXPECT_FALSE(bug.transient());
  EXPECT_STREQ(bug.what(), "internal error");
}

TEST_F(ApiTest, AnUnreadableAnswerIsTrouble) {
  Api api(local_.url(), "", "");
  CliError error = errorOf([&] { api.get("/garbled"); });
  EXPECT_EQ(std::string(error.what()), "the coordinator at " + local_.url() +
                                           " sent an answer this flotilla (" FLOTILLA_VERSION
                                           ") cannot read");
  EXPECT_EQ(error.exitCode(), kExitTrouble);
}

TEST_F(ApiTest, NoAnswerInTimeIsTroubleWorthRetrying) {
  ApiTimeouts timeouts;
  timeouts.request = 150ms;
  Api api(local_.url(), "", "", timeouts);
  CliError error = errorOf([&] { api.get("/slow"); });
  EXPECT_EQ(std::string(error.what()),
            "the coordinator at " + local_.url() + " did not answer (no answer within 150ms)");
  EXPECT_EQ(error.exitCode(), kExitTrouble);
  EXPECT_TRUE(error.transient());
}

TEST_F(ApiTest, NothingListeningAsksWhetherTheCoordinatorRuns) {
  const std::string url = local_.url();
  local_.stop();
  Api api(url, "", "");
  CliError error = errorOf([&] { api.get("/api/v1/deployments"); });
  EXPECT_EQ(std::string(error.what()),
            "cannot reach the coordinator at " + url +
                " (connection refused); is flotilla-coordinator running? Set --server or "
                "FLOTILLA_SERVER.");
  EXPECT_EQ(error.exitCode(), kExitTrouble);
  EXPECT_EQ(error.transientReason(), "connection refused");
}

TEST_F(ApiTest, RawPostReturnsAnyAnswer) {
  Api api(local_.url(), "", "");
  common::HttpResult result = api.rawPost("/api/v1/tokens", "name: ci\n", "application/yaml");
  ASSERT_TRUE(std::holds_alternative<common::HttpReply>(result));
  EXPECT_EQ(std::get<common::HttpReply>(result).status, 201);
  EXPECT_EQ(last_.get().get_header_value("Content-Type"), "application/yaml");
}

TEST_F(ApiTest, StreamCallsTheHandlerPerEvent) {
  Api api(local_.url(), "", "");
  std::vector<std::string> data;
  common::HttpResult result =
      api.stream("/api/v1/deployments/d-1/events", [&](const common::SseEvent& event) {
        data.push_back(event.data);
        return true;
      });
  ASSERT_TRUE(std::holds_alternative<common::HttpReply>(result));
  EXPECT_EQ(std::get<common::HttpReply>(result).status, 200);
  EXPECT_EQ(data, (std::vector<std::string>{R"({"seq":1})", R"({"seq":2})"}));
}

TEST(ApiPaths, IdsAreEscaped) {
  EXPECT_EQ(deploymentPath("shop-3"), "/api/v1/deployments/shop-3");
  EXPECT_EQ(deploymentPath("a/b"), "/api/v1/deployments/a%2Fb");
  EXPECT_EQ(eventsPath("shop-3", 0), "/api/v1/deployments/shop-3/events");
  EXPECT_EQ(eventsPath("shop-3", 12), "/api/v1/deployments/shop-3/events?after=12");
}

}  // namespace
}  // namespace flotilla::cli
