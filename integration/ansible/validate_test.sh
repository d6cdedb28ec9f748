#!/usr/bin/env bash
# The flotilla_agent role refuses inventory values that would reach a unit's command line or
# drop-in as something else (systemd splits $FLOTILLA_AGENT_ARGS on whitespace, a newline in an
# env file starts a new variable, a drop-in line a new directive), and two hosts naming the same
# cluster. Runs the role's validate.yml with ansible-playbook against this machine (connection
# local; nothing is changed), once with good values and once per hostile one.
set -euo pipefail
ROLES="${ANSIBLE_ROLES_PATH:?ANSIBLE_ROLES_PATH is not set}"
T="$(mktemp -d "${TMPDIR:-/tmp}/flotilla-validate-test.XXXXXX")"
trap 'rm -rf "$T"' EXIT
export ANSIBLE_ROLES_PATH="$ROLES"

cat >"$T/play.yml" <<'PLAY'
- name: Check the inventory's values
  hosts: flotilla_agents
  gather_facts: false
  tasks:
    - name: Run the role's checks
      ansible.builtin.include_role:
        name: flotilla_agent
        tasks_from: validate.yml
PLAY
inventory() {  # cluster of host a1, cluster of host a2
  cat >"$T/hosts.yml" <<INV
all:
  children:
    flotilla_agents:
      hosts:
        a1: {ansible_connection: local, ansible_python_interpreter: /usr/bin/python3, flotilla_agent_cluster: "$1"}
        a2: {ansible_connection: local, ansible_python_interpreter: /usr/bin/python3, flotilla_agent_cluster: "$2"}
INV
}
failures=0
run() {  # expect (pass|refuse), what, extra vars as JSON, expected text when refused
  local expect="$1" what="$2" vars="$3" text="${4:-}"
  local rc=0
  ansible-playbook -i "$T/hosts.yml" "$T/play.yml" -e "$vars" >"$T/out" 2>&1 || rc=$?
  if [ "$expect" = pass ] && [ "$rc" -ne 0 ]; then
    echo "validate_test: FAIL: $what was refused:"; tail -20 "$T/out"; failures=$((failures + 1))
  elif [ "$expect" = refuse ] && { [ "$rc" -eq 0 ] || ! grep -qF -- "$text" "$T/out"; }; then
    echo "validate_test: FAIL: $what was not refused with \"$text\" (exit $rc):"
    tail -20 "$T/out"; failures=$((failures + 1))
  else
    echo "validate_test: ok: $what ($expect)"
  fi
}

inventory prod-eu-1 prod-us-1
run pass "good values" '{"flotilla_agent_labels": {"region": "eu"}, "flotilla_agent_args": ["--workdir", "/srv"], "flotilla_agent_read_write_paths": ["/srv/deploy"]}'
run refuse "a cluster name ending in a newline" '{"flotilla_agent_cluster": "prod\n"}' "must be [a-z0-9-]"
run refuse "a flag with a newline (a second env variable)" '{"flotilla_agent_args": ["--workdir\nFLOTILLA_COORDINATOR=tcp://evil:1"]}' "must hold no whitespace"
run refuse "a flag with a space" '{"flotilla_agent_args": ["--workdir /tmp"]}' "must hold no whitespace"
run refuse "a label value with a space" '{"flotilla_agent_labels": {"region": "eu --insecure"}}' "must hold no whitespace"
run refuse "a label key that is a flag" '{"flotilla_agent_labels": {"-x": "y"}}' "keys"
run refuse "a user with a newline (a drop-in directive)" '{"flotilla_agent_user": "flotilla\nExecStartPre=/bin/true"}' "user names"
run refuse "a writable path with a space" '{"flotilla_agent_read_write_paths": ["/srv /etc"]}' "absolute paths"
run refuse "a writable path with a specifier" '{"flotilla_agent_read_write_paths": ["/srv/%h"]}' "absolute paths"
inventory prod-eu-1 prod-eu-1
run refuse "two hosts naming one cluster" '{}' "set the same flotilla_agent_cluster"

if [ "$failures" -ne 0 ]; then
  echo "validate_test: $failures failed"
  exit 1
fi
echo "validate_test: every hostile value refused"
