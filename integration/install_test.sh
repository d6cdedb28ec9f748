#!/usr/bin/env bash
# The Ansible install end to end, on this machine: scripts/package --no-build (from the ctest build
# dir), then ansible/playbooks/site.yml against an inventory of this host (connection local): one
# coordinator and three agent instances flotilla-agent@NAME (staging, two production clusters).
# The roles' services run through integration/install/unit_run (built with the tests), which
# starts the INSTALLED units the way systemd would (ExecStart, User, EnvironmentFile...), since CI
# has no systemd as PID 1. Then a rollout across the three agents with the installed CLI, a second
# playbook run changing nothing, a --check --diff run towards a higher version changing nothing,
# and teardown (stop, purge, data gone). Needs root (skips otherwise). Refuses to run when flotilla
# packages or directories it did not make are present; undoes everything it did on any exit.
#   FLOTILLA_BUILD_DIR  the configured and built build directory (unit_run and the binaries)
#   FLOTILLA_INSTALL_TEST_KEEP=1  keep the temp dir (playbook logs, inventories, service logs)
#
# Phases are shell functions listed in PHASES, run in order with their wall time printed; a later
# phase (an upgrade during a rollout, say) is one more function added before phase_teardown.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="$(cd "${FLOTILLA_BUILD_DIR:?FLOTILLA_BUILD_DIR is not set}" && pwd)"
UNIT_RUN="$BUILD_DIR/integration/install/unit_run"
# inventory host, cluster, unit instance, environment (its group), region label
AGENTS=(
  "agent-staging-eu staging-eu-1 staging-eu staging eu"
  "agent-prod-eu prod-eu-1 prod-eu production eu"
  "agent-prod-us prod-us-1 prod-us production us"
)
# Written by the plan's steps (as the agents' user, flotilla).
COUNTER_DIR=/var/lib/flotilla-install-test
SKIP=77

if [ "$(id -u)" -ne 0 ]; then
  echo "install_test: SKIPPED: needs root (dpkg -i, the flotilla user)"
  exit "$SKIP"
fi
for tool in ansible-playbook dpkg-deb cpack flock python3; do
  command -v "$tool" >/dev/null || { echo "install_test: $tool is missing (scripts/setup)" >&2; exit 1; }
done
[ -x "$UNIT_RUN" ] || { echo "install_test: $UNIT_RUN is not built" >&2; exit 1; }

fail() {
  echo "install_test: FAIL: $*" >&2
  exit 1
}
source "$ROOT/integration/lib/host_packages.sh"

take_install_lock
refuse_foreign_install /var/lib/flotilla /etc/flotilla /var/cache/flotilla "$COUNTER_DIR" \
  /etc/systemd/system/flotilla-*
created_user=0
getent passwd flotilla >/dev/null || created_user=1

T="$(mktemp -d "${TMPDIR:-/tmp}/flotilla-install-test.XXXXXX")"
RUN_DIR="$T/run"
we_installed=0

