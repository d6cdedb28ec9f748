// Tests for the agent's durable stage records (agent/stage_record.cpp): round trips, restarts,
// the id checks that keep network input out of file names, and damaged state directories.
#include "agent/stage_record.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/support/files.hpp"

namespace flotilla::agent {
namespace {

namespace fs = std::filesystem;

StageRecord record(const std::string& deployment, const std::string& stage, uint32_t attempt,
                   int64_t started_ms) {
  StageRecord r;
  r.key = StageKey{deployment, stage, attempt};
  r.state = RecordState::kStarted;
  r.started_ms = started_ms;
  return r;
}

StageRecord finished(StageRecord r, Outcome outcome, int exit_code, const std::string& message,
                     int64_t finished_ms) {
  r.state = RecordState::kFinished;
  r.outcome = outcome;
  r.exit_code = exit_code;
  r.message = message;
  r.finished_ms = finished_ms;
  return r;
}

void expectSameRecord(const StageRecord& got, const StageRecord& want) {
  EXPECT_EQ(got.key.deployment, want.key.deployment);
  EXPECT_EQ(got.key.stage, want.key.stage);
  EXPECT_EQ(got.key.attempt, want.key.attempt);
  EXPECT_EQ(got.state, want.state) << want.key.toString();
  EXPECT_EQ(got.outcome, want.outcome) << want.key.toString();
  EXPECT_EQ(got.exit_code, want.exit_code) << want.key.toString();
  EXPECT_EQ(got.message, want.message) << want.key.toString();
  EXPECT_EQ(got.started_ms, want.started_ms) << want.key.toString();
  EXPECT_EQ(got.finished_ms, want.finished_ms) << want.key.toString();
}

std::vector<std::string> keysOf(const std::vector<StageRecord>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.key.toString());
  return out;
}

void writeFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

class StageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  void TearDown() override { store_.reset(); }

  void reopen(const std::string& cluster = "eu-west-1") {
    store_.reset();
    auto opened = StageStore::open(dir_, cluster);
    ASSERT_TRUE(opened.ok()) << opened.status().toString();
    store_ = std::move(opened).value();
  }

  // Every record is fsynced: on tmpfs that costs nothing.
  support::TempDir temp_{"stage-record-test", support::TempDir::Where::kMemory};
  const std::string root_ = temp_.path();
  const std::string dir_ = root_ + "/state";
  std::unique_ptr<StageStore> store_;
};

// ---- Round trips ----------------------------------------------------------------------------

TEST_F(StageStoreTest, PutFindAllRoundTrip) {
  EXPECT_TRUE(store_->all().empty());
  StageRecord apply = record("checkout-7", "eu-west-1/apply", 1, 2000);
  StageRecord build =
      finished(record("checkout-7", "eu-west-1/build", 1, 1000), Outcome::SUCCEEDED, 0, "", 1500);
  StageRecord other = finished(record("payments-3", "eu-west-1/verify", 2, 3000), Outcome::FAILED,
                               3, "verify failed: 2 of 5 pods ready", 3999);
  ASSERT_TRUE(store_->put(apply).ok());
  ASSERT_TRUE(store_->put(build).ok());
  ASSERT_TRUE(store_->put(other).ok());

  auto found = store_->find(apply.key);
  ASSERT_TRUE(found.has_value());
  expectSameRecord(*found, apply);
  found = store_->find(other.key);
  ASSERT_TRUE(found.has_value());
  expectSameRecord(*found, other);

  // Keys differ by any one part.
  EXPECT_FALSE(store_->find({"checkout-7", "eu-west-1/apply", 2}).has_value());
  EXPECT_FALSE(store_->find({"checkout-7", "eu-west-1/verify", 1}).has_value());
  EXPECT_FALSE(store_->find({"checkout-8", "eu-west-1/apply", 1}).has_value());

  // Oldest first, by start time.
  EXPECT_EQ(
      keysOf(store_->all()),
      (std::vector<std::string>{build.key.toString(), apply.key.toString(), other.key.toString()}));
}

