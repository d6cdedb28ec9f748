// The event-stream parser: events split anywhere across chunks, the format's field rules.
#include "common/sse.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace flotilla::common {
namespace {

std::vector<SseEvent> parseInChunks(const std::string& text, size_t chunk) {
  SseParser parser;
  std::vector<SseEvent> events;
  const SseHandler collect = [&](const SseEvent& event) {
    events.push_back(event);
    return true;
  };
  for (size_t at = 0; at < text.size(); at += chunk) {
    EXPECT_TRUE(parser.feed(std::string_view(text).substr(at, chunk), collect));
  }
  return events;
}

TEST(SseParser, EventsAreTheSameWhereverTheChunksSplit) {
  const std::string stream =
      ": keep-alive\n"
      "id: 1\nevent: stage.started\ndata: {\"seq\":1}\n\n"
      "data: first line\r\ndata: second line\r\n\r\n"
      "id: 3\ndata:no space\n\n";
  for (size_t chunk : {1u, 2u, 7u, 1000u}) {
    SCOPED_TRACE(chunk);
    std::vector<SseEvent> events = parseInChunks(stream, chunk);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].id, "1");
    EXPECT_EQ(events[0].type, "stage.started");
    EXPECT_EQ(events[0].data, "{\"seq\":1}");
    EXPECT_EQ(events[1].id, "1") << "the last id persists";
    EXPECT_EQ(events[1].type, "message") << "no event: field";
    EXPECT_EQ(events[1].data, "first line\nsecond line");
    EXPECT_EQ(events[2].id, "3");
    EXPECT_EQ(events[2].data, "no space");
  }
}

TEST(SseParser, NoDataNoEventAndUnknownFieldsAreIgnored) {
  std::vector<SseEvent> events =
      parseInChunks("event: lonely\n\nretry: 100\nfoo: bar\ndata: x\n\ndata: unfinished\n", 5);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, "message") << "an event without data leaves no type behind";
  EXPECT_EQ(events[0].data, "x");
}

TEST(SseParser, TheHandlerCanStopTheStream) {
  SseParser parser;
  int seen = 0;
  EXPECT_FALSE(parser.feed("data: 1\n\ndata: 2\n\ndata: 3\n\n", [&](const SseEvent&) {
    ++seen;
    return seen < 2;
  }));
  EXPECT_EQ(seen, 2);
}

}  // namespace
}  // namespace flotilla::common
