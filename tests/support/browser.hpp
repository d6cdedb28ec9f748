// Test support, browser scenarios: one script of integration/browser/ (`node NAME.mjs`, which
// drives Debian's chromium through playwright-core) run as a real child process beside the
// test's coordinator, agents and traffic. The test hands it the coordinator's URL, a token and
// whatever the scenario needs in its environment, follows its "mark: WHAT" lines, tells it
// things by writing files to its work dir, and reads its exit code, output and report.json.
// The script and every process under it (chromium's) are killed by PID when the scenario is
// finished or destroyed, whatever happened.
//
// work_dir/                   the scenario's own dir (FLOTILLA_WORK)
//   report.json               what the script found ({ok, error, ...}), written when it ends
//   <NAME>                    what the test told it (tell), one value a file
// log_path                    the script's stdout and stderr
// kBrowserArtifactsDir/       screenshots kept after the test (FLOTILLA_ARTIFACTS): the build's
//                             test-artifacts/ (a failing scenario leaves <scenario>-failure.png)
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/process.hpp"

namespace flotilla::support {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Where the scenarios' screenshots are kept: <build dir>/test-artifacts.
extern const char* const kBrowserArtifactsDir;

struct BrowserResult {
  int exit_code = -1;  // 0: the scenario passed; 128+signal when it was killed
  std::string output;  // its stdout and stderr
  json report;         // report.json (null when the script wrote none)
};

class BrowserScenario {
 public:
  // Runs `node integration/browser/NAME.mjs` with FLOTILLA_URL=server_url, FLOTILLA_TOKEN=token,
  // FLOTILLA_WORK=work_dir (made here), FLOTILLA_ARTIFACTS and FLOTILLA_CHROMIUM, plus `env`.
  // nullptr (and a test failure naming what is missing, e.g. `scripts/setup` not run) when it
  // cannot start.
  static std::unique_ptr<BrowserScenario> start(const std::string& name,
                                                const std::string& server_url,
                                                const std::string& token,
                                                const std::string& work_dir,
                                                const std::map<std::string, std::string>& env = {});
  ~BrowserScenario();
  BrowserScenario(const BrowserScenario&) = delete;
  BrowserScenario& operator=(const BrowserScenario&) = delete;

  pid_t pid() const { return process_->pid(); }
  bool running() { return process_->running(); }
  // Waits until the script printed "mark: WHAT"; false (a test failure, with the output) when it
  // exited first or `deadline` passed.
  bool waitForMark(const std::string& what, std::chrono::milliseconds deadline = 60s);
  // Writes `value` to work_dir/NAME for the script (lib.mjs told()), atomically.
  void tell(const std::string& name, const std::string& value);
  // Waits for the script to exit (killing it after `deadline`, a test failure), then kills what
  // is left under it; its exit code, output and report.
  BrowserResult finish(std::chrono::milliseconds deadline = 150s);
  // The script's output so far.
  std::string output() const;

 private:
  BrowserScenario(std::string name, std::string work_dir, std::unique_ptr<Process> process);
  // SIGTERM to the script (it closes its browser), SIGKILL after a grace, then SIGKILL to every
  // process that was under it.
  void stop();
  // Remembers the processes now under the script, with their start times.
  void noteDescendants();

  std::string name_;
  std::string work_dir_;
  std::unique_ptr<Process> process_;
  // The processes last seen under the script (pid, start time), to kill should it die first.
  std::vector<std::pair<pid_t, uint64_t>> descendants_;
};

// The pids of every process under `pid` (children, theirs, ...), from /proc.
std::vector<pid_t> descendantsOf(pid_t pid);

}  // namespace flotilla::support
