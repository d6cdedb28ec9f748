#include "tests/support/browser.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <set>
#include <thread>

#include "tests/support/files.hpp"
#include "tests/support/wait.hpp"

namespace flotilla::support {

namespace fs = std::filesystem;

const char* const kBrowserArtifactsDir = FLOTILLA_TEST_ARTIFACTS_DIR;

namespace {

constexpr char kScenarioDir[] = FLOTILLA_BROWSER_DIR;
constexpr char kNode[] = FLOTILLA_NODE_BIN;
constexpr char kChromium[] = FLOTILLA_CHROMIUM_BIN;

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

}  // namespace

std::vector<pid_t> descendantsOf(pid_t pid) {
  const auto processes = allProcesses();
  std::vector<pid_t> found;
  std::set<pid_t> parents = {pid};
  // Breadth first: each round adds the children of the last round's processes.
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& p : processes) {
      if (parents.count(p.ppid) && !parents.count(p.pid)) {
        parents.insert(p.pid);
        found.push_back(p.pid);
        grew = true;
      }
    }
  }
  return found;
}

std::unique_ptr<BrowserScenario> BrowserScenario::start(
    const std::string& name, const std::string& server_url, const std::string& token,
    const std::string& work_dir, const std::map<std::string, std::string>& env) {
  const std::string script = std::string(kScenarioDir) + "/" + name + ".mjs";
  if (!fileExists(script)) {
    ADD_FAILURE() << "no browser scenario " << script;
    return nullptr;
  }
  if (!executable(kNode) || !executable(kChromium) ||
      !fileExists(std::string(kScenarioDir) + "/node_modules/playwright-core/package.json")) {
    ADD_FAILURE() << "the browser tests need node (" << kNode << "), Debian's chromium ("
                  << kChromium << ") and the npm packages in " << kScenarioDir
                  << "/node_modules: run scripts/setup";
    return nullptr;
  }
  fs::create_directories(work_dir);
  fs::create_directories(kBrowserArtifactsDir);
  fs::remove(work_dir + "/report.json");
  std::map<std::string, std::string> all = {
      {"FLOTILLA_URL", server_url},     {"FLOTILLA_TOKEN", token},
      {"FLOTILLA_WORK", work_dir},      {"FLOTILLA_ARTIFACTS", kBrowserArtifactsDir},
      {"FLOTILLA_CHROMIUM", kChromium},
  };
  for (const auto& [k, v] : env) all[k] = v;
  auto process =
      Process::spawn("browser " + name, {kNode, script}, all, work_dir + "/" + name + ".log");
  if (process == nullptr) return nullptr;
  return std::unique_ptr<BrowserScenario>(new BrowserScenario(name, work_dir, std::move(process)));
}

BrowserScenario::BrowserScenario(std::string name, std::string work_dir,
                                 std::unique_ptr<Process> process)
    : name_(std::move(name)), work_dir_(std::move(work_dir)), process_(std::move(process)) {}

BrowserScenario::~BrowserScenario() { stop(); }

std::string BrowserScenario::output() const { return readFile(process_->logPath()); }

bool BrowserScenario::waitForMark(const std::string& what, std::chrono::milliseconds deadline) {
  const std::string line = "mark: " + what + "\n";
  bool exited = false;
  const bool seen = pollUntil(
      [&] {
        noteDescendants();
        if (output().find(line) != std::string::npos) return true;
        exited = !running();
        return exited;
      },
      deadline);
  if (seen && !exited) return true;
  ADD_FAILURE() << "the browser scenario " << name_ << " did not reach \"" << what << "\" ("
                << (exited ? "it exited with " + std::to_string(process_->exitCode()) : "timed out")
                << "); its output:\n"
                << output();
  return false;
}

void BrowserScenario::tell(const std::string& name, const std::string& value) {
  const std::string path = work_dir_ + "/" + name;
  writeFile(path + ".tmp", value + "\n");
  fs::rename(path + ".tmp", path);
}

BrowserResult BrowserScenario::finish(std::chrono::milliseconds deadline) {
  const bool exited = pollUntil(
      [&] {
        if (!running()) return true;
        noteDescendants();
        return false;
      },
      deadline, 100ms);
  if (!exited) {
    ADD_FAILURE() << "the browser scenario " << name_ << " still ran after " << deadline.count()
                  << " ms; stopping it";
  }
  stop();
  BrowserResult result;
  result.exit_code = process_->exitCode();
  result.output = output();
  result.report = json::parse(readFile(work_dir_ + "/report.json"), nullptr, false);
  if (result.report.is_discarded()) result.report = nullptr;
  return result;
}

void BrowserScenario::noteDescendants() {
  if (!process_->running()) return;
  std::vector<std::pair<pid_t, uint64_t>> now;
  for (pid_t p : descendantsOf(pid())) {
    if (auto ticks = startTicksOf(p)) now.emplace_back(p, *ticks);
  }
  if (!now.empty()) descendants_ = std::move(now);
}

void BrowserScenario::stop() {
  if (process_ == nullptr) return;
  noteDescendants();
  // SIGTERM first: the script closes its browser and writes its report.
  process_->stop(5s);
  // Whatever was under it and is still the same process (a pid is checked with its start time,
  // as pids are reused).
  for (const auto& [p, ticks] : descendants_) {
    if (startTicksOf(p) == ticks) ::kill(p, SIGKILL);
  }
  descendants_.clear();
}

}  // namespace flotilla::support