TEST_F(StageStoreTest, PutReplacesTheRecordOfTheSameKey) {
  StageRecord started = record("checkout-7", "eu-west-1/apply", 1, 2000);
  ASSERT_TRUE(store_->put(started).ok());
  StageRecord done = finished(started, Outcome::TIMED_OUT, 137, "killed by SIGKILL", 9000);
  ASSERT_TRUE(store_->put(done).ok());
  ASSERT_EQ(store_->all().size(), 1u);
  expectSameRecord(*store_->find(started.key), done);
  reopen();
  ASSERT_EQ(store_->all().size(), 1u);
  expectSameRecord(*store_->find(started.key), done);
}

TEST_F(StageStoreTest, RecordsSurviveReopen) {
  std::vector<StageRecord> records = {
      record("checkout-7", "eu-west-1/build", 1, 100),
      finished(record("checkout-7", "eu-west-1/apply", 1, 200), Outcome::SUCCEEDED, 0, "ok", 250),
      finished(record("checkout-7", "eu-west-1/apply", 2, 300), Outcome::ABORTED, 143,
               "killed by SIGTERM", 350),
      finished(record("checkout-8", "eu-west-1/verify", 1, 400), Outcome::UNKNOWN, 0,
               "agent restarted", 450),
      finished(record("checkout-9", "eu-west-1/rollback", 7, 500), Outcome::REFUSED, -1,
               "stale epoch", 500),
      finished(record("checkout-9", "eu-west-1/apply", 1, 600), Outcome::FAILED, 1,
               "line with \"quotes\", a tab\t and ünïcode", 650),
      finished(record("checkout-9", "eu-west-1/verify", 4294967295u, 700), Outcome::TIMED_OUT, 124,
               "", 701),
  };
  for (const auto& r : records) ASSERT_TRUE(store_->put(r).ok()) << r.key.toString();
  reopen();
  auto all = store_->all();
  ASSERT_EQ(all.size(), records.size());
  for (size_t i = 0; i < records.size(); ++i) expectSameRecord(all[i], records[i]);
  for (const auto& r : records) {
    auto found = store_->find(r.key);
    ASSERT_TRUE(found.has_value()) << r.key.toString();
    expectSameRecord(*found, r);
  }
}

// A build's artifact digest is kept with its record (re-sent after a restart); a damaged one is
// not believed.
TEST_F(StageStoreTest, ABuildsArtifactSurvivesReopenAndAMalformedOneIsDropped) {
  StageRecord build =
      finished(record("checkout-7", "eu-west-1/build", 1, 100), Outcome::SUCCEEDED, 0, "", 150);
  build.artifact = "sha256:" + std::string(64, 'f');
  StageRecord odd =
      finished(record("checkout-8", "eu-west-1/build", 1, 200), Outcome::SUCCEEDED, 0, "", 250);
  odd.artifact = "sha256:not-hex";
  ASSERT_TRUE(store_->put(build).ok());
  ASSERT_TRUE(store_->put(odd).ok());
  reopen();
  EXPECT_EQ(store_->find(build.key)->artifact, build.artifact);
  EXPECT_EQ(store_->find(odd.key)->artifact, "");
}

TEST_F(StageStoreTest, RecordsLiveWhereTheLayoutSays) {
  ASSERT_TRUE(store_->put(record("checkout-7", "eu-west-1/apply", 3, 1)).ok());
  EXPECT_TRUE(fs::is_regular_file(fs::path(dir_) / "agent.json"));
  EXPECT_TRUE(
      fs::is_regular_file(fs::path(dir_) / "stages" / "checkout-7" / "eu-west-1~apply.3.json"));
  // The write leaves no temporary file behind.
  for (const auto& f : fs::recursive_directory_iterator(dir_)) {
    EXPECT_NE(f.path().extension(), ".tmp") << f.path();
  }
}