# Every unit unit_run started (it leaves UNIT.pid in RUN_DIR while one runs).
stop_units() {
  local pidfile
  for pidfile in "$RUN_DIR"/*.pid; do
    [ -e "$pidfile" ] || continue
    "$UNIT_RUN" --run-dir "$RUN_DIR" stop "$(basename "$pidfile" .pid)" || true
  done
}

cleanup() {
  local rc=$?
  stop_units >"$T/cleanup-stop.log" 2>&1 || true
  if [ "$rc" != 0 ] && [ -d "$RUN_DIR/logs" ]; then
    # The services' own words, for whoever reads the failure.
    for log in "$RUN_DIR"/logs/*.log; do
      [ -e "$log" ] || continue
      echo "---- the end of $(basename "$log")" >&2
      tail -n 30 "$log" >&2
    done
  fi
  if [ "$we_installed" = 1 ]; then
    dpkg_retry --purge "${FLOTILLA_PACKAGES[@]}" >"$T/cleanup-purge.log" 2>&1 || cat "$T/cleanup-purge.log" >&2
  fi
  rm -rf /var/lib/flotilla /etc/flotilla /var/cache/flotilla "$COUNTER_DIR" /etc/systemd/system/flotilla-*
  if [ "$created_user" = 1 ] && getent passwd flotilla >/dev/null; then
    userdel flotilla 2>/dev/null || true
    getent group flotilla >/dev/null && groupdel flotilla 2>/dev/null || true
  fi
  if [ -n "${FLOTILLA_INSTALL_TEST_KEEP:-}" ]; then
    echo "install_test: kept $T" >&2
  else
    rm -rf "$T"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

check_stat() { # PATH MODE OWNER:GROUP
  local got
  got="$(stat -c '%a %U:%G' "$1")" || fail "$1 is missing"
  [ "$got" = "$2 $3" ] || fail "$1: $got, want $2 $3"
}

# Two free loopback ports (the coordinator's agent and HTTP ports).
read -r AGENT_PORT HTTP_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
API="http://127.0.0.1:$HTTP_PORT"
cli() { /usr/bin/flotilla --server "$API" --token-file /etc/flotilla/admin.token "$@"; }

VERSION="$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\{0,1\}\([^")]*\).*/\1/p' "$BUILD_DIR/CPackConfig.cmake" | head -1)"
[ -n "$VERSION" ] || fail "no CPACK_PACKAGE_VERSION in $BUILD_DIR/CPackConfig.cmake"
NEXT="$VERSION+next1"
ARCH="$(dpkg --print-architecture)"

# write_inventory DIST_DIR: the inventory, the packages taken from DIST_DIR.
write_inventory() {
  local dist="$1" version group host cluster instance env region
  version="$(deb_version "$dist")"
  cat <<EOF
# Written by integration/install_test.sh: this machine as one coordinator and three agents.
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: /usr/bin/python3
    # The test runs as root already (and CI machines have no sudo).
    ansible_become: false
  children:
    flotilla_coordinators:
      hosts:
        coordinator:
          flotilla_coordinator_listen_agents: tcp://127.0.0.1:$AGENT_PORT
          flotilla_coordinator_listen_http: 127.0.0.1:$HTTP_PORT
          flotilla_coordinator_deb: $dist/flotilla-coordinator_${version}_$ARCH.deb
          flotilla_coordinator_cli_deb: $dist/flotilla_${version}_$ARCH.deb
          flotilla_coordinator_service_command: [$UNIT_RUN, --run-dir, $RUN_DIR]
    flotilla_agents:
      vars:
        flotilla_agent_coordinator: tcp://127.0.0.1:$AGENT_PORT
        flotilla_agent_deb: $dist/flotilla-agent_${version}_$ARCH.deb
        flotilla_agent_service_command: [$UNIT_RUN, --run-dir, $RUN_DIR]
      children:
EOF
  for group in staging production; do
    printf '        %s:\n          vars:\n            flotilla_agent_environment: %s\n          hosts:\n' \
      "$group" "$group"
    for agent in "${AGENTS[@]}"; do
      read -r host cluster instance env region <<<"$agent"
      [ "$env" = "$group" ] || continue
      printf '            %s:\n' "$host"
      printf '              flotilla_agent_cluster: %s\n' "$cluster"
      printf '              flotilla_agent_instance: %s\n' "$instance"
      printf '              flotilla_agent_labels: {region: %s}\n' "$region"
    done
  done
}
deb_version() { [ "$1" = "$T/dist-next" ] && echo "$NEXT" || echo "$VERSION"; }

# playbook LOG [ansible-playbook options...]: site.yml with this test's inventory, temp dirs in T.
playbook() {
  local log="$1"
  shift
  env ANSIBLE_CONFIG="$ROOT/ansible/ansible.cfg" ANSIBLE_LOCAL_TEMP="$T/ansible/local" \
    ANSIBLE_REMOTE_TEMP="$T/ansible/remote" ANSIBLE_HOME="$T/ansible/home" HOME="$T/home" \
    XDG_CACHE_HOME="$T/cache" ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
    ansible-playbook "$@" "$ROOT/ansible/playbooks/site.yml" >"$log" 2>&1
}

# The PLAY RECAP's "HOST changed=N" pairs of a playbook log.
recap() {
  sed -n '/^PLAY RECAP/,$p' "$1" | sed -n 's/^\([^ ]*\) *: ok=[0-9]* *changed=\([0-9]*\).*/\1 \2/p'
}

# The deployment's state ("" when the coordinator does not answer).
deployment_state() {
  cli status "$1" --json 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])' 2>/dev/null || true
}

