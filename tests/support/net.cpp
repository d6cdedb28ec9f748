// Test support, ports on 127.0.0.1.
#include "tests/support/net.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <sstream>

#include "tests/support/files.hpp"

namespace flotilla::support {

namespace {

constexpr int kLowestPort = 20000;
constexpr int kHighestPort = 60000;

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// A TCP socket bound to `address`; -1 when it cannot be bound.
int boundSocket(sockaddr_in address) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool portBindable(int port) {
  const int fd = boundSocket(loopback(port));
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// The lower end of the kernel's ephemeral port range (32768 when unreadable).
int ephemeralLow() {
  std::istringstream in(readFile("/proc/sys/net/ipv4/ip_local_port_range"));
  int low = 0;
  if (in >> low && low > 0) return low;
  return 32768;
}

}  // namespace

int freePort() {
  const int fd = boundSocket(loopback(0));
  if (fd < 0) return 0;
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

int freePortBlock(int count) {
  const int top = std::min(kHighestPort, ephemeralLow()) - count;
  if (top <= kLowestPort) return 0;
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> base_of(kLowestPort, top);
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int base = base_of(random);
    bool all = true;
    for (int p = base; p < base + count && all; ++p) all = portBindable(p);
    if (all) return base;
  }
  return 0;
}

int connectFrom(const std::string& source, int port) {
  sockaddr_in from = loopback(0);
  if (::inet_pton(AF_INET, source.c_str(), &from.sin_addr) != 1) return -1;
  const int fd = boundSocket(from);
  if (fd < 0) return -1;
  sockaddr_in to = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool tcpConnects(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr = loopback(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

}  // namespace flotilla::support
