// agent/process/replica_process.cpp: whether a recorded replica is still the process we started,
// free ports, log tails.
#include "agent/process/replica_process.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "agent/child_process.hpp"

namespace flotilla::agent {
namespace {

TEST(ReplicaProcessTest, OnlyTheProcessWithTheRecordedStartTimeIsAlive) {
  auto ticks = processStartTicks(::getpid());
  ASSERT_TRUE(ticks.ok());
  EXPECT_TRUE(alive(Replica{::getpid(), *ticks, 0, "", 0}));
  EXPECT_FALSE(alive(Replica{::getpid(), *ticks + 1, 0, "", 0})) << "a reused pid";
  EXPECT_FALSE(alive(Replica{1, 0, 0, "", 0}));
  EXPECT_EQ(procState(::getpid()), 'R');
  EXPECT_FALSE(procState(0x7ffffff0));
}

TEST(ReplicaProcessTest, AListeningPortIsNotFree) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  EXPECT_FALSE(portFree(port));
  ::close(fd);
  EXPECT_TRUE(portFree(port));
  EXPECT_EQ(endpoint(port), "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(url(8080, "/health"), "http://127.0.0.1:8080/health");
}

TEST(ReplicaProcessTest, LastLinesKeepsTheEndCutShort) {
  char path[] = "/tmp/flotilla-replica-log-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    std::ofstream out(path);
    out << "one\ntwo\nthree\n" << std::string(400, 'x') << "\n";
  }
  EXPECT_EQ(lastLines(path, 2), "three | " + std::string(300, 'x') + "...");
  EXPECT_EQ(lastLines("/nonexistent/log", 3), "");
  ::unlink(path);
}

}  // namespace
}  // namespace flotilla::agent
