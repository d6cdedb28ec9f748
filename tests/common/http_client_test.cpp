// The common HTTP client against real cpp-httplib servers on loopback: headers, methods, the
// reused connection, streamed bodies, deadlines, size limit, proxies, a CA file for HTTPS, and
// the one-shot httpGet/httpPost the agent and the coordinator use.
#include "common/http_client.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_server.hpp"

namespace flotilla::common {
namespace {

using namespace std::chrono_literals;
using support::LocalHttpServer;

// A header of `req`, "(none)" when it was not sent.
std::string headerOf(const httplib::Request& req, const std::string& name) {
  return req.has_header(name) ? req.get_header_value(name) : "(none)";
}

HttpReply replyOf(const HttpResult& result) {
  if (const auto* failure = std::get_if<HttpFailure>(&result)) {
    ADD_FAILURE() << "no answer: " << failure->reason << " (" << failure->detail << ")";
    return {};
  }
  return std::get<HttpReply>(result);
}

HttpFailure failureOf(const HttpResult& result) {
  if (const auto* reply = std::get_if<HttpReply>(&result)) {
    ADD_FAILURE() << "answered HTTP " << reply->status << ": " << reply->body;
    return {};
  }
  return std::get<HttpFailure>(result);
}

class HttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& s = local_.server();
    s.Get("/echo", [this](const httplib::Request& req, httplib::Response& res) {
      last_.set(req);
      res.set_content(R"({"ok":true})", "application/json");
    });
    s.Post("/echo", [this](const httplib::Request& req, httplib::Response& res) {
      last_.set(req);
      res.status = 201;
      res.set_content("posted " + req.body, "text/plain");
    });
    s.Delete("/echo", [this](const httplib::Request& req, httplib::Response& res) {
      last_.set(req);
      res.status = 204;
    });
    // The client's port: the same on every request of one connection.
    s.Get("/port", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(std::to_string(req.remote_port), "text/plain");
    });
    s.Get("/missing", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content(R"({"error":"no such thing"})", "application/json");
    });
    s.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(600ms);
      res.set_content("late", "text/plain");
    });
    s.Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(4096, 'x'), "text/plain");
    });
    // Three chunks, then the end of the stream.
    s.Get("/events", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider(
          "text/event-stream; charset=utf-8", [](size_t, httplib::DataSink& sink) {
            for (const char* chunk : {"data: one\n\n", "data: t", "wo\n\n"}) {
              sink.write(chunk, std::strlen(chunk));
            }
            sink.done();
            return true;
          });
    });
    // A chunk every 10 ms until the client goes away.
    s.Get("/endless", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
        std::this_thread::sleep_for(10ms);
        return sink.is_writable() && sink.write("data: x\n\n", 9);
      });
    });
    s.Get("/busy", [](const httplib::Request&, httplib::Response& res) {
      res.status = 503;
      res.set_content(R"({"error":"every event stream is taken"})", "application/json");
    });
    local_.start();
  }

  std::string url(const std::string& path) const { return local_.url() + path; }

  HttpRequest get(const std::string& path) const {
    HttpRequest request;
    request.url = url(path);
    return request;
  }

  LocalHttpServer local_;
  support::LastRequest last_;
};

TEST_F(HttpClientTest, AnAnswerIsAReplyWithStatusContentTypeAndBody) {
  HttpClient client;
  HttpReply ok = replyOf(client.send(get("/echo")));
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.content_type, "application/json");
  EXPECT_EQ(ok.body, R"({"ok":true})");
  // Any status is an answer; what it means is the caller's business.
  HttpReply missing = replyOf(client.send(get("/missing")));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, R"({"error":"no such thing"})");
}

TEST_F(HttpClientTest, SendsTheTokenAcceptAndUserAgentOnlyWhenSet) {
  HttpClient plain;
  ASSERT_EQ(replyOf(plain.send(get("/echo"))).status, 200);
  EXPECT_EQ(headerOf(last_.get(), "Authorization"), "(none)");
  EXPECT_EQ(headerOf(last_.get(), "Accept"), "*/*");  // libcurl's own
  EXPECT_EQ(headerOf(last_.get(), "User-Agent"), "(none)");

  HttpClientOptions options;
  options.bearer_token = "flt_secret";
  options.user_agent = "flotilla-test";
  HttpClient client(options);
  HttpRequest request = get("/echo");
  request.accept = "application/json";
  ASSERT_EQ(replyOf(client.send(request)).status, 200);
  EXPECT_EQ(headerOf(last_.get(), "Authorization"), "Bearer flt_secret");
  EXPECT_EQ(headerOf(last_.get(), "Accept"), "application/json");
  EXPECT_EQ(headerOf(last_.get(), "User-Agent"), "flotilla-test");
}

