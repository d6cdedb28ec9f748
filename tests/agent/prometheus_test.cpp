// The Prometheus source's pure parts: query templates and the query API's answers. The real
// server is exercised end to end in integration/canary_test.cpp (PrometheusCanaryTest).
#include "agent/prometheus.hpp"

#include <gtest/gtest.h>

namespace flotilla::agent {
namespace {

using namespace std::chrono_literals;

TEST(Prometheus, InstancesPatternListsTheSetsTargets) {
  EXPECT_EQ(instancesPattern({18001, 18002}), "127.0.0.1:18001|127.0.0.1:18002");
  EXPECT_EQ(instancesPattern({}), "");
}

TEST(Prometheus, ExpandQueryFillsEveryPlaceholder) {
  EXPECT_EQ(expandQuery("sum(rate(x{instance=~\"{instances}\",v=\"{version}\"}[{window}])) + "
                        "sum(y{instance=~\"{instances}\"})",
                        "127.0.0.1:1", 2500ms, "2.0.0"),
            "sum(rate(x{instance=~\"127.0.0.1:1\",v=\"2.0.0\"}[2500ms])) + "
            "sum(y{instance=~\"127.0.0.1:1\"})");
}

TEST(Prometheus, VectorWithOneSampleIsItsValue) {
  auto v = parseQueryResponse(
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"0.25"]}]}})");
  ASSERT_TRUE(v.ok()) << v.status().toString();
  ASSERT_TRUE(v->has_value());
  EXPECT_DOUBLE_EQ(**v, 0.25);
}

TEST(Prometheus, ScalarIsItsValue) {
  auto v = parseQueryResponse(
      R"({"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}})");
  ASSERT_TRUE(v.ok()) << v.status().toString();
  EXPECT_EQ(v->value_or(-1), 3.0);
}

TEST(Prometheus, EmptyVectorAndNaNAreNoData) {
  auto empty =
      parseQueryResponse(R"({"status":"success","data":{"resultType":"vector","result":[]}})");
  ASSERT_TRUE(empty.ok()) << empty.status().toString();
  EXPECT_FALSE(empty->has_value());
  // 0/0 (a set without traffic) is NaN.
  auto nan = parseQueryResponse(
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}})");
  ASSERT_TRUE(nan.ok()) << nan.status().toString();
  EXPECT_FALSE(nan->has_value());
}

TEST(Prometheus, BadAnswersAreErrorsThatSayWhy) {
  struct Case {
    const char* body;
    const char* says;
  };
  const Case cases[] = {
      {"not json", "not a JSON object"},
      {"[]", "not a JSON object"},
      {R"({"data":{}})", "no status"},
      {R"({"status":"error","errorType":"bad_data","error":"parse error at char 5"})",
       "query failed: parse error at char 5"},
      {R"({"status":"success"})", "no data"},
      {R"({"status":"success","data":{"resultType":"matrix","result":[]}})",
       "must aggregate to one value"},
      {R"({"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}})",
       "2 series"},
      {R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}})",
       "has no value"},
      {R"({"status":"success","data":{"resultType":"vector","result":[{"value":[1,2]}]}})",
       "not [time, \"value\"]"},
      {R"({"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1x"]}]}})",
       "not a number"},
  };
  for (const Case& c : cases) {
    auto v = parseQueryResponse(c.body);
    ASSERT_FALSE(v.ok()) << c.body;
    EXPECT_NE(v.status().message().find(c.says), std::string::npos)
        << c.body << " -> " << v.status().toString();
  }
}

TEST(Prometheus, UnreachableServerIsUnavailable) {
  // Port 1 on loopback: nothing listens there.
  PrometheusSource source{"http://127.0.0.1:1", "a{i=~\"{instances}\"}", "b", "c"};
  auto stats = queryWindow(source, {18001}, "2.0.0", 2s, 500ms);
  ASSERT_FALSE(stats.ok());
  EXPECT_TRUE(stats.status().isUnavailable()) << stats.status().toString();
  EXPECT_NE(stats.status().message().find("request_rate query"), std::string::npos)
      << stats.status().toString();
}

}  // namespace
}  // namespace flotilla::agent
