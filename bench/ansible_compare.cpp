// flotilla-bench-ansible: the same 3-wave rollout with Ansible and with Flotilla, in one run.
//
// 100 local targets; waves of 10%, 50% and 100% of them (10, then 50, then the other 40); one
// command per target (`true`); stop on the first failure.
//   Ansible: an inventory of 100 hosts with ansible_connection=local and a playbook with
//            `serial: ["10%", "50%", "100%"]` and `max_fail_percentage: 0`, run by
//            ansible-playbook with its default 5 forks and again with 50 forks; wall time of
//            the ansible-playbook process.
//   Flotilla: a coordinator and 100 real flotilla-agent processes (each runs its step with
//            /bin/sh -c and records it durably, as in production); a plan with the same three
//            waves; from the submission to `succeeded` (its commit time).
// Prints both wall times and their ratio. Needs ansible-playbook (Debian's ansible-core;
// bench/run installs it).
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include "bench/bench_util.hpp"
#include "tests/support/files.hpp"

#ifndef FLOTILLA_AGENT_BIN
#error "FLOTILLA_AGENT_BIN must be defined by CMake"
#endif

namespace flotilla::bench {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr char kUsage[] = "usage: flotilla-bench-ansible [--runs N] [--quick] [--summary]\n";
constexpr int kTargets = 100;

std::string target(int i) {
  char name[16];
  std::snprintf(name, sizeof(name), "t%03d", i);
  return name;
}

std::string findAnsible() {
  for (const char* p : {"/usr/bin/ansible-playbook", "/usr/local/bin/ansible-playbook"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

// Wall time of one ansible-playbook run, in ms; -1 when it failed.
double runAnsible(const std::string& ansible, const std::string& dir, int forks) {
  std::string inventory = "[targets]\n";
  for (int i = 0; i < kTargets; ++i) inventory += target(i) + "\n";
  inventory +=
      "\n[targets:vars]\nansible_connection=local\n"
      "ansible_python_interpreter=/usr/bin/python3\n";
  support::writeFile(dir + "/inventory.ini", inventory);
  support::writeFile(dir + "/rollout.yml",
                     "- hosts: targets\n"
                     "  gather_facts: false\n"
                     "  serial: [\"10%\", \"50%\", \"100%\"]\n"
                     "  max_fail_percentage: 0\n"
                     "  tasks:\n"
                     "    - name: apply\n"
                     "      command: \"true\"\n");
  fs::create_directories(dir + "/ansible-tmp");
  std::vector<std::string> argv = {"/usr/bin/env",
                                   "ANSIBLE_LOCAL_TEMP=" + dir + "/ansible-tmp",
                                   "ANSIBLE_REMOTE_TEMP=" + dir + "/ansible-tmp",
                                   "ANSIBLE_NOCOLOR=1",
                                   "ANSIBLE_RETRY_FILES_ENABLED=0",
                                   ansible,
                                   "-i",
                                   dir + "/inventory.ini",
                                   "--forks",
                                   std::to_string(forks),
                                   dir + "/rollout.yml"};
  auto start = std::chrono::steady_clock::now();
  auto r = support::runCommand(argv, dir, 600s);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (r.exit_code != 0) {
    std::cerr << "ansible-playbook failed (" << r.exit_code << "): " << r.out.substr(0, 2000)
              << r.err.substr(0, 2000) << "\n";
    return -1;
  }
  return ms;
}

std::string flotillaPlan(int run) {
  auto list = [](int from, int to) {
    std::string s;
    for (int i = from; i < to; ++i) s += (s.empty() ? "" : ", ") + target(i);
    return "[" + s + "]";
  };
  return "service: compare\nversion: \"1.0." + std::to_string(run) +
         "\"\ndriver: script\nsteps:\n  apply: \"true\"\n  rollback: \"true\"\nwaves:\n"
         "  - name: w10\n    clusters: " +
         list(0, 10) + "\n" + "  - name: w50\n    clusters: " + list(10, 60) + "\n" +
         "  - name: w100\n    clusters: " + list(60, 100) + "\n";
}

}  // namespace
}  // namespace flotilla::bench

int main(int argc, char** argv) {
  using namespace flotilla::bench;
  CommonArgs args = parseArgs(argc, argv, kUsage);
  int runs = args.runs > 0 ? args.runs : 1;
  std::string ansible = findAnsible();
  if (ansible.empty()) {
    std::cerr << "flotilla-bench-ansible: ansible-playbook not found (apt-get install "
                 "ansible-core, or run bench/run, which installs it)\n";
    return 1;
  }
  std::string dir = makeTempDir("ansible");
  Figure flotilla{"ansible", "Flotilla 3 waves x 100 agents (ms)", {}};
  Figure ansible5{"ansible", "Ansible 3 serial batches, 5 forks (ms)", {}};
  Figure ansible50{"ansible", "Ansible 3 serial batches, 50 forks (ms)", {}};
  Figure ratio5{"ansible", "ratio Ansible(5 forks) / Flotilla", {}};
  Figure ratio50{"ansible", "ratio Ansible(50 forks) / Flotilla", {}};
  {
    auto coordinator = CoordinatorProcess::start(dir, {"--heartbeat", "1s"});
    if (!coordinator) return 1;
    std::vector<std::unique_ptr<flotilla::support::Process>> agents;
    for (int i = 0; i < kTargets; ++i) {
      std::string base = dir + "/agents/" + target(i);
      fs::create_directories(base + "/state");
      fs::create_directories(base + "/work");
      agents.push_back(flotilla::support::Process::spawn(
          target(i),
          {FLOTILLA_AGENT_BIN, "--insecure", "--cluster", target(i), "--coordinator",
           coordinator->agents(), "--label", "fleet=compare", "--state-dir", base + "/state",
           "--workdir", base + "/work", "--log-level", "warn"},
          {}, base + "/agent.log"));
    }
    // Every agent connected before the clock starts, as Ansible's inventory is ready before its.
    auto until = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < until) {
      auto r = coordinator->get("/api/v1/agents");
      int connected = 0;
      for (const auto& a : r.parsed().value("agents", json::array())) {
        connected += a.value("state", "") == "connected";
      }
      if (connected == kTargets) break;
      std::this_thread::sleep_for(50ms);
    }
    for (int run = 0; run < runs; ++run) {
      auto t0 = std::chrono::system_clock::now();
      std::string id = coordinator->submit(flotillaPlan(run));
      if (id.empty()) return 1;
      json d = coordinator->waitFinal(id, 5ms, 120s);
      auto end =
          d.is_null() ? std::nullopt : flotilla::support::parseRfc3339(d.value("updated_at", ""));
      if (!end || d.value("state", "") != "succeeded") {
        std::cerr << "the Flotilla rollout did not succeed: " << d.dump() << "\n";
        return 1;
      }
      flotilla.values.push_back(millisSince(t0, *end));
      std::cerr << "   flotilla: " << flotilla.values.back() << " ms\n";
    }
    for (auto& a : agents) a->stop(10s);
  }
  for (int run = 0; run < runs; ++run) {
    double a5 = runAnsible(ansible, dir, 5);
    std::cerr << "   ansible, 5 forks: " << a5 << " ms\n";
    double a50 = runAnsible(ansible, dir, 50);
    std::cerr << "   ansible, 50 forks: " << a50 << " ms\n";
    if (a5 > 0) ansible5.values.push_back(a5);
    if (a50 > 0) ansible50.values.push_back(a50);
    if (a5 > 0) ratio5.values.push_back(a5 / flotilla.values[run]);
    if (a50 > 0) ratio50.values.push_back(a50 / flotilla.values[run]);
  }
  removeTree(dir);
  printFigures({flotilla, ansible5, ansible50, ratio5, ratio50}, args.summary);
  return 0;
}