TEST_F(StageStoreTest, LogPathIsUnderLogsAndItsDirectoryExists) {
  StageKey key{"checkout-7", "eu-west-1/verify", 2};
  fs::path log = store_->logPath(key);
  EXPECT_EQ(log, fs::path(dir_) / "logs" / "checkout-7" / "eu-west-1~verify.2.log");
  EXPECT_TRUE(fs::is_directory(log.parent_path()));
}

// ---- Files at rest: the agent's alone -------------------------------------------------------

unsigned modeOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

TEST_F(StageStoreTest, EverythingWrittenIsOwnerOnlyWhateverTheUmask) {
  mode_t was = ::umask(022);
  store_.reset();
  fs::remove_all(dir_);
  reopen();
  StageKey key{"checkout-7", "eu-west-1/apply", 1};
  ASSERT_TRUE(store_->put(record("checkout-7", "eu-west-1/apply", 1, 1)).ok());
  ASSERT_TRUE(store_->setHighestEpoch(7).ok());
  int fd = store_->openLog(key);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "secret output\n", 14), 14);
  ::close(fd);
  ::umask(was);
  size_t seen = 0;
  EXPECT_EQ(modeOf(dir_), 0700u);
  for (const auto& f : fs::recursive_directory_iterator(dir_)) {
    ++seen;
    EXPECT_EQ(modeOf(f.path()), f.is_directory() ? 0700u : 0600u) << f.path();
  }
  EXPECT_GE(seen, 7u);  // agent.json, stages/, its dir and record, logs/, its dir and log
}

TEST_F(StageStoreTest, OpenTightensAStateDirLeftReadableByOthers) {
  StageKey key{"checkout-7", "eu-west-1/apply", 1};
  ASSERT_TRUE(store_->put(record("checkout-7", "eu-west-1/apply", 1, 1)).ok());
  int fd = store_->openLog(key);
  ASSERT_GE(fd, 0);
  ::close(fd);
  store_.reset();
  // What an older agent left: 0755 directories and 0644 files.
  for (const auto& f : fs::recursive_directory_iterator(dir_)) {
    ::chmod(f.path().c_str(), f.is_directory() ? 0755 : 0644);
  }
  ::chmod(dir_.c_str(), 0755);
  reopen();
  EXPECT_EQ(modeOf(dir_), 0700u);
  for (const auto& f : fs::recursive_directory_iterator(dir_)) {
    EXPECT_EQ(modeOf(f.path()), f.is_directory() ? 0700u : 0600u) << f.path();
  }
  EXPECT_TRUE(store_->find(key).has_value());
}

TEST_F(StageStoreTest, OpenLogRefusesIdsThatAreNotFileNames) {
  EXPECT_EQ(store_->openLog(StageKey{"../../etc", "eu-west-1/apply", 1}), -1);
}

TEST(StageKeyTest, ToStringAndOrdering) {
  EXPECT_EQ((StageKey{"checkout-7", "eu-west-1/apply", 2}).toString(),
            "checkout-7/eu-west-1/apply#2");
  EXPECT_TRUE((StageKey{"a", "c/apply", 9}) < (StageKey{"b", "c/apply", 1}));
  EXPECT_TRUE((StageKey{"a", "c/apply", 9}) < (StageKey{"a", "c/build", 1}));
  EXPECT_TRUE((StageKey{"a", "c/apply", 1}) < (StageKey{"a", "c/apply", 2}));
  EXPECT_FALSE((StageKey{"a", "c/apply", 1}) < (StageKey{"a", "c/apply", 1}));
}

TEST(OutcomeNameTest, EveryOutcomeHasItsOwnName) {
  std::set<std::string> names;
  for (auto o : {Outcome::SUCCEEDED, Outcome::FAILED, Outcome::TIMED_OUT, Outcome::ABORTED,
                 Outcome::UNKNOWN, Outcome::REFUSED}) {
    names.insert(outcomeName(o));
  }
  EXPECT_EQ(names, (std::set<std::string>{"succeeded", "failed", "timed_out", "aborted", "unknown",
                                          "refused"}));
}

// ---- Cluster and epoch ----------------------------------------------------------------------

