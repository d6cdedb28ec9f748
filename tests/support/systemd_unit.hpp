// Test support, systemd service units: reads an installed unit the way systemd does (the unit
// file or its template, drop-ins, specifiers, Environment= and EnvironmentFile=) and turns it
// into what systemd would run (ExecStart's argv, its environment, the user, umask, state
// directories, how to stop it). integration/install/unit_run starts units with it on machines
// without systemd as PID 1. What it does not know it refuses with an error instead of guessing.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.hpp"

namespace flotilla::support {

using namespace std::chrono_literals;

// Variable assignments in the order they were read (a later one wins).
using EnvAssignments = std::vector<std::pair<std::string, std::string>>;
using Environment = std::map<std::string, std::string>;

// A unit's name taken apart: "flotilla-agent@x.service" is prefix "flotilla-agent", instance
// "x", template "flotilla-agent@.service".
struct UnitName {
  std::string full;      // as given
  std::string prefix;    // before '@', or the name without its suffix
  std::string instance;  // after '@' ("" for a plain unit)
  std::string suffix;    // ".service"
  bool is_instance = false;
  std::string templateName() const { return prefix + "@" + suffix; }
};
// Only ".service" units; a template itself ("x@.service") cannot be started.
common::StatusOr<UnitName> parseUnitName(std::string_view name);

// %i (instance), %I (instance unescaped: "-" is "/", "\xNN" a byte), %n (full name), %N (full
// name without suffix), %p (prefix), %% ('%'). Any other specifier is an error.
common::StatusOr<std::string> expandSpecifiers(std::string_view value, const UnitName& name);

// A systemd time span: "90s", "1min 30s", "2min", "1h30m", "500ms", "1.5s"; a bare number is
// seconds; "infinity" is milliseconds::max(). (systemd's syntax, which common::parseDuration's
// plan durations deliberately do not accept: spaces, "min", fractions, bare numbers.)
common::StatusOr<std::chrono::milliseconds> parseTimeSpan(std::string_view text);

// Environment='s value: whitespace-separated NAME=VALUE words, "..." or '...' quoting (also in
// the middle of a word) and C escapes (\\ \" \' \n \t \ ).
common::StatusOr<EnvAssignments> parseEnvironmentAssignments(std::string_view value);

// An EnvironmentFile='s text: NAME=VALUE lines, '#'/';' comment lines, whitespace around the
// name and unquoted value dropped, a value may be '...' (literal) or "..." (\ escapes only
// " \ ` $ and a newline), an unquoted '\' escapes the next character ('\' at the end of a line
// continues it).
common::StatusOr<EnvAssignments> parseEnvironmentFile(std::string_view text);

// ExecStart's argv: the command line split into words (quotes and C escapes as Environment=),
// then in each word "${NAME}" is the variable's whole value (unset: ""), "$$" is '$', and a
// word that is exactly "$NAME" becomes the value split on whitespace (none for an empty or
// unset variable). Refused: prefixes (-@+!:), "$NAME" inside a word, a "$NAME" value holding
// quotes or backslashes, a relative program path.
common::StatusOr<std::vector<std::string>> expandExecStart(std::string_view command,
                                                           const Environment& env);

// Where systemd sends signals on stop (KillMode=).
enum class KillMode {
  kControlGroup,  // every process of the unit (here: its process group)
  kProcess,       // the main process only
  kMixed,         // SIGTERM to the main process, SIGKILL to all of them
};

// A path setting's entry: "-PATH" is optional (missing is no error).
struct OptionalPath {
  std::string path;
  bool optional = false;
};

// What unit_run needs of a [Service] section, with drop-ins applied and specifiers expanded.
struct ServiceUnit {
  UnitName name;
  std::vector<std::string> files;  // the unit file, then its drop-ins, in the order read
  EnvAssignments environment;      // Environment=, in order
  std::vector<OptionalPath> environment_files;  // EnvironmentFile=, in order
  std::string exec_start;                       // variables not expanded yet (expandExecStart)
  std::string user;                             // "" = root
  std::string group;                            // "" = the user's primary group
  mode_t umask = 0022;
  bool no_new_privileges = false;
  KillMode kill_mode = KillMode::kControlGroup;
  std::chrono::milliseconds timeout_stop = 90s;  // systemd's DefaultTimeoutStopSec
  std::vector<std::string> state_directories;    // relative to /var/lib
  mode_t state_directory_mode = 0755;
  // InaccessiblePaths=: hidden from the process (the one sandboxing setting unit_run applies,
  // in a mount namespace of its own; the others are left to systemd-analyze verify).
  std::vector<OptionalPath> inaccessible_paths;
  std::string working_directory;            // "" = "/", "~" = the user's home
  bool working_directory_optional = false;  // "-" prefix
};

struct UnitDirs {
  std::string unit_dir = "/lib/systemd/system";    // the packages' units
  std::string dropin_dir = "/etc/systemd/system";  // the admin's units and drop-ins
};

// The unit NAME: dropin_dir/NAME, else unit_dir/NAME; for an instance also the template
// (dropin_dir first). Then the drop-ins *.conf of dropin_dir/NAME.d/ and, for an instance,
// dropin_dir/TEMPLATE.d/, applied in file-name order (the instance's file wins over the
// template's of the same name). In [Service]: a later assignment overrides an earlier one; an
// empty one resets the setting (Environment=, EnvironmentFile=, StateDirectory= and ExecStart=
// are lists). '#'/';' comment lines and '\' line continuation as systemd reads them.
common::StatusOr<ServiceUnit> loadServiceUnit(std::string_view name, const UnitDirs& dirs = {});

// The unit's own variables as systemd computes them: Environment= in order, then each
// EnvironmentFile= in order (overriding earlier values); a missing optional file is skipped.
common::StatusOr<Environment> unitEnvironment(const ServiceUnit& unit);

// The account a unit runs as.
struct Account {
  std::string name;
  std::string home;
  std::string shell;
};
// The whole environment of the started process, as systemd builds it: PATH (systemd's default),
// LANG when given, for a unit with User= also USER, LOGNAME, HOME and SHELL, STATE_DIRECTORY
// (colon-separated) with StateDirectory=; then the unit's own variables override these.
Environment execEnvironment(const ServiceUnit& unit, const Environment& unit_env,
                            const std::optional<Account>& account,
                            const std::optional<std::string>& lang);

}  // namespace flotilla::support
