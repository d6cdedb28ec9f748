#include "tests/support/systemd_unit.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/support/files.hpp"

#ifndef FLOTILLA_SOURCE_DIR
#error "FLOTILLA_SOURCE_DIR must be defined by CMake"
#endif

namespace flotilla::support {
namespace {

using Argv = std::vector<std::string>;

UnitName nameOf(const std::string& text) {
  auto name = parseUnitName(text);
  EXPECT_TRUE(name.ok()) << name.status().toString();
  return name.ok() ? *name : UnitName{};
}

std::string specifiers(const std::string& value, const std::string& unit) {
  auto out = expandSpecifiers(value, nameOf(unit));
  EXPECT_TRUE(out.ok()) << out.status().toString();
  return out.ok() ? *out : "";
}

std::chrono::milliseconds span(const std::string& text) {
  auto out = parseTimeSpan(text);
  EXPECT_TRUE(out.ok()) << text << ": " << out.status().toString();
  return out.ok() ? *out : std::chrono::milliseconds(-1);
}

EnvAssignments assignments(const std::string& value) {
  auto out = parseEnvironmentAssignments(value);
  EXPECT_TRUE(out.ok()) << out.status().toString();
  return out.ok() ? *out : EnvAssignments{};
}

EnvAssignments envFile(const std::string& text) {
  auto out = parseEnvironmentFile(text);
  EXPECT_TRUE(out.ok()) << out.status().toString();
  return out.ok() ? *out : EnvAssignments{};
}

Argv exec(const std::string& command, const Environment& env) {
  auto out = expandExecStart(command, env);
  EXPECT_TRUE(out.ok()) << out.status().toString();
  return out.ok() ? *out : Argv{};
}

std::string errorOf(const common::Status& status) {
  EXPECT_FALSE(status.ok());
  return status.message();
}

TEST(SystemdUnitNameTest, PlainInstanceAndRefusals) {
  UnitName plain = nameOf("flotilla-coordinator.service");
  EXPECT_EQ(plain.prefix, "flotilla-coordinator");
  EXPECT_FALSE(plain.is_instance);
  UnitName instance = nameOf("flotilla-agent@prod-eu-1.service");
  EXPECT_TRUE(instance.is_instance);
  EXPECT_EQ(instance.prefix, "flotilla-agent");
  EXPECT_EQ(instance.instance, "prod-eu-1");
  EXPECT_EQ(instance.templateName(), "flotilla-agent@.service");
  EXPECT_FALSE(parseUnitName("flotilla-agent@.service").ok());
  EXPECT_FALSE(parseUnitName("ssh.socket").ok());
  EXPECT_FALSE(parseUnitName("../x.service").ok());
}

TEST(SystemdUnitSpecifierTest, KnownSpecifiersExpandOthersAreRefused) {
  const std::string unit = "flotilla-agent@a-b\\x2dc.service";
  EXPECT_EQ(specifiers("/var/lib/agent-%i", unit), "/var/lib/agent-a-b\\x2dc");
  EXPECT_EQ(specifiers("%I", unit), "a/b-c");
  EXPECT_EQ(specifiers("%n|%N|%p", unit),
            "flotilla-agent@a-b\\x2dc.service|flotilla-agent@a-b\\x2dc|flotilla-agent");
  EXPECT_EQ(specifiers("100%%", unit), "100%");
  EXPECT_EQ(specifiers("agent-%i", "flotilla-agent.service"), "agent-");
  EXPECT_EQ(specifiers("%p", "flotilla-agent.service"), "flotilla-agent");
  auto home = expandSpecifiers("%h/x", nameOf(unit));
  EXPECT_NE(errorOf(home.status()).find("specifier %h"), std::string::npos);
  EXPECT_FALSE(expandSpecifiers("50%", nameOf(unit)).ok());
}

TEST(SystemdUnitTimeSpanTest, SystemdForms) {
  using std::chrono::milliseconds;
  EXPECT_EQ(span("90s"), milliseconds(90'000));
  EXPECT_EQ(span("1min 30s"), milliseconds(90'000));
  EXPECT_EQ(span("1min30s"), milliseconds(90'000));
  EXPECT_EQ(span("2min"), milliseconds(120'000));
  EXPECT_EQ(span("1h 30m"), milliseconds(5'400'000));
  EXPECT_EQ(span("500ms"), milliseconds(500));
  EXPECT_EQ(span("5"), milliseconds(5'000));  // a bare number is seconds
  EXPECT_EQ(span("1.5s"), milliseconds(1'500));
  EXPECT_EQ(span(" 2 minutes "), milliseconds(120'000));
  EXPECT_EQ(span("infinity"), milliseconds::max());
  EXPECT_FALSE(parseTimeSpan("").ok());
  EXPECT_FALSE(parseTimeSpan("5x").ok());
  EXPECT_FALSE(parseTimeSpan("min").ok());
  EXPECT_FALSE(parseTimeSpan("-5s").ok());
}

TEST(SystemdUnitEnvironmentTest, QuotedWordsAndSeveralPairsPerLine) {
  EXPECT_EQ(assignments("A=1 B=2"), (EnvAssignments{{"A", "1"}, {"B", "2"}}));
  EXPECT_EQ(assignments("\"A=B C\" D=e"), (EnvAssignments{{"A", "B C"}, {"D", "e"}}));
  EXPECT_EQ(assignments("X='it''s' Y=\"say \\\"hi\\\"\""),
            (EnvAssignments{{"X", "its"}, {"Y", "say \"hi\""}}));
  EXPECT_EQ(assignments("A=\"x y\"z"), (EnvAssignments{{"A", "x yz"}}));
  EXPECT_EQ(assignments("EMPTY="), (EnvAssignments{{"EMPTY", ""}}));
  EXPECT_EQ(assignments("P=a\\ b"), (EnvAssignments{{"P", "a b"}}));
  EXPECT_FALSE(parseEnvironmentAssignments("NOEQUALS").ok());
  EXPECT_FALSE(parseEnvironmentAssignments("1X=a").ok());
  EXPECT_FALSE(parseEnvironmentAssignments("A=\"open").ok());
}

TEST(SystemdUnitEnvironmentFileTest, LinesCommentsQuotesAndEscapes) {
  const std::string text =
      "# a comment\n"
      "; another\n"
      "\n"
      "  PLAIN = value with spaces   \n"
      "SINGLE='a \"b\" $c \\d'\n"
      "DOUBLE=\"x \\\"y\\\" \\$z \\q\"\n"
      "JOINED=\"a\" 'b'\n"
      "TRAILING=one\\\n"
      "two\n"
      "ESCAPED=a\\ b\\#c\n"
      "EMPTY=\n"
      "HASH=v # not a comment\n"
      "LAST=no newline";
  EXPECT_EQ(envFile(text), (EnvAssignments{{"PLAIN", "value with spaces"},
                                           {"SINGLE", "a \"b\" $c \\d"},
                                           {"DOUBLE", "x \"y\" $z \\q"},
                                           {"JOINED", "ab"},
                                           {"TRAILING", "onetwo"},
                                           {"ESCAPED", "a b#c"},
                                           {"EMPTY", ""},
                                           {"HASH", "v # not a comment"},
                                           {"LAST", "no newline"}}));
  EXPECT_NE(errorOf(parseEnvironmentFile("A=1\nnot an assignment\n").status()).find("line 2"),
            std::string::npos);
  EXPECT_FALSE(parseEnvironmentFile("A='open\n").ok());
  EXPECT_FALSE(parseEnvironmentFile("BAD-NAME=1\n").ok());
}

TEST(SystemdUnitExecStartTest, BracedIsOneArgumentBareIsSplit) {
  const Environment env = {{"ONE", "a b"}, {"ARGS", "--x 1  --y"}, {"EMPTY", ""}};
  EXPECT_EQ(exec("/bin/prog ${ONE} $ARGS", env), (Argv{"/bin/prog", "a b", "--x", "1", "--y"}));
  // Empty or unset: $X gives no argument, ${X} an empty one.
  EXPECT_EQ(exec("/bin/prog $EMPTY $UNSET ${EMPTY} ${UNSET}", env), (Argv{"/bin/prog", "", ""}));
  EXPECT_EQ(exec("/bin/prog --a=${ONE}/x $$HOME \"q w\" 'e r'", env),
            (Argv{"/bin/prog", "--a=a b/x", "$HOME", "q w", "e r"}));
  EXPECT_EQ(exec("/bin/prog \"$ARGS\"", env), (Argv{"/bin/prog", "--x", "1", "--y"}));
  // A '$' not before a name, '{' or '$' is left alone.
  EXPECT_EQ(exec("/bin/sh -c 'echo $! $1 a$'", env), (Argv{"/bin/sh", "-c", "echo $! $1 a$"}));
}

TEST(SystemdUnitExecStartTest, RefusesWhatItDoesNotRun) {
  const Environment env = {{"Q", "\"quoted words\""}};
  for (const std::string prefix : {"-", "@", "+", "!", "!!", ":"}) {
    auto argv = expandExecStart(prefix + "/bin/prog", env);
    EXPECT_NE(errorOf(argv.status()).find("prefix"), std::string::npos) << prefix;
  }
  EXPECT_FALSE(expandExecStart("prog --x", env).ok());          // not an absolute path
  EXPECT_FALSE(expandExecStart("/bin/prog --a=$Q", env).ok());  // $X inside a word
  EXPECT_FALSE(expandExecStart("/bin/prog $Q", env).ok());      // quotes in a split value
  EXPECT_FALSE(expandExecStart("/bin/prog ${Q", env).ok());
  EXPECT_FALSE(expandExecStart("/bin/a ; /bin/b", env).ok());
  EXPECT_FALSE(expandExecStart("", env).ok());
}

// Unit files in a temp dir: DIR/lib is the packages' dir, DIR/etc the admin's.
class SystemdUnitFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dirs_.unit_dir = dir_.path() + "/lib";
    dirs_.dropin_dir = dir_.path() + "/etc";
    std::filesystem::create_directories(dirs_.unit_dir);
    std::filesystem::create_directories(dirs_.dropin_dir);
  }
  void write(const std::string& relative, const std::string& text) {
    const std::filesystem::path path = std::filesystem::path(dir_.path()) / relative;
    std::filesystem::create_directories(path.parent_path());
    writeFile(path.string(), text);
  }
  ServiceUnit load(const std::string& name) {
    auto unit = loadServiceUnit(name, dirs_);
    EXPECT_TRUE(unit.ok()) << unit.status().toString();
    return unit.ok() ? *unit : ServiceUnit{};
  }
  std::string path(const std::string& relative) { return dir_.path() + "/" + relative; }

  TempDir dir_{"systemd-unit"};
  UnitDirs dirs_;
};

TEST_F(SystemdUnitFilesTest, TemplateInstanceWithDropInsLaterOverrides) {
  write("lib/demo@.service",
        "[Unit]\n"
        "Description=Demo %i\n"
        "User=not-read-in-unit-section\n"
        "[Service]\n"
        "# comment\n"
        "; comment\n"
        "User=nobody\n"
        "Environment=STATE=/var/lib/demo-%i \"GREETING=hello world\"\n"
        "EnvironmentFile=-/etc/demo-%i.env\n"
        "ExecStart=/usr/bin/demo --state ${STATE} \\\n"
        "# a comment inside the continuation\n"
        "  $ARGS\n"
        "KillMode=process\n"
        "TimeoutStopSec=1min 30s\n"
        "StateDirectory=demo/%i demo/shared\n"
        "StateDirectoryMode=0700\n"
        "UMask=0077\n"
        "NoNewPrivileges=yes\n"
        "WorkingDirectory=-/srv/%i\n"
        "InaccessiblePaths=/var/lib/old\n"
        "InaccessiblePaths=\n"
        "InaccessiblePaths=-/var/lib/coordinator /etc/%i.token\n"
        "ProtectSystem=full\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n");
  // The template's drop-ins apply to every instance, the instance's to it alone; a file of the
  // same name in the instance's directory replaces the template's.
  write("etc/demo@.service.d/10-user.conf", "[Service]\nUser=root\nGroup=daemon\n");
  write("etc/demo@.service.d/20-env.conf", "[Service]\nEnvironment=FROM=template\n");
  write("etc/demo@x.service.d/20-env.conf", "[Service]\nEnvironment=FROM=instance\n");
  write("etc/demo@x.service.d/30-timeout.conf", "[Service]\nTimeoutStopSec=5\n");
  write("etc/demo@x.service.d/ignored.txt", "[Service]\nUser=ignored\n");
  write("etc/demo@y.service.d/40-other.conf", "[Service]\nUser=other-instance\n");

  ServiceUnit unit = load("demo@x.service");
  EXPECT_EQ(unit.files, (std::vector<std::string>{path("lib/demo@.service"),
                                                  path("etc/demo@.service.d/10-user.conf"),
                                                  path("etc/demo@x.service.d/20-env.conf"),
                                                  path("etc/demo@x.service.d/30-timeout.conf")}));
  EXPECT_EQ(unit.user, "root");
  EXPECT_EQ(unit.group, "daemon");
  EXPECT_EQ(unit.environment,
            (EnvAssignments{
                {"STATE", "/var/lib/demo-x"}, {"GREETING", "hello world"}, {"FROM", "instance"}}));
  ASSERT_EQ(unit.environment_files.size(), 1u);
  EXPECT_EQ(unit.environment_files[0].path, "/etc/demo-x.env");
  EXPECT_TRUE(unit.environment_files[0].optional);
  EXPECT_EQ(unit.exec_start, "/usr/bin/demo --state ${STATE}    $ARGS");
  EXPECT_EQ(unit.kill_mode, KillMode::kProcess);
  EXPECT_EQ(unit.timeout_stop, std::chrono::milliseconds(5'000));
  EXPECT_EQ(unit.state_directories, (std::vector<std::string>{"demo/x", "demo/shared"}));
  EXPECT_EQ(unit.state_directory_mode, 0700u);
  EXPECT_EQ(unit.umask, 0077u);
  EXPECT_TRUE(unit.no_new_privileges);
  EXPECT_EQ(unit.working_directory, "/srv/x");
  EXPECT_TRUE(unit.working_directory_optional);
  ASSERT_EQ(unit.inaccessible_paths.size(), 2u);
  EXPECT_EQ(unit.inaccessible_paths[0].path, "/var/lib/coordinator");
  EXPECT_TRUE(unit.inaccessible_paths[0].optional);
  EXPECT_EQ(unit.inaccessible_paths[1].path, "/etc/x.token");
  EXPECT_FALSE(unit.inaccessible_paths[1].optional);

  // Without drop-ins: the template's own values and the defaults.
  ServiceUnit other = load("demo@z.service");
  EXPECT_EQ(other.user, "root");  // the template's drop-in still applies
  EXPECT_EQ(other.timeout_stop, std::chrono::milliseconds(90'000));
  EXPECT_EQ(other.environment.back(), (std::pair<std::string, std::string>{"FROM", "template"}));
}

TEST_F(SystemdUnitFilesTest, EmptyAssignmentsResetListsAndSettings) {
  write("lib/demo.service",
        "[Service]\n"
        "Environment=A=1 B=2\n"
        "EnvironmentFile=/etc/a.env\n"
        "ExecStart=/usr/bin/old\n"
        "StateDirectory=demo\n"
        "User=nobody\n"
        "UMask=0077\n");
  write("etc/demo.service.d/override.conf",
        "[Service]\n"
        "Environment=\n"
        "Environment=C=3\n"
        "EnvironmentFile=\n"
        "ExecStart=\n"
        "ExecStart=/usr/bin/new --flag\n"
        "StateDirectory=\n"
        "User=\n"
        "UMask=\n");
  ServiceUnit unit = load("demo.service");
  EXPECT_EQ(unit.environment, (EnvAssignments{{"C", "3"}}));
  EXPECT_TRUE(unit.environment_files.empty());
  EXPECT_EQ(unit.exec_start, "/usr/bin/new --flag");
  EXPECT_TRUE(unit.state_directories.empty());
  EXPECT_EQ(unit.user, "");
  EXPECT_EQ(unit.umask, 0022u);
  EXPECT_EQ(unit.kill_mode, KillMode::kControlGroup);
}

TEST_F(SystemdUnitFilesTest, AdminCopyReplacesThePackagedUnit) {
  write("lib/demo.service", "[Service]\nExecStart=/usr/bin/packaged\n");
  write("etc/demo.service", "[Service]\nExecStart=/usr/bin/admin\n");
  EXPECT_EQ(load("demo.service").exec_start, "/usr/bin/admin");
}

TEST_F(SystemdUnitFilesTest, Refusals) {
  auto errorLoading = [&](const std::string& name, const std::string& text) {
    write("lib/" + name, text);
    auto unit = loadServiceUnit(name, dirs_);
    return unit.ok() ? std::string("loaded") : unit.status().message();
  };
  EXPECT_NE(errorLoading("a.service", "[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n")
                .find("several ExecStart"),
            std::string::npos);
  EXPECT_NE(errorLoading("b.service", "[Service]\nUser=x\n").find("no ExecStart"),
            std::string::npos);
  EXPECT_NE(errorLoading("c.service", "[Service]\nExecStart=-/bin/c\n").find("prefix '-'"),
            std::string::npos);
  const std::string specifier =
      errorLoading("d.service", "[Service]\nExecStart=/bin/d\nWorkingDirectory=%h\n");
  EXPECT_NE(specifier.find("d.service:3"), std::string::npos) << specifier;
  EXPECT_NE(specifier.find("specifier %h"), std::string::npos) << specifier;
  EXPECT_NE(
      errorLoading("e.service", "[Service]\nExecStart=/bin/e\nType=forking\n").find("Type=forking"),
      std::string::npos);
  EXPECT_NE(errorLoading("f.service", "[Service]\nExecStart=/bin/f\nKillMode=none\n")
                .find("KillMode=none"),
            std::string::npos);
  EXPECT_NE(errorLoading("g.service", "[Service]\nExecStart=/bin/g\nStateDirectory=../etc\n")
                .find("StateDirectory"),
            std::string::npos);
  EXPECT_NE(errorLoading("h.service", "[Service]\nExecStart=/bin/h\nTimeoutStopSec=soon\n")
                .find("time span"),
            std::string::npos);
  EXPECT_NE(errorLoading("i.service", "[Service]\nnot an assignment\n").find("i.service:2"),
            std::string::npos);
  EXPECT_NE(errorLoading("j.service", "[Service]\nExecStart=/bin/j\nInaccessiblePaths=+/x\n")
                .find("InaccessiblePaths"),
            std::string::npos);
  EXPECT_TRUE(loadServiceUnit("missing.service", dirs_).status().isNotFound());
  std::filesystem::create_symlink("/dev/null", dirs_.dropin_dir + "/masked.service");
  write("lib/masked.service", "[Service]\nExecStart=/bin/m\n");
  EXPECT_FALSE(loadServiceUnit("masked.service", dirs_).ok());
}

TEST_F(SystemdUnitFilesTest, EnvironmentFilesOverrideEnvironmentAndEachOther) {
  write("first.env", "A=from-first\nB=from-first\n");
  write("second.env", "B=from-second\n");
  write("lib/demo.service",
        "[Service]\n"
        "Environment=A=unit B=unit C=unit\n"
        "EnvironmentFile=" +
            path("first.env") +
            "\n"
            "EnvironmentFile=-" +
            path("missing.env") +
            "\n"
            "EnvironmentFile=" +
            path("second.env") +
            "\n"
            "ExecStart=/usr/bin/demo ${A} ${B} ${C}\n");
  ServiceUnit unit = load("demo.service");
  auto env = unitEnvironment(unit);
  ASSERT_TRUE(env.ok()) << env.status().toString();
  EXPECT_EQ(*env, (Environment{{"A", "from-first"}, {"B", "from-second"}, {"C", "unit"}}));
  EXPECT_EQ(exec(unit.exec_start, *env),
            (Argv{"/usr/bin/demo", "from-first", "from-second", "unit"}));

  // A missing file without '-' stops the start.
  unit.environment_files.push_back({path("missing.env"), false});
  EXPECT_TRUE(unitEnvironment(unit).status().isNotFound());
}

TEST_F(SystemdUnitFilesTest, ExecEnvironmentIsWhatSystemdSets) {
  write("lib/demo.service",
        "[Service]\nUser=nobody\nStateDirectory=a b/c\nEnvironment=PATH=/opt/bin X=1\n"
        "ExecStart=/usr/bin/demo\n");
  ServiceUnit unit = load("demo.service");
  auto own = unitEnvironment(unit);
  ASSERT_TRUE(own.ok());
  Environment env = execEnvironment(
      unit, *own, Account{"nobody", "/nonexistent", "/usr/sbin/nologin"}, std::string("C.UTF-8"));
  EXPECT_EQ(env, (Environment{{"PATH", "/opt/bin"},
                              {"X", "1"},
                              {"LANG", "C.UTF-8"},
                              {"USER", "nobody"},
                              {"LOGNAME", "nobody"},
                              {"HOME", "/nonexistent"},
                              {"SHELL", "/usr/sbin/nologin"},
                              {"STATE_DIRECTORY", "/var/lib/a:/var/lib/b/c"}}));
  // No User=: no account variables; systemd's PATH.
  Environment root = execEnvironment(ServiceUnit{}, {}, std::nullopt, std::nullopt);
  EXPECT_EQ(
      root,
      (Environment{{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}));
}

// The units the packages ship, read from the source tree as an installed copy.
TEST_F(SystemdUnitFilesTest, PackagedAgentTemplate) {
  dirs_.unit_dir = std::string(FLOTILLA_SOURCE_DIR) + "/packaging/systemd";
  write("agent-x.env",
        "FLOTILLA_CLUSTER=prod-eu-1\nFLOTILLA_COORDINATOR=tcp://127.0.0.1:7701\n"
        "FLOTILLA_AGENT_ARGS=--label environment=production --label region=eu\n");
  write("agent-x.enroll", "FLOTILLA_ENROLL_ARGS=--enroll-token @/etc/flotilla/agent-x.token\n");
  // Point the unit's files at the temp dir, the way an admin's drop-in would.
  write("etc/flotilla-agent@x.service.d/files.conf",
        "[Service]\nEnvironmentFile=\nEnvironmentFile=" + path("agent-%i.env") +
            "\nEnvironmentFile=-" + path("agent-%i.enroll") + "\n");
  ServiceUnit unit = load("flotilla-agent@x.service");
  EXPECT_EQ(unit.user, "flotilla");
  EXPECT_EQ(unit.kill_mode, KillMode::kProcess);
  EXPECT_EQ(unit.timeout_stop, std::chrono::milliseconds(90'000));
  EXPECT_EQ(unit.state_directories, std::vector<std::string>{"flotilla/agent-x"});
  EXPECT_EQ(unit.state_directory_mode, 0700u);
  EXPECT_TRUE(unit.no_new_privileges);
  auto env = unitEnvironment(unit);
  ASSERT_TRUE(env.ok()) << env.status().toString();
  EXPECT_EQ(exec(unit.exec_start, *env),
            (Argv{"/usr/bin/flotilla-agent", "--cluster", "prod-eu-1", "--coordinator",
                  "tcp://127.0.0.1:7701", "--coordinator-key", "@/etc/flotilla/coordinator.pub",
                  "--state-dir", "/var/lib/flotilla/agent-x", "--enroll-token",
                  "@/etc/flotilla/agent-x.token", "--label", "environment=production", "--label",
                  "region=eu"}));
  // Once enrolled the .enroll file is gone and its variable gives no argument.
  std::filesystem::remove(path("agent-x.enroll"));
  env = unitEnvironment(unit);
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(exec(unit.exec_start, *env).size(), 13u);
}

TEST_F(SystemdUnitFilesTest, PackagedCoordinatorDefaults) {
  dirs_.unit_dir = std::string(FLOTILLA_SOURCE_DIR) + "/packaging/systemd";
  write("etc/flotilla-coordinator.service.d/files.conf", "[Service]\nEnvironmentFile=\n");
  ServiceUnit unit = load("flotilla-coordinator.service");
  auto env = unitEnvironment(unit);
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(exec(unit.exec_start, *env),
            (Argv{"/usr/bin/flotilla-coordinator", "--data-dir", "/var/lib/flotilla/coordinator",
                  "--listen-agents", "tcp://127.0.0.1:7700", "--listen-http", "127.0.0.1:7780"}));
  EXPECT_EQ(unit.umask, 0077u);
  EXPECT_EQ(unit.kill_mode, KillMode::kControlGroup);
  EXPECT_EQ(unit.timeout_stop, std::chrono::milliseconds(60'000));
}

}  // namespace
}  // namespace flotilla::support
