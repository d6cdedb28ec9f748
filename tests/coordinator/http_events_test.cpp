// Tests for a deployment's events (coordinator/http_events.cpp): the JSON page after a sequence
// number, and the SSE stream.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/coordinator/http_api_fixture.hpp"

namespace flotilla::coordinator::testing {
namespace {

using HttpEvents = HttpApiTest;

TEST_F(HttpEvents, AJsonPageAfterASequenceNumber) {
  const std::string id = submit();
  nlohmann::json all = body(get("/api/v1/deployments/" + id + "/events", viewer_))["events"];
  ASSERT_GE(all.size(), 1u);
  EXPECT_EQ(all[0]["type"], "deployment.submitted");
  EXPECT_EQ(all[0]["seq"], 1);
  for (const char* key : {"time", "wave", "cluster", "step", "message"}) {
    EXPECT_TRUE(all[0].contains(key)) << key;
  }
  // Structured data only where an event type has some (cluster.analysis: its figures).
  EXPECT_TRUE(all[0].contains("data") && all[0]["data"].is_null()) << all[0].dump();
  const uint64_t last = all.back()["seq"].get<uint64_t>();
  nlohmann::json after =
      body(get("/api/v1/deployments/" + id + "/events?after=" + std::to_string(last)))["events"];
  EXPECT_EQ(after, nlohmann::json::array());
  // A malformed `after` reads from the start.
  EXPECT_EQ(body(get("/api/v1/deployments/" + id + "/events?after=x"))["events"], all);
}

TEST_F(HttpEvents, FiltersByTypeClusterAndTime) {
  const std::string id = submit();
  const std::string path = "/api/v1/deployments/" + id + "/events";
  nlohmann::json all = body(get(path, viewer_))["events"];
  ASSERT_GE(all.size(), 1u);
  auto types = [&](const std::string& query) {
    std::vector<std::string> out;
    auto res = get(path + "?" + query, viewer_);
    EXPECT_TRUE(res && res->status == 200) << query << ": " << (res ? res->body : "no answer");
    const nlohmann::json page = body(res);  // kept: the loop reads into it
    for (const auto& e : page["events"]) {
      out.push_back(e["type"].get<std::string>());
    }
    return out;
  };
  EXPECT_EQ(types("type=deployment"), types("type=deployment.*"));
  EXPECT_EQ(types("type=deployment.submitted"), std::vector<std::string>{"deployment.submitted"});
  EXPECT_EQ(types("type=deployment.submitted,stage.failed"),
            std::vector<std::string>{"deployment.submitted"});
  EXPECT_TRUE(types("type=stage.failed").empty());
  EXPECT_EQ(types("since=2000-01-01T00:00:00Z").size(), all.size());
  EXPECT_TRUE(types("since=2999-01-01T00:00:00Z").empty());
  // No event of a fresh deployment names a cluster nobody has.
  EXPECT_TRUE(types("cluster=nowhere-1").empty());
}

TEST_F(HttpEvents, BadFiltersAreRefusedWithTheReason) {
  const std::string id = submit();
  const std::string path = "/api/v1/deployments/" + id + "/events?";
  for (const auto& [query, says] : std::vector<std::pair<std::string, std::string>>{
           {"type=bogus", "not an event type pattern"},
           {"type=stage.Failed", "not an event type pattern"},
           {"type=stage.fail*", "not an event type pattern"},
           {"type=a,b,c,d,e,f,g,h,i", "at most 8 patterns"},
           {"type=stage&type=wave", "once"},
           {"cluster=Prod_EU", "not a cluster name"},
           {"since=yesterday", "not an RFC 3339 time"},
           {"since=" + std::string(300, '1'), "longer than 256"}}) {
    auto res = get(path + query, viewer_);
    ASSERT_TRUE(res) << query;
    EXPECT_EQ(res->status, 400) << query;
    EXPECT_NE(body(res)["error"].get<std::string>().find(says), std::string::npos)
        << query << ": " << res->body;
  }
}

TEST_F(HttpEvents, UnknownOrMalformedIdsAreRefused) {
  auto missing = get("/api/v1/deployments/checkout-7/events");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto bad = get("/api/v1/deployments/Checkout/events");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

// The stream asks a browser to reconnect after a second, then sends what is there, each event
// with its id and type, and stays open; the client here stops reading after the first event.
// A browser's EventSource asks for frames without the type line (plain=1), and its reconnect
// says where it stopped (Last-Event-ID).
TEST_F(HttpEvents, AStreamSendsEventsAsServerSentEvents) {
  auto firstFrames = [this](const std::string& path, httplib::Headers headers) {
    std::string received;
    headers.emplace("Accept", "text/event-stream");
    client().Get(path, headers, [&](const char* data, size_t length) {
      received.append(data, length);
      const size_t first = received.find("\n\n");
      return first == std::string::npos || received.find("\n\n", first + 2) == std::string::npos;
    });
    return received;
  };
  const std::string id = submit();
  const httplib::Headers auth = {{"Authorization", "Bearer " + viewer_}};
  const std::string path = "/api/v1/deployments/" + id + "/events";
  std::string received = firstFrames(path, auth);
  EXPECT_EQ(received.rfind("retry: 1000\n\nid: 1\nevent: deployment.submitted\ndata: {", 0), 0u)
      << received;
  received = firstFrames(path + "?plain=1", auth);
  EXPECT_EQ(received.rfind("retry: 1000\n\nid: 1\ndata: {", 0), 0u) << received;
  httplib::Headers resumed = auth;
  resumed.emplace("Last-Event-ID", "1");
  received = firstFrames(path + "?plain=1", resumed);
  EXPECT_EQ(received.rfind("retry: 1000\n\nid: 2\ndata: {", 0), 0u) << received;
}

}  // namespace
}  // namespace flotilla::coordinator::testing