TEST_F(StageStoreTest, ASecondStoreOnTheSameDirIsRefusedUntilTheFirstCloses) {
  auto second = StageStore::open(dir_, "eu-west-1");
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().isFailedPrecondition()) << second.status().toString();
  EXPECT_NE(second.status().message().find("(pid " + std::to_string(::getpid()) + ")"),
            std::string::npos)
      << second.status().toString();
  reopen();  // the first one closed: free again
  EXPECT_NE(store_, nullptr);
}

TEST_F(StageStoreTest, StateDirOfAnotherClusterIsRefused) {
  ASSERT_TRUE(store_->put(record("checkout-7", "eu-west-1/apply", 1, 1)).ok());
  store_.reset();
  auto other = StageStore::open(dir_, "us-east-1");
  ASSERT_FALSE(other.ok());
  EXPECT_TRUE(other.status().isInvalidArgument()) << other.status().toString();
  // Refusing did not take the directory over.
  reopen("eu-west-1");
  EXPECT_EQ(store_->all().size(), 1u);
}

TEST_F(StageStoreTest, HighestEpochPersistsAndNeverGoesDown) {
  EXPECT_EQ(store_->highestEpoch(), 0u);
  ASSERT_TRUE(store_->setHighestEpoch(5).ok());
  EXPECT_EQ(store_->highestEpoch(), 5u);
  ASSERT_TRUE(store_->setHighestEpoch(3).ok());
  EXPECT_EQ(store_->highestEpoch(), 5u);
  ASSERT_TRUE(store_->setHighestEpoch(5).ok());
  EXPECT_EQ(store_->highestEpoch(), 5u);
  reopen();
  EXPECT_EQ(store_->highestEpoch(), 5u);
  ASSERT_TRUE(store_->setHighestEpoch(2).ok());
  reopen();
  EXPECT_EQ(store_->highestEpoch(), 5u);
  ASSERT_TRUE(store_->setHighestEpoch(UINT64_MAX).ok());
  reopen();
  EXPECT_EQ(store_->highestEpoch(), UINT64_MAX);
}

// ---- Id validation --------------------------------------------------------------------------

TEST(StageIdsTest, ValidDeploymentIds) {
  for (const std::string id : {"a", "0", "checkout-7", "checkout-api-1234", "9lives"}) {
    EXPECT_TRUE(isValidDeploymentId(id)) << id;
  }
  EXPECT_TRUE(isValidDeploymentId(std::string(80, 'a')));
}

TEST(StageIdsTest, InvalidDeploymentIds) {
  const std::vector<std::string> bad = {
      "",
      ".",
      "..",
      "../x",
      "a/../../b",
      "x/apply/../../",
      "a/b",
      "/etc",
      "-a",
      "Checkout-7",
      "CHECKOUT",
      "checkout_7",
      "checkout.7",
      "checkout 7",
      "checkout-7\n",
      "\ncheckout-7",
      "checkout\t7",
      "checkout\x01",
      "checkout\x7f",
      std::string("checkout\0-7", 11),
      "ch\xc3\xa9"
      "ckout",
      std::string(81, 'a'),
      std::string(4096, 'a'),
  };
  for (const auto& id : bad) EXPECT_FALSE(isValidDeploymentId(id)) << "\"" << id << "\"";
}

TEST(StageIdsTest, ValidStageIds) {
  for (const std::string id : {"eu-west-1/build", "eu-west-1/apply", "eu-west-1/verify",
                               "eu-west-1/rollback", "c/apply", "0/verify", "c/deploy", "c/bake",
                               "c/finalize", "c/shift-1", "c/analyze-2", "c/shift-9999"}) {
    EXPECT_TRUE(isValidStageId(id)) << id;
  }
  EXPECT_TRUE(isValidStageId(std::string(63, 'c') + "/apply"));
  // A verification checklist's checks, by name.
  for (const std::string id : {"c/verify-smoke", "c/verify-security_scan", "c/verify-a-b-1"}) {
    EXPECT_TRUE(isValidStageId(id)) << id;
  }
  EXPECT_TRUE(isValidStageId(std::string(63, 'c') + "/verify-" + std::string(63, 's')));
}