TEST_F(HttpClientTest, PostAndDeleteCarryTheirContentType) {
  HttpClient client;
  HttpRequest post = get("/echo");
  post.method = HttpRequest::Method::kPost;
  post.body = "service: shop\n";
  post.content_type = "application/yaml";
  HttpReply posted = replyOf(client.send(post));
  EXPECT_EQ(posted.status, 201);
  EXPECT_EQ(posted.body, "posted service: shop\n");
  EXPECT_EQ(last_.get().method, "POST");
  EXPECT_EQ(headerOf(last_.get(), "Content-Type"), "application/yaml");

  // An empty body still says what it is: the coordinator takes changes only as JSON or YAML.
  post.body.clear();
  post.content_type = "application/json";
  EXPECT_EQ(replyOf(client.send(post)).status, 201);
  EXPECT_EQ(last_.get().body, "");
  EXPECT_EQ(headerOf(last_.get(), "Content-Type"), "application/json");

  HttpRequest del = get("/echo");
  del.method = HttpRequest::Method::kDelete;
  del.content_type = "application/json";
  EXPECT_EQ(replyOf(client.send(del)).status, 204);
  EXPECT_EQ(last_.get().method, "DELETE");
  EXPECT_EQ(headerOf(last_.get(), "Content-Type"), "application/json");
}

TEST_F(HttpClientTest, OneClientKeepsItsConnection) {
  HttpClient client;
  const std::string first = replyOf(client.send(get("/port"))).body;
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(replyOf(client.send(get("/port"))).body, first);
  EXPECT_EQ(replyOf(client.send(get("/port"))).body, first);
  // Another client is another connection.
  HttpClient other;
  EXPECT_NE(replyOf(other.send(get("/port"))).body, first);
}

TEST_F(HttpClientTest, AStreamHandsOverItsBodyAsItArrives) {
  HttpClient client;
  std::string streamed;
  HttpReply reply =
      replyOf(client.stream(get("/events"), "TEXT/event-stream", [&](std::string_view chunk) {
        streamed.append(chunk);
        return true;
      }));
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.content_type, "text/event-stream; charset=utf-8");
  EXPECT_EQ(reply.body, "");
  EXPECT_EQ(streamed, "data: one\n\ndata: two\n\n");
}