# The counter file the plan's steps append to shows build, apply and verify of deployment $1
# once per cluster, and nothing else (no step twice, no rollback).
check_each_step_once() {
  local expected="" cluster step
  for agent in "${AGENTS[@]}"; do
    read -r _ cluster _ _ _ <<<"$agent"
    for step in build apply verify; do expected+="$1 $cluster $step"$'\n'; done
  done
  diff -u <(printf '%s' "$expected" | sort) <(sort "$2") ||
    fail "the steps of $1 that ran ($2) differ from one build, apply and verify per cluster"
}

# Each of the three agents enrolled exactly once (the audit) and connected now.
check_agents_enrolled_once() {
  local enrolled connected
  enrolled="$(cli audit | grep -c ' agent\.enrolled ' || true)"
  [ "$enrolled" = 3 ] || { cli audit >&2; fail "audit shows $enrolled enrollments $1, want 3"; }
  connected="$(cli agents --json | python3 -c 'import json, sys
print(sum(a["state"] == "connected" for a in json.load(sys.stdin)["agents"]))')"
  [ "$connected" = 3 ] || fail "$connected connected agents $1, want 3: $(cli agents)"
}

unit_pid() { "$UNIT_RUN" --run-dir "$RUN_DIR" show "$1" | sed -n 's/^MainPID=//p'; }

UNITS=(flotilla-coordinator.service)
for agent in "${AGENTS[@]}"; do
  read -r _ _ instance _ _ <<<"$agent"
  UNITS+=("flotilla-agent@$instance.service")
done

# ---- phases ------------------------------------------------------------------------------------

phase_package() {
  FLOTILLA_BUILD_DIR="$BUILD_DIR" "$ROOT/scripts/package" --no-build --out "$T/dist"
  FLOTILLA_PACKAGE_VERSION="$NEXT" FLOTILLA_BUILD_DIR="$BUILD_DIR" "$ROOT/scripts/package" \
    --no-build --out "$T/dist-next"
  for pkg in "${FLOTILLA_PACKAGES[@]}"; do
    [ -f "$T/dist/${pkg}_${VERSION}_${ARCH}.deb" ] || fail "no $pkg $VERSION .deb"
    [ -f "$T/dist-next/${pkg}_${NEXT}_${ARCH}.deb" ] || fail "no $pkg $NEXT .deb"
  done
}

phase_install() {
  write_inventory "$T/dist" >"$T/inventory.yml"
  we_installed=1
  playbook "$T/playbook-1.log" -i "$T/inventory.yml" || { cat "$T/playbook-1.log" >&2; fail "site.yml"; }
  grep -E '^PLAY RECAP' -A8 "$T/playbook-1.log"

  for pkg in "${FLOTILLA_PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status} ${Version}' "$pkg")" = "install ok installed $VERSION" ] ||
      fail "$pkg $VERSION is not installed"
  done
  local flotilla_uid pid unit
  flotilla_uid="$(id -u flotilla)"
  # Each unit runs as the installed unit says: its binary, its user, no new privileges.
  for unit in "${UNITS[@]}"; do
    pid="$(unit_pid "$unit")"
    [ "${pid:-0}" -gt 0 ] || fail "$unit is not running"
    [ "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" = "$flotilla_uid" ] || fail "$unit does not run as flotilla"
    [ "$(awk '/^NoNewPrivs:/ {print $2}' "/proc/$pid/status")" = 1 ] || fail "$unit runs without NoNewPrivileges"
    case "$unit" in
      flotilla-coordinator.service) want=/usr/bin/flotilla-coordinator ;;
      *) want=/usr/bin/flotilla-agent ;;
    esac
    [ "$(readlink "/proc/$pid/exe")" = "$want" ] || fail "$unit runs $(readlink "/proc/$pid/exe"), want $want"
  done
  pid="$(unit_pid flotilla-coordinator.service)"
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--listen-http 127.0.0.1:$HTTP_PORT " ||
    fail "the coordinator's command line: $(tr '\0' ' ' <"/proc/$pid/cmdline")"

  local host cluster instance group state
  for agent in "${AGENTS[@]}"; do
    read -r host cluster instance group _ <<<"$agent"
    state="/var/lib/flotilla/agent-$instance"
    check_stat "$state" 700 flotilla:flotilla
    python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("enrolled") is True else 1)' \
      "$state/agent.json" || fail "$host: $state/agent.json does not say enrolled: $(cat "$state/agent.json")"
    check_stat "/etc/flotilla/agent-$instance.env" 640 root:flotilla
    check_stat "$state/enroll.token" 600 flotilla:flotilla
    grep -qx "FLOTILLA_CLUSTER=$cluster" "/etc/flotilla/agent-$instance.env" || fail "agent-$instance.env lacks its cluster"
    grep -q -- "--label environment=$group" "/etc/flotilla/agent-$instance.env" || fail "agent-$instance.env lacks environment=$group"
    pid="$(unit_pid "flotilla-agent@$instance.service")"
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--cluster $cluster .*--label environment=$group" ||
      fail "flotilla-agent@$instance: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
  done
  check_agents_enrolled_once "after the install"

  check_stat /etc/flotilla/admin.token 600 root:root
  check_stat /etc/flotilla/coordinator.env 640 root:flotilla
  check_stat /etc/flotilla/coordinator.pub 644 root:root
  check_stat /var/lib/flotilla 750 flotilla:flotilla
  check_stat /var/lib/flotilla/coordinator 700 flotilla:flotilla
}