TEST(StageIdsTest, InvalidStageIds) {
  const std::vector<std::string> bad = {
      "",
      "/",
      "/apply",
      "eu-west-1",
      "eu-west-1/",
      "eu-west-1/destroy",
      "eu-west-1/shift",
      "eu-west-1/shift-",
      "eu-west-1/shift-12345",
      "eu-west-1/shift-1a",
      "eu-west-1/deploy-1",
      "eu-west-1/Apply",
      "eu-west-1/APPLY",
      "eu-west-1/apply/",
      "eu-west-1/apply/x",
      "eu-west-1//apply",
      "eu-west-1/applyx",
      "eu-west-1/xapply",
      "EU-west-1/apply",
      "-eu/apply",
      "eu_west/apply",
      "../apply",
      "../x/apply",
      "a/../../b",
      "x/apply/../../",
      "x/../apply",
      "..%2fapply",
      "eu/apply\n",
      "eu/apply\r",
      "eu\n/apply",
      "eu/apply ",
      " eu/apply",
      std::string("eu\0/apply", 9),
      std::string("eu/apply\0", 9),
      "eu\x1b"
      "/apply",
      "eu~apply",
      std::string(64, 'c') + "/apply",
      std::string(4096, 'c') + "/apply",
      "c/verify-",
      "c/verify-Smoke",
      "c/verify-a/b",
      "c/verify-..",
      "c/verify-a b",
      "c/verify-" + std::string(64, 's'),
      "c/build-smoke",
  };
  for (const auto& id : bad) EXPECT_FALSE(isValidStageId(id)) << "\"" << id << "\"";
}

TEST_F(StageStoreTest, PutRefusesInvalidIds) {
  const std::vector<StageKey> bad = {
      {"../escape", "eu-west-1/apply", 1},
      {"a/../../b", "eu-west-1/apply", 1},
      {"", "eu-west-1/apply", 1},
      {"Checkout-7", "eu-west-1/apply", 1},
      {"checkout-7", "x/apply/../../", 1},
      {"checkout-7", "../../../escape/apply", 1},
      {"checkout-7", "eu-west-1/destroy", 1},
      {"checkout-7", "", 1},
      {"checkout-7", "eu-west-1/apply\n", 1},
  };
  for (const auto& key : bad) {
    StageRecord r;
    r.key = key;
    common::Status s = store_->put(r);
    EXPECT_TRUE(s.isInvalidArgument()) << key.toString() << ": " << s.toString();
    EXPECT_FALSE(store_->find(key).has_value()) << key.toString();
  }
  EXPECT_TRUE(store_->all().empty());
  // Nothing was written anywhere: not in the state dir, not next to it.
  EXPECT_FALSE(fs::exists(fs::path(root_) / "escape"));
  EXPECT_FALSE(fs::exists(fs::path(dir_) / "escape"));
  size_t files = 0;
  for (const auto& f : fs::recursive_directory_iterator(root_)) files += f.is_regular_file();
  EXPECT_EQ(files, 2u) << "only agent.json and agent.lock";
  reopen();
  EXPECT_TRUE(store_->all().empty());
}

// ---- Damaged state directories --------------------------------------------------------------

TEST_F(StageStoreTest, CorruptRecordFileFailsOpen) {
  ASSERT_TRUE(store_->put(record("checkout-7", "eu-west-1/apply", 1, 1)).ok());
  store_.reset();
  const fs::path file = fs::path(dir_) / "stages" / "checkout-7" / "eu-west-1~apply.1.json";
  for (const std::string content :
       {"", "{", "not json at all", "[]", "null", "{\"deployment\": \"checkout-7\"}",
        R"({"deployment": "checkout-7", "stage": "eu-west-1/apply", "attempt": "one",
            "state": "started", "outcome": "unknown", "exit_code": 0, "message": "",
            "started_ms": 1, "finished_ms": 0})"}) {
    writeFile(file, content);
    auto opened = StageStore::open(dir_, "eu-west-1");
    ASSERT_FALSE(opened.ok()) << "accepted: " << content;
    EXPECT_TRUE(opened.status().isCorruption()) << content << ": " << opened.status().toString();
  }
}