TEST_F(HttpClientTest, AStreamStopsWhenTheHandlerSaysSo) {
  HttpClient client;
  int chunks = 0;
  const auto start = std::chrono::steady_clock::now();
  HttpReply reply = replyOf(client.stream(get("/endless"), "text/event-stream",
                                          [&](std::string_view) { return ++chunks < 3; }));
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(chunks, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  // The handle is still good for the next request.
  EXPECT_EQ(replyOf(client.send(get("/echo"))).status, 200);
}

TEST_F(HttpClientTest, AnErrorAnswerToAStreamIsReturnedWhole) {
  HttpClient client;
  bool called = false;
  auto handler = [&](std::string_view) {
    called = true;
    return true;
  };
  HttpReply busy = replyOf(client.stream(get("/busy"), "text/event-stream", handler));
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(busy.body, R"({"error":"every event stream is taken"})");
  // A server that ignores Accept and answers JSON: the body is the caller's to read.
  HttpReply json = replyOf(client.stream(get("/echo"), "text/event-stream", handler));
  EXPECT_EQ(json.status, 200);
  EXPECT_EQ(json.body, R"({"ok":true})");
  EXPECT_FALSE(called);
}

TEST_F(HttpClientTest, NoAnswerInTimeIsATimeoutNamingTheDeadline) {
  HttpClientOptions options;
  options.timeout = 150ms;
  HttpClient client(options);
  HttpFailure failure = failureOf(client.send(get("/slow")));
  EXPECT_EQ(failure.kind, HttpFailure::Kind::kTimeout);
  EXPECT_EQ(failure.reason, "no answer within 150ms");
  EXPECT_FALSE(failure.detail.empty());
}

TEST_F(HttpClientTest, NothingListeningIsConnectionRefused) {
  const std::string dead = url("/echo");
  local_.stop();
  HttpClient client;
  HttpRequest request;
  request.url = dead;
  HttpFailure failure = failureOf(client.send(request));
  EXPECT_EQ(failure.kind, HttpFailure::Kind::kConnectionRefused);
  EXPECT_EQ(failure.reason, "connection refused");

  request.url = "ftp://127.0.0.1/";
  failure = failureOf(client.send(request));
  EXPECT_EQ(failure.reason, "not a valid http:// or https:// URL");
}

TEST_F(HttpClientTest, ABodyOverTheLimitIsRefused) {
  HttpClientOptions options;
  options.max_body_bytes = 1000;
  HttpClient client(options);
  HttpFailure failure = failureOf(client.send(get("/big")));
  EXPECT_EQ(failure.kind, HttpFailure::Kind::kTooLarge);
  EXPECT_EQ(failure.reason, "the answer is over 1000 bytes");
  EXPECT_EQ(replyOf(client.send(get("/echo"))).status, 200);
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

TEST_F(HttpClientTest, ProxiesFromTheEnvironmentApplyOnlyWhenAskedFor) {
  LocalHttpServer proxy;
  std::atomic<int> proxied{0};
  proxy.server().set_pre_routing_handler([&](const httplib::Request&, httplib::Response& res) {
    ++proxied;
    res.status = 502;
    return httplib::Server::HandlerResponse::Handled;
  });
  proxy.start();
  ScopedEnv env("http_proxy", proxy.url());

  HttpClient direct;
  EXPECT_EQ(replyOf(direct.send(get("/echo"))).status, 200);
  EXPECT_EQ(proxied, 0);

  HttpClientOptions options;
  options.proxy_from_environment = true;
  HttpClient via_proxy(options);
  EXPECT_EQ(replyOf(via_proxy.send(get("/echo"))).status, 502);
  EXPECT_EQ(proxied, 1);
}

TEST_F(HttpClientTest, OneShotFunctionsKeepTheirContract) {
  auto got = httpGet(url("/echo"), 2s);
  ASSERT_TRUE(got.ok()) << got.status().toString();
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, R"({"ok":true})");

  auto posted = httpPost(url("/echo"), R"({"a":1})", "application/json", 2s);
  ASSERT_TRUE(posted.ok()) << posted.status().toString();
  EXPECT_EQ(posted->status, 201);
  EXPECT_EQ(headerOf(last_.get(), "Content-Type"), "application/json");

  auto late = httpGet(url("/slow"), 100ms);
  ASSERT_FALSE(late.ok());
  EXPECT_TRUE(late.status().isUnavailable());
  EXPECT_EQ(late.status().message().rfind("GET " + url("/slow") + ": ", 0), 0u)
      << late.status().message();
}

TEST(UrlEncode, EscapesAllButUnreservedCharacters) {
  EXPECT_EQ(urlEncode("checkout-3_a.b~c"), "checkout-3_a.b~c");
  EXPECT_EQ(urlEncode("a b/c?d=e&f"), "a%20b%2Fc%3Fd%3De%26f");
  EXPECT_EQ(urlEncode("2026-11-27T01:02:03.000Z"), "2026-11-27T01%3A02%3A03.000Z");
}

// ---- HTTPS ------------------------------------------------------------------------------------

// A CA and a server certificate for 127.0.0.1 signed by it (the openssl command line).
class HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/usr/bin/openssl", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/openssl";
    char tmpl[] = "/tmp/flotilla-https-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    const std::string d = dir_;
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    for (const std::string& command : {
             "printf 'subjectAltName=IP:127.0.0.1\\n' > " + d + "/ext",
             "/usr/bin/openssl req -x509 " + ec + "-keyout " + d + "/ca.key -out " + d +
                 "/ca.pem -days 2 -subj '/CN=flotilla test CA'",
             "/usr/bin/openssl req " + ec + "-keyout " + d + "/server.key -out " + d +
                 "/server.csr -subj /CN=127.0.0.1",
             "/usr/bin/openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.pem -CAkey " +
                 d + "/ca.key -CAcreateserial -out " + d + "/server.pem -days 2 -extfile " + d +
                 "/ext",
         }) {
      ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
    }
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string dir_;
};

TEST_F(HttpsTest, TheCaFileIsTrustedOnlyWhenGiven) {
  LocalHttpServer local(dir_ + "/server.pem", dir_ + "/server.key");
  local.server().Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("secure", "text/plain");
  });
  local.start();
  HttpRequest request;
  request.url = local.url() + "/";

  HttpClient system_store;  // the test's CA is not in it
  HttpFailure failure = failureOf(system_store.send(request));
  EXPECT_NE(failure.reason.find("certificate"), std::string::npos) << failure.reason;

  HttpClientOptions options;
  options.ca_file = dir_ + "/ca.pem";
  HttpClient trusting(options);
  HttpReply reply = replyOf(trusting.send(request));
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "secure");
}

}  // namespace
}  // namespace flotilla::common