phase_rollout() {
  install -d -o flotilla -g flotilla -m 0755 "$COUNTER_DIR"
  local step
  cat >"$T/plan.yaml" <<EOF
service: install-check
version: "1.0.0"
driver: script
steps:
EOF
  # Steps run as flotilla, the coordinator's user too: the agent unit's InaccessiblePaths= must
  # keep them out of its store (its keys) all the same.
  for step in build apply verify rollback; do
    echo "  $step: echo \"\$FLOTILLA_DEPLOYMENT \$FLOTILLA_CLUSTER $step\" >> $COUNTER_DIR/counter;" \
      "if ls /var/lib/flotilla/coordinator/keys; then echo \$FLOTILLA_CLUSTER >> $COUNTER_DIR/reached; fi" \
      >>"$T/plan.yaml"
  done
  cat >>"$T/plan.yaml" <<EOF
  timeout: 30s
waves:
  - name: staging
    selector: {environment: staging}
  - name: production
    selector: {environment: production}
    approval: required
EOF
  local id state
  id="$(cli submit "$T/plan.yaml")" || fail "submit"
  FIRST_ROLLOUT="$id"
  echo "deployment $id"
  # The production wave waits for its approval.
  for _ in $(seq 1 120); do
    state="$(deployment_state "$id")"
    [ "$state" = awaiting_approval ] && break
    case "$state" in succeeded | rolled_back | failed | cancelled) fail "$id is $state before its approval" ;; esac
    sleep 0.5
  done
  [ "$state" = awaiting_approval ] || fail "$id never waited for approval ($state)"
  # Who submits does not approve: a second person, an approver for production.
  (umask 077 && cli tokens create install-test-approver --role approver --env production >"$T/approver.token")
  /usr/bin/flotilla --server "$API" --token-file "$T/approver.token" approve "$id" production
  cli wait "$id" --timeout 2m || { cli status "$id" >&2; fail "$id did not succeed"; }

  # Each step ran exactly once on each cluster, and nothing rolled back.
  check_each_step_once "$id" "$COUNTER_DIR/counter"
  runuser -u flotilla -- ls /var/lib/flotilla/coordinator/keys >/dev/null ||
    fail "the flotilla user cannot list the coordinator's keys: the check below proves nothing"
  [ ! -e "$COUNTER_DIR/reached" ] || fail "steps reached the coordinator's store on: $(cat "$COUNTER_DIR/reached")"
}