TEST_F(StageStoreTest, RecordWithUnknownStateOrOutcomeFailsOpen) {
  // A damaged record must fail with Corruption, not turn into a finished stage whose stored
  // result the agent would then replay.
  store_.reset();
  const fs::path file = fs::path(dir_) / "stages" / "checkout-7" / "eu-west-1~apply.1.json";
  const std::string bad_state =
      R"({"deployment": "checkout-7", "stage": "eu-west-1/apply", "attempt": 1,
          "state": "stared", "outcome": "unknown", "exit_code": 0, "message": "",
          "started_ms": 1, "finished_ms": 0})";
  const std::string bad_outcome =
      R"({"deployment": "checkout-7", "stage": "eu-west-1/apply", "attempt": 1,
          "state": "finished", "outcome": "succeded", "exit_code": 0, "message": "",
          "started_ms": 1, "finished_ms": 2})";
  for (const std::string& content : {bad_state, bad_outcome}) {
    writeFile(file, content);
    auto opened = StageStore::open(dir_, "eu-west-1");
    EXPECT_FALSE(opened.ok()) << "accepted: " << content;
    if (!opened.ok()) {
      EXPECT_TRUE(opened.status().isCorruption()) << opened.status().toString();
    }
  }
}

TEST_F(StageStoreTest, CorruptAgentFileFailsOpen) {
  store_.reset();
  const fs::path file = fs::path(dir_) / "agent.json";
  for (const std::string content :
       {"", "{", "[]", R"({"cluster": "eu-west-1"})", R"({"highest_epoch": 3})",
        R"({"cluster": 7, "highest_epoch": 3})", R"({"cluster": "eu-west-1", "highest_epoch": -1})",
        R"({"cluster": "eu-west-1", "highest_epoch": "3"})"}) {
    writeFile(file, content);
    auto opened = StageStore::open(dir_, "eu-west-1");
    ASSERT_FALSE(opened.ok()) << "accepted: " << content;
    EXPECT_TRUE(opened.status().isCorruption()) << content << ": " << opened.status().toString();
  }
}

TEST_F(StageStoreTest, LeftoverTmpFilesAreIgnored) {
  StageRecord kept =
      finished(record("checkout-7", "eu-west-1/apply", 1, 1), Outcome::SUCCEEDED, 0, "", 2);
  ASSERT_TRUE(store_->put(kept).ok());
  store_.reset();
  // What a crash between write and rename leaves: half-written temporary files.
  const fs::path stages = fs::path(dir_) / "stages";
  writeFile(stages / "checkout-7" / "eu-west-1~apply.1.json.tmp", "{\"deployment\": \"chec");
  writeFile(stages / "checkout-7" / "eu-west-1~verify.1.json.tmp", "");
  writeFile(stages / "checkout-8" / "eu-west-1~build.1.json.tmp", "garbage");
  writeFile(fs::path(dir_) / "agent.json.tmp", "garbage");
  reopen();
  auto all = store_->all();
  ASSERT_EQ(all.size(), 1u);
  expectSameRecord(all[0], kept);
  // And the next write of the same record replaces its leftover.
  ASSERT_TRUE(store_->put(finished(kept, Outcome::FAILED, 1, "again", 3)).ok());
  EXPECT_FALSE(fs::exists(stages / "checkout-7" / "eu-west-1~apply.1.json.tmp"));
  reopen();
  EXPECT_EQ(store_->find(kept.key)->outcome, Outcome::FAILED);
}

TEST_F(StageStoreTest, OpenInAPathThatIsAFileFails) {
  store_.reset();
  const std::string file = root_ + "/a-file";
  writeFile(file, "hello");
  auto opened = StageStore::open(file, "eu-west-1");
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(opened.status().isIoError()) << opened.status().toString();
}

}  // namespace
}  // namespace flotilla::agent
