// Tests for a deployment's events (coordinator/http_events.cpp): the JSON page after a sequence
// number, and the SSE stream.
#include <gtest/gtest.h>

#include <string>

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
  const uint64_t last = all.back()["seq"].get<uint64_t>();
  nlohmann::json after =
      body(get("/api/v1/deployments/" + id + "/events?after=" + std::to_string(last)))["events"];
  EXPECT_EQ(after, nlohmann::json::array());
  // A malformed `after` reads from the start.
  EXPECT_EQ(body(get("/api/v1/deployments/" + id + "/events?after=x"))["events"], all);
}

TEST_F(HttpEvents, UnknownOrMalformedIdsAreRefused) {
  auto missing = get("/api/v1/deployments/checkout-7/events");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto bad = get("/api/v1/deployments/Checkout/events");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

// The stream sends what is there, each event with its id and type, then stays open; the client
// here stops reading after the first event.
TEST_F(HttpEvents, AStreamSendsEventsAsServerSentEvents) {
  const std::string id = submit();
  std::string received;
  auto res =
      client().Get("/api/v1/deployments/" + id + "/events",
                   {{"Authorization", "Bearer " + viewer_}, {"Accept", "text/event-stream"}},
                   [&](const char* data, size_t length) {
                     received.append(data, length);
                     return received.find("\n\n") == std::string::npos;  // stop after one event
                   });
  EXPECT_EQ(received.rfind("id: 1\nevent: deployment.submitted\ndata: {", 0), 0u) << received;
}

}  // namespace
}  // namespace flotilla::coordinator::testing