phase_idempotent() {
  playbook "$T/playbook-2.log" -i "$T/inventory.yml" || { cat "$T/playbook-2.log" >&2; fail "second site.yml"; }
  recap "$T/playbook-2.log" | tee "$T/recap-2"
  [ "$(wc -l <"$T/recap-2")" = 4 ] || fail "the second run's recap does not list 4 hosts"
  if awk '$2 != 0 {bad = 1} END {exit !bad}' "$T/recap-2"; then
    grep -E 'changed:|RUNNING HANDLER' -B1 "$T/playbook-2.log" >&2 || true
    fail "the second run changed something"
  fi
}

phase_check_upgrade() {
  write_inventory "$T/dist-next" >"$T/inventory-next.yml"
  local before after
  snapshot() {
    dpkg-query -W -f='${Package} ${Version}\n' "${FLOTILLA_PACKAGES[@]}"
    md5sum /etc/flotilla/* | sort
    ls /var/cache/flotilla
    for unit in "${UNITS[@]}"; do echo "$unit $(unit_pid "$unit")"; done
  }
  before="$(snapshot)"
  playbook "$T/playbook-check.log" -i "$T/inventory-next.yml" --check --diff ||
    { cat "$T/playbook-check.log" >&2; fail "site.yml --check --diff"; }
  recap "$T/playbook-check.log" | tee "$T/recap-check"
  awk '$2 > 0 {n++} END {exit !(n == 4)}' "$T/recap-check" || fail "--check did not report a change on every host"
  after="$(snapshot)"
  diff -u <(echo "$before") <(echo "$after") || fail "--check changed something"
}

# The upgrade through the role (serial, coordinator first) while a rollout runs: its staging
# wave runs while the coordinator is upgraded; its production wave, approved once the staging
# agent runs the new package, runs while the production agents are upgraded one at a time, so
# at least one agent is stopped in the middle of a step. Each drains (finishes the step and
# reports it) and the rollout succeeds with every step run once and none "unknown"; the
# packages are the new version, the enrollments and the first rollout's records survive.
phase_upgrade_mid_rollout() {
  local step id state before_pids unit pid playbook_pid
  install -o flotilla -g flotilla -m 0644 /dev/null "$COUNTER_DIR/counter-2"
  {
    printf 'service: install-check\nversion: "1.1.0"\ndriver: script\nsteps:\n'
    for step in build apply verify rollback; do
      printf '  %s: echo "$FLOTILLA_DEPLOYMENT $FLOTILLA_CLUSTER %s" >> %s/counter-2' "$step" "$step" "$COUNTER_DIR"
      # Production's apply holds until the test has seen an agent drain (at most 45 s), so the
      # role's restart of a production agent always comes in the middle of it.
      [ "$step" = apply ] && printf '; if [ "$FLOTILLA_ENVIRONMENT" = production ]; then i=0; while [ ! -e %s/release ] && [ $i -lt 450 ]; do sleep 0.1; i=$((i+1)); done; else sleep 4; fi' "$COUNTER_DIR"
      printf '\n'
    done
    printf '  timeout: 60s\nwaves:\n'
    printf '  - name: staging\n    selector: {environment: staging}\n'
    printf '  - name: production\n    selector: {environment: production}\n    approval: required\n'
  } >"$T/plan-2.yaml"
  before_pids="$(for unit in "${UNITS[@]}"; do echo "$unit $(unit_pid "$unit")"; done)"
  id="$(cli submit "$T/plan-2.yaml")" || fail "submit"
  echo "deployment $id; upgrading to $NEXT meanwhile"
  playbook "$T/playbook-upgrade.log" -i "$T/inventory-next.yml" &
  playbook_pid=$!
  # Production is approved once the staging agent has been restarted on the new package.
  local staging_unit="flotilla-agent@staging-eu.service" staging_before
  staging_before="$(awk -v u="$staging_unit" '$1 == u {print $2}' <<<"$before_pids")"
  for _ in $(seq 1 900); do
    pid="$(unit_pid "$staging_unit")"
    [ "${pid:-0}" != 0 ] && [ "$pid" != "$staging_before" ] && break
    kill -0 "$playbook_pid" 2>/dev/null || break
    sleep 0.2
  done
  if [ "${pid:-0}" = 0 ] || [ "$pid" = "$staging_before" ]; then
    wait "$playbook_pid" || true
    cat "$T/playbook-upgrade.log" >&2
    fail "the upgrade did not restart the staging agent"
  fi
  for _ in $(seq 1 300); do
    state="$(deployment_state "$id")"
    [ "$state" = awaiting_approval ] && break
    sleep 0.2
  done
  [ "$state" = awaiting_approval ] ||
    { cli status "$id" >&2; fail "$id does not wait for production's approval ($state)"; }
  /usr/bin/flotilla --server "$API" --token-file "$T/approver.token" approve "$id" production
  # The role reaches a production agent while its apply holds: that agent drains; then the
  # applies are let go, the agent exits once its apply is reported, and the role goes on.
  local drained=""
  while kill -0 "$playbook_pid" 2>/dev/null; do
    drained="$(grep -l "draining: 1 steps running" "$RUN_DIR"/logs/flotilla-agent@prod-*.log 2>/dev/null || true)"
    [ -n "$drained" ] && break
    sleep 0.1
  done
  touch "$COUNTER_DIR/release"
  if ! wait "$playbook_pid"; then
    cat "$T/playbook-upgrade.log" >&2
    fail "site.yml (the upgrade to $NEXT) failed"
  fi
  recap "$T/playbook-upgrade.log"
  cli wait "$id" --timeout 3m || { cli status "$id" >&2; cli events "$id" >&2; fail "$id did not succeed"; }

  # Every step once, none unknown, and the upgrade did stop an agent in the middle of a step.
  check_each_step_once "$id" "$COUNTER_DIR/counter-2"
  [ -z "$(cli events "$id" --type stage.unknown)" ] ||
    { cli events "$id" >&2; fail "a step of $id is unknown"; }
  [ -n "$drained" ] || fail "no production agent was stopped while its apply ran: the drain was not tested"
  echo "drained mid-apply: $drained"

  # The new packages run everywhere, each unit restarted on them.
  for pkg in "${FLOTILLA_PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Version}' "$pkg")" = "$NEXT" ] || fail "$pkg is not $NEXT after the upgrade"
  done
  for unit in "${UNITS[@]}"; do
    pid="$(unit_pid "$unit")"
    [ "${pid:-0}" != 0 ] || fail "$unit is not running after the upgrade"
    [ "$pid" != "$(awk -v u="$unit" '$1 == u {print $2}' <<<"$before_pids")" ] ||
      fail "$unit was not restarted by the upgrade"
    case "$(readlink "/proc/$pid/exe")" in *deleted*) fail "$unit still runs the replaced binary" ;; esac
  done
  # Enrollment and data survive: no new enrollment, every agent connected, the first rollout kept.
  check_agents_enrolled_once "after the upgrade"
  [ "$(deployment_state "$FIRST_ROLLOUT")" = succeeded ] ||
    fail "the first rollout $FIRST_ROLLOUT is gone or changed after the upgrade"
}

phase_teardown() {
  stop_units
  local unit
  for unit in "${UNITS[@]}"; do
    [ "$(unit_pid "$unit")" = 0 ] || fail "$unit still runs after unit_run stop"
  done
  dpkg_retry --purge "${FLOTILLA_PACKAGES[@]}" >/dev/null
  we_installed=0
  for pkg in "${FLOTILLA_PACKAGES[@]}"; do
    status="$(installed_status "$pkg")"
    [ -z "$status" ] || [ "$status" = not-installed ] || fail "$pkg is still present after purge ($status)"
  done
  [ ! -e /var/lib/flotilla ] || fail "purge left /var/lib/flotilla: $(find /var/lib/flotilla)"
  [ ! -e /etc/flotilla ] || fail "purge left /etc/flotilla: $(find /etc/flotilla)"
}

PHASES=(package install rollout idempotent check_upgrade upgrade_mid_rollout teardown)
declare -A PHASE_SECONDS=()
total_start=$SECONDS
for phase in "${PHASES[@]}"; do
  echo "== $phase ($(date +%T))"
  start=$SECONDS
  "phase_$phase"
  PHASE_SECONDS[$phase]=$((SECONDS - start))
  echo "== $phase: ${PHASE_SECONDS[$phase]}s"
done
for phase in "${PHASES[@]}"; do printf '%-16s %4ss\n' "$phase" "${PHASE_SECONDS[$phase]}"; done
echo "install_test: OK ($((SECONDS - total_start))s)"
