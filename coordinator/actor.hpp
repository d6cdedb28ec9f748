// Who asked for something: what the HTTP layer hands the engine with every operator action,
// so that events, approvals and the audit trail can say who did it.
#pragma once

#include <string>
#include <vector>

namespace flotilla::coordinator {

struct Actor {
  std::string name;               // the API token's name ("alice", "ci"), or "coordinator"
  std::string role;               // viewer | deployer | approver | admin ("" for the system)
  std::vector<std::string> envs;  // environments the token is limited to (empty = all)
  std::string client;             // the peer's address ("127.0.0.1:53422"), "" if none

  // The coordinator itself (timers, agent-loss rollbacks, restarts).
  static Actor system() { return Actor{"coordinator", "", {}, ""}; }
};

}  // namespace flotilla::coordinator
