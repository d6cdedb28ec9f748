// agent/process/service_record.cpp: a service's record survives a write and a read whole, and a
// damaged one is Corruption, never a crash.
#include "agent/process/service_record.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/support/files.hpp"

namespace flotilla::agent {
namespace {

namespace fs = std::filesystem;

class ServiceRecordTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(temp_.path().empty()); }
  support::TempDir temp_{"service-record"};
  const fs::path dir_ = temp_.path();
};

ServiceRecord rollingRecord() {
  ServiceRecord rec;
  rec.service = "checkout";
  rec.deployment = "d-9";
  rec.previous_version = "1.0.0";
  rec.traffic = TrafficSpec{"/run/haproxy/a.sock", "checkout"};
  rec.stable =
      ReplicaSet{"1.0.0", 50, {{101, 5001, 18000, "srv1", 125}, {102, 5002, 18001, "", 0}}};
  rec.candidate = ReplicaSet{"2.0.0", 50, {{103, 5003, 18002, "srv2", 125}}};
  rec.rolling = RollState{"1.0.0", "2.0.0", 2, 1, 1, 125, false};
  return rec;
}

TEST_F(ServiceRecordTest, WhatIsWrittenIsReadBackWhole) {
  const fs::path path = dir_ / "checkout.json";
  ASSERT_TRUE(writeRecordFile(path, rollingRecord()).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto read = readRecordFile(path);
  ASSERT_TRUE(read.ok()) << read.status().toString();
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ(toJson(**read), toJson(rollingRecord()));
  const ServiceRecord& r = **read;
  ASSERT_TRUE(r.stable && r.candidate && r.rolling && r.traffic);
  EXPECT_EQ(r.stable->replicas[0].slot, "srv1");
  EXPECT_EQ(r.stable->replicas[1].slot, "");  // not attached: null in the file
  EXPECT_EQ(r.rolling->weight, 125);
  EXPECT_FALSE(r.rolling->done);
}

TEST_F(ServiceRecordTest, NoFileIsNoRecord) {
  auto read = readRecordFile(dir_ / "none.json");
  ASSERT_TRUE(read.ok());
  EXPECT_FALSE(read->has_value());
}

TEST_F(ServiceRecordTest, ADamagedFileIsCorruptionNamingIt) {
  for (const char* text : {"{not json", R"({"service": 7})", R"({"service": "x", "stable": {}})",
                           R"({"service": "x", "stable": {"version": "1", "replicas": [{}]}})"}) {
    const fs::path path = dir_ / "bad.json";
    std::ofstream(path) << text;
    auto read = readRecordFile(path);
    ASSERT_FALSE(read.ok()) << text;
    EXPECT_TRUE(read.status().isCorruption()) << read.status().toString();
    EXPECT_NE(read.status().message().find("bad.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace flotilla::agent
