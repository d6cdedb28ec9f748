// Test support, ports on 127.0.0.1: one free port, a block of them, and whether one answers.
#pragma once

#include <string>

namespace flotilla::support {

// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close); 0 when
// none. For a server that must be told its port (HAProxy's config, a coordinator's flags):
// another process may take it before the server binds, so its start-up retries on a fresh one.
int freePort();

// The first of `count` consecutive TCP ports on 127.0.0.1 that were all free a moment ago,
// from a random base below the kernel's ephemeral range (so that no outgoing connection takes
// one of them meanwhile); 0 when none was found.
int freePortBlock(int count);

// Whether a TCP connection to 127.0.0.1:port is accepted now.
bool tcpConnects(int port);

// A TCP connection to 127.0.0.1:port from `source` (another loopback address, e.g. 127.0.0.7:
// a client the server tells apart by its address); the socket, or -1 when it cannot connect.
int connectFrom(const std::string& source, int port);

}  // namespace flotilla::support
